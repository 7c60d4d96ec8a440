//! Helpers shared by the partition end-to-end tests: what a run printed, and what it left on
//! disk (read with `std::fs`, never through the code under test).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Output;

/// What the run printed on stderr.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every file in `dir`, by name.
pub fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (
                entry.file_name().into_string().unwrap(),
                fs::read(entry.path()).unwrap(),
            )
        })
        .collect()
}
