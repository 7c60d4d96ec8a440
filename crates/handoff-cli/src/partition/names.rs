//! From a key to a file name that is safe on every system and never shared by two keys.
//!
//! The escaping, applied to the key's bytes:
//! - ASCII letters, digits, `-`, `_` and `.` stay as they are; every other byte (`/`, `\`,
//!   `%`, spaces, control bytes, NUL, and every byte of a non-ASCII or invalid UTF-8 key)
//!   becomes `%XX`, two upper-case hex digits;
//! - a leading `.` becomes `%2E` (no hidden files, no `.` or `..`);
//! - a name Windows reserves (`CON`, `PRN`, `AUX`, `NUL`, `COM1`–`COM9`, `LPT1`–`LPT9`, in any
//!   case, alone or before a `.`) gets its first letter escaped (`CON` → `%43ON`);
//! - the empty key is `%empty` (lower case: the escaping never writes that);
//! - a name over 200 bytes is cut to 180 and ends with `~` and 16 hex digits of the SHA-256 of
//!   the key.
//!
//! Escaping is injective: every escaped name decodes back to its key (`%XX` to the byte, other
//! bytes to themselves), so two keys never get the same name. Cut names rely on the hash
//! instead, and [`super::layout::Layout`] checks that no two keys in a run ever share one.

use sha2::{Digest, Sha256};

/// Longest name kept whole; longer ones are cut and hashed (to at most this length too).
pub const LONGEST: usize = 200;
/// Where a name over [`LONGEST`] is cut, before `~` and the hash.
pub const CUT: usize = 180;

const RESERVED: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Whether a byte stays as it is in a name (the others become `%XX`).
pub fn is_plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.')
}

fn is_reserved(key: &[u8]) -> bool {
    let stem = key.split(|&b| b == b'.').next().unwrap_or(key);
    RESERVED
        .iter()
        .any(|reserved| stem.eq_ignore_ascii_case(reserved.as_bytes()))
}

/// Appends `%XX` for `byte` (upper-case hex).
pub fn push_escaped(name: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    name.push('%');
    name.push(HEX[usize::from(byte >> 4)] as char);
    name.push(HEX[usize::from(byte & 15)] as char);
}

/// The escaped form of `key` (see the module documentation).
pub fn escape(key: &[u8]) -> String {
    let mut name = escape_uncut(key);
    cut_long(&mut name, key);
    name
}

/// The escaped form of `key`, however long (not cut: see [`cut_long`]).
pub fn escape_uncut(key: &[u8]) -> String {
    if key.is_empty() {
        return "%empty".to_owned();
    }
    let mut name = String::with_capacity(key.len() + 8);
    let escape_first = key[0] == b'.' || is_reserved(key);
    for (i, &byte) in key.iter().enumerate() {
        if is_plain(byte) && !(i == 0 && escape_first) {
            name.push(byte as char);
        } else {
            push_escaped(&mut name, byte);
        }
    }
    name
}

/// Cuts a name over [`LONGEST`] bytes to [`CUT`] (never inside an escape) and appends `~` and
/// 16 hex digits of the SHA-256 of `key`, the bytes it stands for. Returns whether it did.
pub fn cut_long(name: &mut String, key: &[u8]) -> bool {
    if name.len() <= LONGEST {
        return false;
    }
    let mut cut = CUT;
    while name.as_bytes()[cut - 1] == b'%' || name.as_bytes()[cut - 2] == b'%' {
        cut -= 1; // never cut inside an escape
    }
    name.truncate(cut);
    let digest = Sha256::digest(key);
    name.push('~');
    for byte in &digest[..8] {
        name.push_str(&format!("{byte:02x}"));
    }
    true
}

/// Decodes an escaped name (not a cut one) back to its key: the proof of injectivity.
#[cfg(test)]
pub fn unescape(name: &str) -> Vec<u8> {
    if name == "%empty" {
        return Vec::new();
    }
    let bytes = name.as_bytes();
    let mut key = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            key.push(u8::from_str_radix(&name[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            key.push(bytes[i]);
            i += 1;
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn dangerous_keys_become_safe_names() {
        for (key, name) in [
            (&b"plain-key_1.csv"[..], "plain-key_1.csv"),
            (b"a/b", "a%2Fb"),
            (b"..", "%2E."),
            (b"../../etc/passwd", "%2E.%2F..%2Fetc%2Fpasswd"),
            (b"a\\b", "a%5Cb"),
            (b"nul\0byte", "nul%00byte"),
            (b"tab\tnew\nline", "tab%09new%0Aline"),
            (b".hidden", "%2Ehidden"),
            (b"CON", "%43ON"),
            (b"con.txt", "%63on.txt"),
            (b"COM1", "%43OM1"),
            (b"CONSOLE", "CONSOLE"),
            (b"100%", "100%25"),
            (b"Z\xc3\xbcrich", "Z%C3%BCrich"),
            (b"\xff\xfe", "%FF%FE"),
            (b"", "%empty"),
            (b"with space", "with%20space"),
        ] {
            assert_eq!(escape(key), name, "{key:?}");
            assert_eq!(unescape(name), key);
        }
    }

    #[test]
    fn escaping_is_injective_on_many_keys() {
        let mut seen = HashMap::new();
        let mut key = Vec::new();
        // Every key of up to 2 bytes over an alphabet of the interesting bytes.
        let alphabet = [
            b'a', b'A', b'.', b'%', b'/', b'0', b'2', b'E', 0, 0xff, b'e',
        ];
        for &a in &alphabet {
            for &b in &alphabet {
                for len in 1..=2 {
                    key.clear();
                    key.push(a);
                    if len == 2 {
                        key.push(b);
                    }
                    let name = escape(&key);
                    assert!(!name.contains('/') && !name.starts_with('.'));
                    assert_eq!(unescape(&name), key);
                    if let Some(other) = seen.insert(name.clone(), key.clone()) {
                        assert_eq!(other, key, "{name} shared");
                    }
                }
            }
        }
    }

    #[test]
    fn long_keys_are_cut_and_hashed() {
        let a = vec![b'x'; 1000];
        let mut b = a.clone();
        b[999] = b'y';
        let (na, nb) = (escape(&a), escape(&b));
        assert!(na.len() <= LONGEST && nb.len() <= LONGEST);
        assert_ne!(na, nb);
        let slashes = vec![b'/'; 300];
        assert!(escape(&slashes).len() <= LONGEST);
        assert!(!escape(&slashes).contains('/'));
    }
}
