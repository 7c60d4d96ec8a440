//! Where a key's records go: the path of its file under OUTDIR, for the flat layout (a
//! `--filename` template, which may hold `/`) and the hive layout (`COLUMN=value/…/data.csv`).
//!
//! A key of several columns travels through the run as one byte string, its parts encoded as
//! a CSV record would write them ([`join_key`]: a part holding `,`, `"`, `\r` or `\n` is
//! quoted, `"` doubled), which is injective and reads well in messages (`AA,JFK`).
//!
//! - **Flat**: the escaped key ([`super::names::escape`]) takes the place of `{}` in the
//!   template; several columns are escaped one by one and joined with [`SEPARATOR`], which
//!   the escaping never writes (so the name still decodes to one key), then cut as a whole if
//!   over 200 bytes, with the hash of the joined key (its values as a CSV record). A template may hold `/`: its directories are made under OUTDIR.
//! - **Hive**: one directory per key column, in order, named `COLUMN=value`, then the file
//!   (`data.csv` unless `--filename` says otherwise). COLUMN is written as given on the command
//!   line (a header name, or the index with `--no-headers`), escaped like a flat name; the value
//!   is percent-encoded: ASCII letters, digits, `-`, `_`, `.` stay, every other byte is `%XX`,
//!   and the empty value stays empty (`COLUMN=`). That is what DuckDB, Arrow and Spark decode
//!   (`%XX` to the byte). A value whose encoding passes 200 bytes is cut and hashed as flat
//!   names are (readers then see the cut form).
//!
//! No component is ever empty, `.` or `..`, and none holds `/`, `\` or NUL: every path stays
//! under OUTDIR.

use std::collections::HashMap;

use super::names::{self, cut_long, is_plain, push_escaped, LONGEST};

/// Joins the escaped parts of a key of several columns in a flat file name.
pub const SEPARATOR: char = ',';

/// The longest escaped column name a hive directory may start with (so that `COLUMN=` and
/// the longest value fit in a file name of 255 bytes).
pub const HIVE_COLUMN_MAX: usize = 54;

/// The most bytes a file name (one component of a path) may have.
pub const NAME_MAX: usize = 255;

/// Appends the key of several columns made of `parts` to `out` (see the module docs).
pub fn join_key<'a>(parts: impl IntoIterator<Item = &'a [u8]>, out: &mut Vec<u8>) {
    for (i, part) in parts.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if part
            .iter()
            .any(|&b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
        {
            out.push(b'"');
            for &byte in part {
                if byte == b'"' {
                    out.push(b'"');
                }
                out.push(byte);
            }
            out.push(b'"');
        } else {
            out.extend_from_slice(part);
        }
    }
}

/// The parts of a key made by [`join_key`].
pub fn split_key(key: &[u8]) -> Vec<Vec<u8>> {
    let mut parts = vec![Vec::new()];
    let mut i = 0;
    let mut quoted = false;
    while i < key.len() {
        let byte = key[i];
        let part = parts.last_mut().expect("one part at least");
        match (quoted, byte) {
            (false, b'"') if part.is_empty() => quoted = true,
            (false, b',') => parts.push(Vec::new()),
            (true, b'"') if key.get(i + 1) == Some(&b'"') => {
                part.push(b'"');
                i += 1;
            }
            (true, b'"') => quoted = false,
            _ => part.push(byte),
        }
        i += 1;
    }
    parts
}

/// One component of the paths a layout makes, for finding the files it could write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Component {
    /// Always this name.
    Literal(String),
    /// `prefix`, something made from the key (empty only if `may_be_empty`: a hive value),
    /// `suffix`.
    Hole {
        prefix: String,
        suffix: String,
        may_be_empty: bool,
    },
}

impl Component {
    /// Whether `name` could be this component.
    pub fn fits(&self, name: &[u8]) -> bool {
        match self {
            Component::Literal(literal) => name == literal.as_bytes(),
            Component::Hole {
                prefix,
                suffix,
                may_be_empty,
            } => {
                name.len() >= prefix.len() + suffix.len() + usize::from(!may_be_empty)
                    && name.starts_with(prefix.as_bytes())
                    && name.ends_with(suffix.as_bytes())
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Kind {
    /// `prefix` + the name + `suffix` (either may hold `/`).
    Flat { prefix: String, suffix: String },
    /// `COLUMN=` for each column (escaped), then the file name.
    Hive { columns: Vec<String>, file: String },
}

/// How keys become paths under OUTDIR, and the names given out so far (to refuse two keys
/// whose cut names collide).
#[derive(Clone, Debug)]
pub struct Layout {
    kind: Kind,
    /// How many key columns.
    columns: usize,
    /// Paths with a cut (hashed) component, and the key each was made for.
    cut: HashMap<String, Vec<u8>>,
}

/// Whether a path component is one that could leave OUTDIR or name nothing.
fn bad_component(component: &str) -> Option<&'static str> {
    match component {
        "" => Some("an empty component (`//`, or a `/` at the start or the end)"),
        "." | ".." => Some("a `.` or `..` component"),
        _ => None,
    }
}

impl Layout {
    /// The flat layout: `template` (one `{}`; `/` allowed between components) for keys of
    /// `columns` columns. The message says what is wrong with the template.
    pub fn flat(template: &str, columns: usize) -> Result<Layout, String> {
        if template.matches("{}").count() != 1 {
            return Err("must contain `{}` exactly once (where the key goes)".into());
        }
        if template.contains(['\\', '\0']) {
            return Err("must not hold `\\` or NUL".into());
        }
        if template.starts_with('/') {
            return Err("must be a path relative to OUTDIR, not an absolute one".into());
        }
        for component in template.split('/') {
            if let Some(why) = bad_component(component) {
                return Err(format!("must not hold {why}"));
            }
            let longest = if component.contains("{}") {
                component.len() - 2 + LONGEST
            } else {
                component.len()
            };
            if longest > NAME_MAX {
                return Err(format!(
                    "is too long: with the longest escaped key ({LONGEST} bytes) a name would be \
                     {longest} bytes, over the {NAME_MAX} a file name may have; keep the other \
                     text of the component holding `{{}}` within {} bytes",
                    NAME_MAX - LONGEST
                ));
            }
        }
        let (prefix, suffix) = template.split_once("{}").expect("one `{}`");
        Ok(Layout {
            kind: Kind::Flat {
                prefix: prefix.to_owned(),
                suffix: suffix.to_owned(),
            },
            columns,
            cut: HashMap::new(),
        })
    }

    /// The hive layout: a directory per column of `columns` (as given on the command line),
    /// then `file` (a plain file name).
    pub fn hive(columns: &[String], file: &str) -> Result<Layout, String> {
        if file.contains(['/', '\\', '\0']) || file.contains("{}") {
            return Err(format!(
                "with --layout hive, --filename is the file in each directory: a plain name, \
                 without `/`, `\\`, NUL or `{{}}`, not \"{}\"",
                super::display::shown(file.as_bytes())
            ));
        }
        if let Some(why) = bad_component(file) {
            return Err(format!("--filename must not be {why}"));
        }
        if file.len() > NAME_MAX {
            return Err(format!(
                "--filename is {} bytes, over the {NAME_MAX} a file name may have",
                file.len()
            ));
        }
        let mut escaped = Vec::new();
        for column in columns {
            let name = names::escape(column.as_bytes());
            if name.len() > HIVE_COLUMN_MAX {
                return Err(format!(
                    "with --layout hive, a column name escapes to at most {HIVE_COLUMN_MAX} \
                     bytes (it starts every directory name), not {} (\"{}\")",
                    name.len(),
                    super::display::shown(column.as_bytes())
                ));
            }
            escaped.push(format!("{name}="));
        }
        Ok(Layout {
            kind: Kind::Hive {
                columns: escaped,
                file: file.to_owned(),
            },
            columns: columns.len(),
            cut: HashMap::new(),
        })
    }

    /// The components of every path this layout makes (for finding existing files).
    pub fn components(&self) -> Vec<Component> {
        match &self.kind {
            Kind::Flat { prefix, suffix } => {
                let template = format!("{prefix}{{}}{suffix}");
                template
                    .split('/')
                    .map(|component| match component.split_once("{}") {
                        Some((prefix, suffix)) => Component::Hole {
                            prefix: prefix.to_owned(),
                            suffix: suffix.to_owned(),
                            may_be_empty: false,
                        },
                        None => Component::Literal(component.to_owned()),
                    })
                    .collect()
            }
            Kind::Hive { columns, file } => columns
                .iter()
                .map(|column| Component::Hole {
                    prefix: column.clone(),
                    suffix: String::new(),
                    may_be_empty: true,
                })
                .chain([Component::Literal(file.clone())])
                .collect(),
        }
    }

    /// The path (`/` between components) of `key`'s file under OUTDIR, for a key not seen
    /// before in this run. Fails only if two keys' cut names collide.
    pub fn path(&mut self, key: &[u8]) -> Result<String, String> {
        let mut cut = false;
        let path = match &self.kind {
            Kind::Flat { prefix, suffix } => {
                let name = if self.columns == 1 {
                    let name = names::escape(key);
                    cut = name.len() > LONGEST;
                    name
                } else {
                    let mut name = String::new();
                    for (i, part) in split_key(key).iter().enumerate() {
                        if i > 0 {
                            name.push(SEPARATOR);
                        }
                        name.push_str(&names::escape_uncut(part));
                    }
                    cut = cut_long(&mut name, key);
                    name
                };
                format!("{prefix}{name}{suffix}")
            }
            Kind::Hive { columns, file } => {
                let mut path = String::new();
                for (column, part) in columns.iter().zip(split_parts(key, self.columns)) {
                    path.push_str(column);
                    let mut value = percent_encoded(&part);
                    cut |= cut_long(&mut value, &part);
                    path.push_str(&value);
                    path.push('/');
                }
                path.push_str(file);
                path
            }
        };
        if cut {
            if let Some(other) = self.cut.insert(path.clone(), key.to_vec()) {
                if other != key {
                    return Err(format!("two long keys share the file name {path}"));
                }
            }
        }
        Ok(path)
    }
}

/// The parts of `key` for a layout of `columns` columns.
fn split_parts(key: &[u8], columns: usize) -> Vec<Vec<u8>> {
    if columns == 1 {
        vec![key.to_vec()]
    } else {
        split_key(key)
    }
}

/// A hive value: plain bytes as they are, every other byte `%XX`; empty stays empty.
pub fn percent_encoded(value: &[u8]) -> String {
    let mut out = String::with_capacity(value.len());
    for &byte in value {
        if is_plain(byte) {
            out.push(byte as char);
        } else {
            push_escaped(&mut out, byte);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_several_columns_split_back_to_their_parts() {
        let cases: [&[&[u8]]; 6] = [
            &[b"AA", b"JFK"],
            &[b"", b""],
            &[b"a,b", b"\"q\""],
            &[b",", b"\"", b""],
            &[b"x\ny", b"\r"],
            &[b"\"a", b"b\""],
        ];
        let mut seen = HashMap::new();
        for parts in cases {
            let mut key = Vec::new();
            join_key(parts.iter().copied(), &mut key);
            assert_eq!(split_key(&key), parts, "{key:?}");
            assert!(seen.insert(key, parts).is_none());
        }
    }

    #[test]
    fn templates_with_directories_are_checked() {
        for bad in [
            "../{}.csv",
            "{}/../x.csv",
            "/abs/{}.csv",
            "a//{}.csv",
            "{}/",
            "./{}.csv",
            "{}/.",
            "a\\{}",
            "{}{}",
            "x.csv",
        ] {
            assert!(Layout::flat(bad, 1).is_err(), "{bad}");
        }
        let mut layout = Layout::flat("{}/cities.csv", 1).unwrap();
        assert_eq!(layout.path(b"MA").unwrap(), "MA/cities.csv");
        assert_eq!(layout.path(b"..").unwrap(), "%2E./cities.csv");
        assert_eq!(layout.path(b"a/b").unwrap(), "a%2Fb/cities.csv");
        assert_eq!(
            layout.components(),
            [
                Component::Hole {
                    prefix: String::new(),
                    suffix: String::new(),
                    may_be_empty: false,
                },
                Component::Literal("cities.csv".into())
            ]
        );
        let flat = &Layout::flat("{}.csv", 1).unwrap().components()[0];
        assert!(flat.fits(b"a.csv") && !flat.fits(b".csv") && !flat.fits(b"a.tsv"));
        let hive = &Layout::hive(&["c".into()], "d.csv").unwrap().components()[0];
        assert!(hive.fits(b"c=") && hive.fits(b"c=x") && !hive.fits(b"d=x"));
    }

    #[test]
    fn several_columns_flat_and_hive() {
        let mut key = Vec::new();
        join_key([&b"AA"[..], b"J/K"], &mut key);
        let mut flat = Layout::flat("{}.csv", 2).unwrap();
        assert_eq!(flat.path(&key).unwrap(), "AA,J%2FK.csv");
        let columns = ["carrier".to_owned(), "ori gin".to_owned()];
        let mut hive = Layout::hive(&columns, "data.csv").unwrap();
        assert_eq!(
            hive.path(&key).unwrap(),
            "carrier=AA/ori%20gin=J%2FK/data.csv"
        );
        key.clear();
        join_key([&b""[..], b".."], &mut key);
        assert_eq!(hive.path(&key).unwrap(), "carrier=/ori%20gin=../data.csv");
        let mut one = Layout::hive(&columns[..1], "x.csv").unwrap();
        assert_eq!(one.path(b"a,b").unwrap(), "carrier=a%2Cb/x.csv");
        assert!(Layout::hive(&columns, "a/b").is_err());
        assert!(Layout::hive(&columns, "..").is_err());
        assert!(Layout::hive(&["c".repeat(60)], "data.csv").is_err());
    }

    #[test]
    fn long_values_are_cut_and_fit_a_file_name() {
        let columns = ["c".repeat(HIVE_COLUMN_MAX - 1)];
        let mut hive = Layout::hive(&columns, "data.csv").unwrap();
        let path = hive.path(&[0xff; 1000]).unwrap();
        assert!(path.split('/').all(|c| c.len() <= NAME_MAX), "{path}");
        let mut flat = Layout::flat("{}.csv", 3).unwrap();
        let mut key = Vec::new();
        join_key([&[b'%'; 300][..], b"a", b"b"], &mut key);
        let path = flat.path(&key).unwrap();
        assert!(path.len() <= NAME_MAX && path.contains('~'), "{path}");
    }
}
