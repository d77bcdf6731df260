//! Headless Chromium (Debian's `chromium` package, which `scripts/test.sh` installs) loading
//! a page the way an operator's browser does: scripts run, the API is fetched, and the
//! rendered DOM or a screenshot comes back.

use std::path::{Path, PathBuf};
use std::process::Command;

/// How long the page's scripts may run (virtual time, which stands still while requests are
/// pending) before the DOM is taken.
const SCRIPT_BUDGET_MS: &str = "8000";

/// The Chromium binary; panics naming the package when there is none.
pub fn chromium() -> PathBuf {
    for candidate in ["chromium", "chromium-browser"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {candidate}")])
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned());
        if let Some(path) = found.filter(|path| !path.is_empty()) {
            return PathBuf::from(path);
        }
    }
    panic!(
        "the web UI tests load pages in headless Chromium: install it with \
         `apt-get install chromium` (scripts/test.sh does)"
    );
}

fn headless(profile: &Path) -> Command {
    let mut command = Command::new(chromium());
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--virtual-time-budget={SCRIPT_BUDGET_MS}"));
    command
}

/// The DOM of `url` once its scripts have run.
pub fn rendered_dom(url: &str) -> String {
    let profile = tempfile::tempdir().expect("a profile directory");
    let output = headless(profile.path())
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(
        output.status.success(),
        "chromium could not load {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Saves a screenshot of `url` (1400×1000) to `path`.
pub fn screenshot(url: &str, path: &Path) {
    let profile = tempfile::tempdir().expect("a profile directory");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("the screenshot directory");
    }
    let output = headless(profile.path())
        .arg(format!("--screenshot={}", path.display()))
        .arg("--window-size=1400,1000")
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(
        output.status.success() && path.exists(),
        "chromium took no screenshot of {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
