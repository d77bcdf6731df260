//! Parses arbitrary text as a YAML topology file and, when it parses, builds its topology
//! with the built-in components and lists its resources. Nothing may panic; building never
//! starts a component, so nothing runs.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use squall_topology_file::{Overrides, TopologyFile};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = TopologyFile::parse(text, "fuzz.yaml", Path::new("/nonexistent/fuzz")) else {
        return;
    };
    let _ = file.name();
    let _ = file.resources();
    let _ = file.build(&Overrides::default());
});
