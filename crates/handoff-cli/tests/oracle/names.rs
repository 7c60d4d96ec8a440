//! Output file names, read back (spec 10, and the README's escape rule), independently of the
//! binary's encoder: a name is decoded to the key it stands for, and checked to be safe.

use sha2::{Digest, Sha256};

/// What a file name says about its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// The whole key.
    Key(Vec<u8>),
    /// A cut name (> 200 bytes): the decoded start of the key, and 16 hex digits of its SHA-256.
    Cut { prefix: Vec<u8>, hash: String },
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The bytes a name may hold literally: letters, digits, `-`, `_`, `.` (README).
fn literal(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')
}

/// Decodes `%XX` escapes (upper-case hex, as the README writes them) and literal bytes.
/// `lenient`: a cut name may end inside an escape; the incomplete escape is dropped.
fn unescape(stem: &[u8], lenient: bool) -> Result<Vec<u8>, String> {
    let mut key = Vec::new();
    let mut i = 0;
    while i < stem.len() {
        let c = stem[i];
        if c == b'%' {
            match (
                stem.get(i + 1).copied().and_then(hex_value),
                stem.get(i + 2).copied().and_then(hex_value),
            ) {
                (Some(h), Some(l)) => {
                    key.push(h << 4 | l);
                    i += 3;
                }
                _ if lenient
                    && stem.len() - i <= 2
                    && stem[i + 1..].iter().all(|&c| hex_value(c).is_some()) =>
                {
                    break
                }
                _ => return Err(format!("bad escape at byte {i}")),
            }
        } else if literal(c) {
            key.push(c);
            i += 1;
        } else {
            return Err(format!(
                "byte {:#04x} at {i} is neither literal nor escaped",
                c
            ));
        }
    }
    Ok(key)
}

/// Decodes a file name made with `template` (`--filename`: `{}` stands for the escaped key).
pub fn decode(name: &[u8], template: &str) -> Result<Decoded, String> {
    let (head, tail) = template.split_once("{}").expect("a template holds {}");
    let stem = name
        .strip_prefix(head.as_bytes())
        .and_then(|n| n.strip_suffix(tail.as_bytes()))
        .ok_or_else(|| format!("not of the form {template:?}"))?;
    if stem == b"%empty" {
        return Ok(Decoded::Key(Vec::new()));
    }
    if stem.len() > 17 && stem[stem.len() - 17] == b'~' {
        let hash = &stem[stem.len() - 16..];
        if hash.iter().all(|c| c.is_ascii_hexdigit()) {
            return Ok(Decoded::Cut {
                prefix: unescape(&stem[..stem.len() - 17], true)?,
                hash: String::from_utf8(hash.to_vec())
                    .unwrap()
                    .to_ascii_lowercase(),
            });
        }
    }
    if stem.len() > 200 {
        return Err(format!("an uncut name of {} bytes (> 200)", stem.len()));
    }
    unescape(stem, false).map(Decoded::Key)
}

/// Decodes a file name made with `template` for a key of `columns` columns (README, "Several
/// key columns": each value escaped as a key of one column is, `,` between them): the key as
/// [`super::csv::joined`] writes it. A cut name (over 200 bytes, the whole cut) is known by its
/// hash, of that same key; its prefix is not read back (it may end inside a value).
pub fn decode_columns(name: &[u8], template: &str, columns: usize) -> Result<Decoded, String> {
    if columns == 1 {
        return decode(name, template);
    }
    let (head, tail) = template.split_once("{}").expect("a template holds {}");
    let stem = name
        .strip_prefix(head.as_bytes())
        .and_then(|n| n.strip_suffix(tail.as_bytes()))
        .ok_or_else(|| format!("not of the form {template:?}"))?;
    if stem.len() > 17 && stem[stem.len() - 17] == b'~' {
        let hash = &stem[stem.len() - 16..];
        if hash.iter().all(|c| c.is_ascii_hexdigit()) {
            return Ok(Decoded::Cut {
                prefix: Vec::new(),
                hash: String::from_utf8(hash.to_vec())
                    .unwrap()
                    .to_ascii_lowercase(),
            });
        }
    }
    if stem.len() > 200 {
        return Err(format!("an uncut name of {} bytes (> 200)", stem.len()));
    }
    let parts: Vec<&[u8]> = stem.split(|&c| c == b',').collect();
    if parts.len() != columns {
        return Err(format!("{} values, not {columns}", parts.len()));
    }
    let values = parts
        .into_iter()
        .map(|part| match part {
            b"%empty" => Ok(Vec::new()),
            b"" => Err("an empty value not written %empty".to_string()),
            part => unescape(part, false),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Decoded::Key(super::csv::joined(&values)))
}

/// 16 hex digits of `key`'s SHA-256 (the first 8 bytes), lower case.
pub fn hash16(key: &[u8]) -> String {
    Sha256::digest(key)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `decoded` stands for `key`.
pub fn stands_for(decoded: &Decoded, key: &[u8]) -> bool {
    match decoded {
        Decoded::Key(k) => k == key,
        Decoded::Cut { prefix, hash } => key.starts_with(prefix) && *hash == hash16(key),
    }
}

/// What is unsafe about a file name: anything that could leave OUTDIR, hide the file, or name a
/// Windows device (README: "Safe, distinct file names").
pub fn unsafe_because(name: &[u8]) -> Option<String> {
    unsafe_because_with(name, b"")
}

/// [`unsafe_because`], `also` bytes allowed besides (`,`: between the values of a key of
/// several columns).
pub fn unsafe_because_with(name: &[u8], also: &[u8]) -> Option<String> {
    if name.len() > 255 {
        return Some(format!("{} bytes, over NAME_MAX", name.len()));
    }
    if name.first() == Some(&b'.') {
        return Some("starts with '.'".into());
    }
    if let Some(c) = name
        .iter()
        .find(|&&c| !(literal(c) || c == b'%' || c == b'~' || also.contains(&c)))
    {
        return Some(format!("holds byte {c:#04x}"));
    }
    let device = name
        .split(|&c| c == b'.')
        .next()
        .unwrap()
        .to_ascii_uppercase();
    let reserved = matches!(&device[..], b"CON" | b"PRN" | b"AUX" | b"NUL")
        || (device.len() == 4
            && (device.starts_with(b"COM") || device.starts_with(b"LPT"))
            && (b'1'..=b'9').contains(&device[3]));
    if reserved {
        return Some("a Windows device name".into());
    }
    None
}
