//! The environment a subprocess starts with: its worker's, without the worker's secrets.
//!
//! A multi-lang component is user code in another language, often with dependencies of its
//! own; it has no use for the worker key (which admits to the topology's data plane) or the
//! cluster secret (which admits to everything). Every variable named like a Squall secret is
//! withheld, whether the worker inherited it or the component's spec sets it.

use std::ffi::OsStr;
use std::process::Command;

use squall_core::worker::plan::{SECRET_ENV, WORKER_KEY_ENV};

/// Prefix of the variables Squall itself reads.
const SQUALL_PREFIX: &str = "SQUALL_";

/// Words that mark a `SQUALL_` variable as a secret.
const SECRET_MARKS: [&str; 4] = ["SECRET", "KEY", "TOKEN", "PASSWORD"];

/// Whether the variable `name` holds a secret a subprocess must not see: the cluster secret,
/// the worker key, and any `SQUALL_` variable whose name mentions a secret, key, token or
/// password.
pub fn is_secret_variable(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    if name == SECRET_ENV || name == WORKER_KEY_ENV {
        return true;
    }
    name.strip_prefix(SQUALL_PREFIX).is_some_and(|rest| {
        let rest = rest.to_ascii_uppercase();
        SECRET_MARKS.iter().any(|mark| rest.contains(mark))
    })
}

/// Removes from `command`'s environment every secret variable, inherited or set on it.
pub(crate) fn withhold_secrets(command: &mut Command) {
    let mut names: Vec<std::ffi::OsString> = std::env::vars_os().map(|(name, _)| name).collect();
    names.extend(command.get_envs().map(|(name, _)| name.to_owned()));
    names.push(SECRET_ENV.into());
    names.push(WORKER_KEY_ENV.into());
    for name in names.into_iter().filter(|name| is_secret_variable(name)) {
        command.env_remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_variables_are_recognised_by_name() {
        for name in [
            "SQUALL_CLUSTER_SECRET",
            "SQUALL_WORKER_KEY",
            "SQUALL_NIMBUS_TOKEN",
            "SQUALL_client_password",
            "SQUALL_ADMIN_KEY_FILE",
        ] {
            assert!(is_secret_variable(OsStr::new(name)), "{name}");
        }
        for name in [
            "SQUALL_LOG",
            "SQUALL_LOG_FORMAT",
            "PATH",
            "MY_SECRET",
            "HOME",
        ] {
            assert!(!is_secret_variable(OsStr::new(name)), "{name}");
        }
    }

    #[test]
    fn a_real_subprocess_sees_no_secret() {
        let mut command = Command::new("sh");
        command
            .args(["-c", "env"])
            .env("SQUALL_CLUSTER_SECRET", "the cluster secret")
            .env("SQUALL_WORKER_KEY", "0123abcd")
            .env("SQUALL_OTHER_TOKEN", "a token")
            .env("SQUALL_LOG", "debug")
            .env("COMPONENT_SETTING", "kept");
        withhold_secrets(&mut command);
        let output = command.output().expect("sh runs");
        let environment = String::from_utf8(output.stdout).unwrap();
        let names: Vec<&str> = environment
            .lines()
            .filter_map(|line| line.split_once('=').map(|(name, _)| name))
            .collect();
        assert!(names.contains(&"SQUALL_LOG"), "{environment}");
        assert!(names.contains(&"COMPONENT_SETTING"), "{environment}");
        for secret in [
            "SQUALL_CLUSTER_SECRET",
            "SQUALL_WORKER_KEY",
            "SQUALL_OTHER_TOKEN",
        ] {
            assert!(!names.contains(&secret), "{secret} leaked:\n{environment}");
        }
        assert!(!environment.contains("the cluster secret"));
    }
}
