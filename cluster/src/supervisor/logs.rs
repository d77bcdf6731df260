//! Worker logs, served read-only by the supervisor's HTTP service, as Storm's logviewer does:
//! `GET /logs/` lists its workers' logs, `GET /logs/<worker>/worker.log?tail=BYTES` returns
//! the end of one.
//!
//! Only files named `worker.log` directly inside a worker directory of this supervisor are
//! served: the worker name is checked character by character, neither the directory nor the
//! file may be a symbolic link (a component could plant one pointing anywhere the
//! supervisor can read), and the file is opened without following links.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde_json::json;

use super::process::LOG_FILE;
use crate::observe::http::{HttpReply, HttpRequest};

/// Bytes returned when the request names no `tail`.
const DEFAULT_TAIL: u64 = 64 << 10;

/// Most bytes one request returns.
const MAX_TAIL: u64 = 4 << 20;

/// Longest worker directory name served.
const MAX_WORKER_NAME: usize = 256;

/// Whether `name` can be a worker directory of this supervisor: `<topology id>-<port>`, no
/// separators, no leading dot.
fn is_worker_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_WORKER_NAME
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Answers `request` (a path under `/logs/`) from `workers_dir`.
pub(crate) fn answer(workers_dir: &Path, request: &HttpRequest) -> HttpReply {
    let rest = request.path.trim_start_matches("/logs/");
    if rest.is_empty() {
        return list(workers_dir);
    }
    let Some((worker, file)) = rest.split_once('/') else {
        return HttpReply::error(404, &format!("no such log: {}", request.path));
    };
    if !is_worker_name(worker) || file != LOG_FILE {
        return HttpReply::error(
            404,
            &format!(
                "no such log: {} (logs are /logs/<worker>/{LOG_FILE})",
                request.path
            ),
        );
    }
    let tail = match request.query_param("tail").map(str::parse::<u64>) {
        None => DEFAULT_TAIL,
        Some(Ok(bytes)) => bytes.min(MAX_TAIL),
        Some(Err(_)) => return HttpReply::error(400, "tail must be a number of bytes"),
    };
    match read_tail(&workers_dir.join(worker), tail) {
        Ok(bytes) => HttpReply::ok("text/plain; charset=utf-8", bytes),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            HttpReply::error(404, &format!("no log for worker {worker}"))
        }
        Err(error) => HttpReply::error(403, &format!("the log of {worker} is not served: {error}")),
    }
}

/// The last `tail` bytes of `dir/worker.log`, refusing links.
fn read_tail(dir: &Path, tail: u64) -> std::io::Result<Vec<u8>> {
    if std::fs::symlink_metadata(dir)?.file_type().is_symlink() {
        return Err(std::io::Error::other(
            "the worker directory is a symbolic link",
        ));
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(dir.join(LOG_FILE))
        .map_err(|error| {
            if error.raw_os_error() == Some(libc::ELOOP) {
                std::io::Error::other("the log is a symbolic link")
            } else {
                error
            }
        })?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("the log is not a regular file"));
    }
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(tail)))?;
    let mut bytes = Vec::new();
    Read::by_ref(&mut file).take(tail).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The workers with a log, and its size.
fn list(workers_dir: &Path) -> HttpReply {
    let mut logs = Vec::new();
    if let Ok(entries) = std::fs::read_dir(workers_dir) {
        for entry in entries.flatten() {
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let log = entry.path().join(LOG_FILE);
            let Ok(metadata) = std::fs::symlink_metadata(&log) else {
                continue;
            };
            if is_worker_name(&name) && metadata.is_file() {
                logs.push(json!({
                    "worker": name,
                    "bytes": metadata.len(),
                    "path": format!("/logs/{name}/{LOG_FILE}"),
                }));
            }
        }
    }
    logs.sort_by(|a, b| a["worker"].as_str().cmp(&b["worker"].as_str()));
    HttpReply::json(200, &json!({ "logs": logs }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(dir: &Path, path_and_query: &str) -> HttpReply {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        answer(
            dir,
            &HttpRequest {
                path: path.to_owned(),
                query: query.to_owned(),
                authorization: None,
            },
        )
    }

    #[test]
    fn a_log_is_served_from_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let worker = dir.path().join("words-17-6700");
        std::fs::create_dir(&worker).unwrap();
        std::fs::write(worker.join(LOG_FILE), "first line\nlast line\n").unwrap();
        let reply = get(dir.path(), "/logs/words-17-6700/worker.log");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, b"first line\nlast line\n");
        let reply = get(dir.path(), "/logs/words-17-6700/worker.log?tail=10");
        assert_eq!(reply.body, b"last line\n");
        let listing = String::from_utf8(get(dir.path(), "/logs/").body).unwrap();
        assert!(
            listing.contains("\"worker\": \"words-17-6700\""),
            "{listing}"
        );
        assert_eq!(
            get(dir.path(), "/logs/words-17-6700/worker.log?tail=x").status,
            400
        );
        assert_eq!(
            get(dir.path(), "/logs/words-17-6701/worker.log").status,
            404
        );
    }

    #[test]
    fn paths_outside_the_worker_directories_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "do not serve").unwrap();
        let workers = dir.path().join("workers");
        std::fs::create_dir(&workers).unwrap();
        for path in [
            "/logs/../secret",
            "/logs/..%2Fsecret/worker.log",
            "/logs/../workers/worker.log",
            "/logs/w-1-6700/../../secret",
            "/logs/w-1-6700/plan.json",
            "/logs/.hidden/worker.log",
        ] {
            let reply = get(&workers, path);
            assert_eq!(reply.status, 404, "{path}");
        }
        // Links planted by a worker are not followed.
        let planted = workers.join("w-1-6700");
        std::fs::create_dir(&planted).unwrap();
        std::os::unix::fs::symlink(&secret, planted.join(LOG_FILE)).unwrap();
        let reply = get(&workers, "/logs/w-1-6700/worker.log");
        assert_eq!(reply.status, 403);
        assert!(!String::from_utf8_lossy(&reply.body).contains("do not serve"));
        std::os::unix::fs::symlink(dir.path(), workers.join("w-2-6701")).unwrap();
        assert_eq!(get(&workers, "/logs/w-2-6701/worker.log").status, 403);
    }
}
