//! Bytes from the input (keys, header names, values, paths) made safe to print on a terminal.
//!
//! Control characters (C0, DEL, C1), Unicode's bidirectional overrides and bytes that are not
//! UTF-8 are shown as `\xNN` (each byte of them), so that no escape sequence from the input
//! ever reaches the terminal; and the result is cut to [`WIDTH`] characters with `…`, so that a
//! 10 KB key does not flood it.

use std::path::Path;

/// The most characters [`shown`] prints, `…` included.
pub const WIDTH: usize = 64;

/// Whether a character is printed as its bytes in `\xNN` form.
fn is_hidden(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The printable pieces of `bytes`: characters kept as they are, or `\xNN` escapes.
fn pieces(bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if is_hidden(c) {
                let mut utf8 = [0; 4];
                out.extend(
                    c.encode_utf8(&mut utf8)
                        .bytes()
                        .map(|b| format!("\\x{b:02X}")),
                );
            } else {
                out.push(c.to_string());
            }
        }
        out.extend(chunk.invalid().iter().map(|b| format!("\\x{b:02X}")));
    }
    out
}

/// `bytes` escaped for the terminal, cut at the end to [`WIDTH`] characters.
pub fn shown(bytes: &[u8]) -> String {
    let pieces = pieces(bytes);
    let mut out = String::new();
    let mut width = 0;
    for (i, piece) in pieces.iter().enumerate() {
        let w = piece.chars().count();
        let rest: usize = if i + 1 < pieces.len() { 1 } else { 0 };
        if width + w + rest > WIDTH {
            out.push('…');
            return out;
        }
        out.push_str(piece);
        width += w;
    }
    out
}

/// The most names [`shown_names`] lists.
pub const NAMES: usize = 16;

/// Field names for a message: each [`shown`] and quoted, `, ` between them, at most [`NAMES`]
/// of them (then how many more there are).
pub fn shown_names(names: &[Vec<u8>]) -> String {
    let mut out: Vec<String> = names
        .iter()
        .take(NAMES)
        .map(|name| format!("\"{}\"", shown(name)))
        .collect();
    if names.len() > NAMES {
        out.push(format!("… ({} more)", names.len() - NAMES));
    }
    out.join(", ")
}

/// A path escaped for the terminal and cut in the middle (its end, the file name, is the part
/// that tells most) to [`WIDTH`] characters.
pub fn shown_path(path: &Path) -> String {
    let pieces = pieces(path.as_os_str().as_encoded_bytes());
    let total: usize = pieces.iter().map(|p| p.chars().count()).sum();
    if total <= WIDTH {
        return pieces.concat();
    }
    let (mut head, mut tail) = (Vec::new(), Vec::new());
    let (mut front, mut back) = (0, pieces.len());
    let mut width = 1; // the `…`
    loop {
        let take_back = tail.len() <= head.len();
        let piece = if take_back {
            &pieces[back - 1]
        } else {
            &pieces[front]
        };
        let w = piece.chars().count();
        if width + w > WIDTH {
            break;
        }
        width += w;
        if take_back {
            back -= 1;
            tail.push(piece.as_str());
        } else {
            front += 1;
            head.push(piece.as_str());
        }
    }
    tail.reverse();
    format!("{}…{}", head.concat(), tail.concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_invalid_bytes_are_shown_as_hex() {
        assert_eq!(shown(b"k\x1b]0;x\x07"), "k\\x1B]0;x\\x07");
        assert_eq!(shown(b"a\x7f\xff\xc3"), "a\\x7F\\xFF\\xC3");
        assert_eq!(shown("\u{9b}2J".as_bytes()), "\\xC2\\x9B2J");
        assert_eq!(shown("Zürich\u{202e}".as_bytes()), "Zürich\\xE2\\x80\\xAE");
        assert_eq!(shown(b"tab\there"), "tab\\x09here");
    }

    #[test]
    fn long_values_are_cut_to_the_width() {
        let cut = shown(&[b'K'; 10_000]);
        assert_eq!(cut.chars().count(), WIDTH);
        assert!(cut.ends_with('…'));
        assert_eq!(shown(&[b'K'; WIDTH]), "K".repeat(WIDTH));
        // An escape is never cut in half.
        let cut = shown(&[0x1b; 100]);
        assert!(
            cut.chars().count() <= WIDTH && cut.ends_with("\\x1B…"),
            "{cut}"
        );
        let path = format!("/{}/name.csv", "d".repeat(200));
        let cut = shown_path(Path::new(&path));
        assert_eq!(cut.chars().count(), WIDTH);
        assert!(cut.starts_with("/ddd") && cut.ends_with("d/name.csv") && cut.contains('…'));
    }

    #[test]
    fn names_are_listed_each_shown_and_not_too_many() {
        let names: Vec<Vec<u8>> = (0..20).map(|i| format!("c{i}").into_bytes()).collect();
        let list = shown_names(&names);
        assert!(list.starts_with("\"c0\", \"c1\"") && list.ends_with("\"c15\", … (4 more)"));
        assert_eq!(shown_names(&[b"a\x1b".to_vec()]), "\"a\\x1B\"");
    }
}
