//! Judging what the real binary left in OUTDIR, and said on stderr, against the reference.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::csv::Expected;
use super::names::{decode_columns, stands_for, unsafe_because_with, Decoded};

/// Bytes shown readably (for failure messages), the middle of long ones left out.
pub fn show(bytes: &[u8]) -> String {
    if bytes.len() <= 300 {
        return format!("\"{}\"", bytes.escape_ascii());
    }
    format!(
        "\"{}\" … ({} bytes) … \"{}\"",
        bytes[..150].escape_ascii(),
        bytes.len(),
        bytes[bytes.len() - 150..].escape_ascii()
    )
}

/// Where two byte strings first differ, shown with some context.
pub fn difference(want: &[u8], got: &[u8]) -> String {
    let at = want.iter().zip(got).take_while(|(a, b)| a == b).count();
    let from = at.saturating_sub(60);
    format!(
        "first difference at byte {at} (want {} bytes, got {}):\n    want …{}\n    got  …{}",
        want.len(),
        got.len(),
        show(&want[from..(at + 60).min(want.len())]),
        show(&got[from..(at + 60).min(got.len())])
    )
}

/// Every entry of `dir`: name → content. Anything but a regular file is an error.
pub fn listing(dir: &Path) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, String> {
    let mut files = BTreeMap::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(format!("read_dir {}: {e}", dir.display())),
    };
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry.file_name().as_bytes().to_vec();
        let kind = entry.file_type().map_err(|e| e.to_string())?;
        if !kind.is_file() {
            return Err(format!("{} is not a regular file ({kind:?})", show(&name)));
        }
        files.insert(name, fs::read(entry.path()).map_err(|e| e.to_string())?);
    }
    Ok(files)
}

/// How strictly the files are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// Exactly the expected files, with exactly the expected bytes.
    Exact,
    /// Any subset of the expected files, each empty or cut at a record boundary (header + its
    /// first k records, k ≥ 0): what a run that stopped early may leave.
    WholeRecordPrefix,
}

/// Maps every file name to the expected key it stands for (`template`: as `--filename`).
pub fn keys_of(
    files: &BTreeMap<Vec<u8>, Vec<u8>>,
    expected: &Expected,
    template: &str,
) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, String> {
    let mut by_key: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for name in files.keys() {
        let also: &[u8] = if expected.key_columns > 1 { b"," } else { b"" };
        if let Some(why) = unsafe_because_with(name, also) {
            return Err(format!("unsafe file name {}: {why}", show(name)));
        }
        let decoded = decode_columns(name, template, expected.key_columns)
            .map_err(|e| format!("file name {} does not decode: {e}", show(name)))?;
        let key = match &decoded {
            Decoded::Key(k) => k.clone(),
            Decoded::Cut { .. } => {
                let matching: Vec<_> = expected
                    .files
                    .keys()
                    .filter(|k| stands_for(&decoded, k))
                    .collect();
                match matching[..] {
                    [k] => k.clone(),
                    [] => {
                        return Err(format!(
                            "cut name {} ({decoded:?}) stands for no expected key",
                            show(name)
                        ))
                    }
                    _ => return Err(format!("cut name {} stands for several keys", show(name))),
                }
            }
        };
        if let Some(other) = by_key.insert(key.clone(), name.clone()) {
            return Err(format!(
                "two files for key {}: {} and {}",
                show(&key),
                show(&other),
                show(name)
            ));
        }
    }
    Ok(by_key)
}

/// Compares OUTDIR's files with the reference.
pub fn judge_files(
    files: &BTreeMap<Vec<u8>, Vec<u8>>,
    expected: &Expected,
    template: &str,
    strictness: Strictness,
) -> Result<(), String> {
    let by_key = keys_of(files, expected, template)?;
    for (key, name) in &by_key {
        let got = &files[name];
        let Some(want) = expected.files.get(key) else {
            return Err(format!(
                "file {} (key {}) should not exist; it holds {}",
                show(name),
                show(key),
                show(got)
            ));
        };
        let ok = match strictness {
            Strictness::Exact => got == want,
            // An empty file (created, then its first write failed and was taken back) holds
            // no partial record either.
            Strictness::WholeRecordPrefix => {
                got.is_empty()
                    || (expected.boundaries[key].contains(&got.len()) && want.starts_with(got))
            }
        };
        if !ok {
            return Err(format!(
                "file {} (key {}):\n  want {}{}\n  got  {}\n  {}",
                show(name),
                show(key),
                if strictness == Strictness::Exact {
                    ""
                } else {
                    "a whole-record prefix of "
                },
                show(want),
                show(got),
                difference(want, got)
            ));
        }
    }
    if strictness == Strictness::Exact {
        for key in expected.files.keys() {
            if !by_key.contains_key(key) {
                return Err(format!("no file for key {}", show(key)));
            }
        }
    }
    Ok(())
}

/// The summary's "N records into M files" (singular or plural), if printed.
pub fn summary_counts(stderr: &str) -> Option<(usize, usize)> {
    let at = stderr.find(" into ")?;
    let before = stderr[..at]
        .trim_end_matches(" records")
        .trim_end_matches(" record");
    let n = before
        .rsplit(|c: char| !c.is_ascii_digit() && c != ',')
        .next()?
        .replace(',', "")
        .parse()
        .ok()?;
    let after = &stderr[at + " into ".len()..];
    let m = after
        .split(|c: char| !c.is_ascii_digit() && c != ',')
        .next()?
        .replace(',', "")
        .parse()
        .ok()?;
    Some((n, m))
}
