//! Unpacks arbitrary bytes as an artifact into a fresh directory. Nothing may panic, nothing
//! may be written outside the destination, and a successful unpack holds exactly the
//! manifest and the files it lists, all regular files.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use squall_cluster::artifact::{MANIFEST_FILE, unpack};

/// Every path under `dir`, relative to it, with whether it is a directory; symbolic links
/// are refused.
fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, bool)>) {
    for entry in std::fs::read_dir(dir).expect("readable") {
        let entry = entry.expect("readable entry");
        let kind = entry.file_type().expect("file type");
        assert!(!kind.is_symlink(), "unpacking made a symbolic link");
        let name = format!(
            "{prefix}{}",
            entry.file_name().to_str().expect("UTF-8 name")
        );
        out.push((name.clone(), kind.is_dir()));
        if kind.is_dir() {
            walk(&entry.path(), &format!("{name}/"), out);
        }
    }
}

fuzz_target!(|archive: &[u8]| {
    let root = tempfile::tempdir().expect("temporary directory");
    let dest = root.path().join("box").join("artifact");
    std::fs::create_dir(root.path().join("box")).expect("box");
    std::fs::write(root.path().join("canary"), b"untouched").expect("canary");
    let result = unpack(archive, &dest);
    // Only `box/artifact` (or nothing, on failure) may have appeared.
    let mut outside = Vec::new();
    walk(root.path(), "", &mut outside);
    outside.retain(|(path, _)| !path.starts_with("box/artifact/"));
    outside.sort();
    let mut expected = vec![("box".to_owned(), true), ("canary".to_owned(), false)];
    if result.is_ok() {
        expected.insert(1, ("box/artifact".to_owned(), true));
    }
    assert_eq!(outside, expected, "unpacking wrote outside its destination");
    assert_eq!(
        std::fs::read(root.path().join("canary")).unwrap(),
        b"untouched"
    );
    let Ok(manifest) = result else {
        return;
    };
    let mut inside = Vec::new();
    walk(&dest, "", &mut inside);
    let files: Vec<&str> = inside
        .iter()
        .filter(|(_, dir)| !dir)
        .map(|(path, _)| path.as_str())
        .collect();
    let mut listed: Vec<&str> = manifest.files.iter().map(String::as_str).collect();
    listed.push(MANIFEST_FILE);
    listed.sort();
    let mut files = files;
    files.sort();
    assert_eq!(
        files, listed,
        "the unpacked files are not those the manifest lists"
    );
});
