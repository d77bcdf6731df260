//! Tests that run real Python components need Python packages; a missing one fails the
//! test at once with the command that installs it, instead of a confusing subprocess error.

use std::sync::{Mutex, PoisonError};

/// Panics, naming the fix, unless `python3 -c "import MODULE"` succeeds. Checks each module
/// once per test binary.
#[track_caller]
pub fn require_python_module(module: &str) {
    static CHECKED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut checked = CHECKED.lock().unwrap_or_else(PoisonError::into_inner);
    if checked.iter().any(|done| done == module) {
        return;
    }
    let status = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .status()
        .expect("python3 runs");
    assert!(
        status.success(),
        "these tests run Python components that need {module}: install it with \
         `python3 -m pip install {module}`"
    );
    checked.push(module.to_owned());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "need squall_no_such_module: install it with")]
    fn a_missing_module_names_the_install_command() {
        require_python_module("squall_no_such_module");
    }

    #[test]
    fn a_standard_module_is_found() {
        require_python_module("json");
        require_python_module("json");
    }
}
