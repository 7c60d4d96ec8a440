//! The reference splitter: `handoff partition`'s record semantics, written from the contract
//! (/work/partition-spec.md, items 1–9) and nothing else. Deliberately naive: one byte at a time,
//! the whole input in memory, no fast paths, no shared code with the binary.

use std::collections::BTreeMap;

/// The UTF-8 byte-order mark.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One record as the contract sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its bytes as they must appear in an output file: from its first byte (the BOM included
    /// for an input's first record) through its terminator; a last record without one gets the
    /// terminator the input used last before it, or `\n` (spec 4, 6, 7).
    pub out: Vec<u8>,
    /// Whether the input itself terminated it.
    pub terminated: bool,
    /// The unescaped field values (a leading BOM is not part of the first field).
    pub fields: Vec<Vec<u8>>,
    /// The 1-based line it starts on.
    pub line: usize,
}

/// One input, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// Every complete record, blank lines left out (spec 5).
    pub records: Vec<Record>,
    /// The input ended inside a quoted field that opened on this line (spec 9).
    pub unterminated: Option<usize>,
}

/// Parses one input (spec 2, 3, 5, 6, 7, 9).
///
/// Lines are counted at every terminator — `\n`, `\r\n` (once), a lone `\r` — inside quotes
/// too, so a line number is the physical line of the input.
pub fn parse(input: &[u8], delimiter: u8) -> Parsed {
    assert!(delimiter != b'"' && delimiter != b'\r' && delimiter != b'\n');
    let n = input.len();
    let mut records = Vec::new();
    let mut i = 0;
    let mut line = 1;
    // The terminator this input used last (outside quotes, blank lines included).
    let mut last_terminator: Option<&'static [u8]> = None;
    // The length of the terminator at `at` (outside quotes), if one starts there.
    let terminator_at = |at: usize| -> Option<&'static [u8]> {
        match input.get(at) {
            Some(b'\n') => Some(b"\n"),
            Some(b'\r') if input.get(at + 1) == Some(&b'\n') => Some(b"\r\n"),
            Some(b'\r') => Some(b"\r"),
            _ => None,
        }
    };
    while i < n {
        let start = i;
        if start == 0 && input.starts_with(BOM) {
            i = BOM.len();
        } else if let Some(t) = terminator_at(i) {
            // A blank line: not a record (spec 5).
            i += t.len();
            line += 1;
            last_terminator = Some(t);
            continue;
        }
        let record_line = line;
        let mut fields = Vec::new();
        let terminator = loop {
            let mut field = Vec::new();
            if input.get(i) == Some(&b'"') {
                let open_line = line;
                i += 1;
                loop {
                    match input.get(i) {
                        None => {
                            return Parsed {
                                records,
                                unterminated: Some(open_line),
                            }
                        }
                        Some(b'"') if input.get(i + 1) == Some(&b'"') => {
                            field.push(b'"');
                            i += 2;
                        }
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(&c) => {
                            if c == b'\n' || (c == b'\r' && input.get(i + 1) != Some(&b'\n')) {
                                line += 1;
                            }
                            field.push(c);
                            i += 1;
                        }
                    }
                }
            }
            // An unquoted field, or what follows a closing quote: literal up to the delimiter
            // or a terminator.
            while let Some(&c) = input.get(i) {
                if c == delimiter || c == b'\n' || c == b'\r' {
                    break;
                }
                field.push(c);
                i += 1;
            }
            fields.push(field);
            match input.get(i) {
                None => break None,
                Some(&c) if c == delimiter => i += 1,
                Some(_) => {
                    let t = terminator_at(i).unwrap();
                    i += t.len();
                    line += 1;
                    break Some(t);
                }
            }
        };
        let mut out = input[start..i].to_vec();
        if terminator.is_none() {
            out.extend_from_slice(last_terminator.unwrap_or(b"\n"));
        }
        last_terminator = terminator.or(last_terminator);
        records.push(Record {
            out,
            terminated: terminator.is_some(),
            fields,
            line: record_line,
        });
    }
    Parsed {
        records,
        unterminated: None,
    }
}

/// Which column holds the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    /// A header name (with headers).
    Name(Vec<u8>),
    /// A 1-based index (with `--no-headers`).
    Index(usize),
}

/// The options that change what is written.
#[derive(Debug, Clone)]
pub struct Options {
    pub headers: bool,
    pub delimiter: u8,
    pub column: Column,
    pub prefix_length: Option<usize>,
    pub skip_malformed: bool,
}

/// Why a run must fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Exit 1: a record's field count differs (spec 8). `input` is an index into the inputs.
    FieldCount { input: usize, line: usize },
    /// Exit 1: the input ended inside a quoted field opened on `line` (spec 9).
    Unterminated { input: usize, line: usize },
    /// Exit 1: an input's header names differ from the first's (spec 1).
    HeaderMismatch { input: usize },
    /// Exit 2: no such column (set-up refused).
    NoColumn,
}

/// What a run must leave behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Each key's file content: header (if any) + its records, in input order.
    pub files: BTreeMap<Vec<u8>, Vec<u8>>,
    /// For each key, the byte lengths at which its file holds whole records (the header alone
    /// included): the only lengths a cut-short file may have.
    pub boundaries: BTreeMap<Vec<u8>, Vec<usize>>,
    /// Records written.
    pub records: usize,
    /// Files written (keys with at least one record).
    pub written: usize,
    /// Records skipped as malformed.
    pub skipped: usize,
    /// The failure, if the run must fail. `files` then holds what precedes it.
    pub failure: Option<Failure>,
    /// How many columns make the key (see [`split_columns`]): the file names hold one value
    /// each, `,` between them.
    pub key_columns: usize,
}

impl Expected {
    /// The exit code the contract demands.
    pub fn exit_code(&self) -> i32 {
        match self.failure {
            None => 0,
            Some(Failure::NoColumn) => 2,
            Some(_) => 1,
        }
    }
}

/// The reference splitter over several inputs (spec 1–10), keyed on `options.column`.
pub fn split(inputs: &[Vec<u8>], options: &Options) -> Expected {
    split_columns(inputs, options, std::slice::from_ref(&options.column))
}

/// Appends `value` as a quoted field: in `"`, each `"` doubled.
pub fn quoted(value: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &c in value {
        if c == b'"' {
            out.push(b'"');
        }
        out.push(c);
    }
    out.push(b'"');
}

/// The key of several columns' `values`, as the oracle names it: the values written as a CSV
/// record (README, "Several key columns": `,` between them, a value holding `,`, `"`, `\r` or
/// `\n` quoted, `"` doubled), which is also what a cut name's hash is taken of. One value is
/// the key itself.
pub fn joined(values: &[Vec<u8>]) -> Vec<u8> {
    if let [value] = values {
        return value.clone();
    }
    let mut key = Vec::new();
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            key.push(b',');
        }
        if value
            .iter()
            .any(|c| matches!(c, b',' | b'"' | b'\r' | b'\n'))
        {
            quoted(value, &mut key);
        } else {
            key.extend_from_slice(value);
        }
    }
    key
}

/// The reference splitter over several inputs (spec 1–10), keyed on `columns` (one, or
/// several whose values make the key together, in the order given: README, "Several key
/// columns"; `options.column` is not used). A record that does not reach every key column is
/// malformed (spec 8); with `--no-headers`, a first record that does not is a missing column.
/// `--prefix-length` cuts each value. Each key is [`joined`].
pub fn split_columns(inputs: &[Vec<u8>], options: &Options, columns: &[Column]) -> Expected {
    assert!(!columns.is_empty(), "one key column at least");
    let mut expected = Expected {
        files: BTreeMap::new(),
        boundaries: BTreeMap::new(),
        records: 0,
        written: 0,
        skipped: 0,
        failure: None,
        key_columns: columns.len(),
    };
    let mut header: Option<Record> = None;
    let mut width: Option<usize> = None;
    let mut key_indexes: Option<Vec<usize>> = columns
        .iter()
        .map(|column| match column {
            Column::Index(k) => Some(k - 1),
            Column::Name(_) => None,
        })
        .collect();
    for (input_index, input) in inputs.iter().enumerate() {
        let parsed = parse(input, options.delimiter);
        let mut records = parsed.records.into_iter();
        if options.headers {
            let Some(this) = records.next() else {
                // An input without even a header: nothing to check or write.
                if let Some(line) = parsed.unterminated {
                    expected.failure = Some(Failure::Unterminated {
                        input: input_index,
                        line,
                    });
                    return expected;
                }
                continue;
            };
            match &header {
                None => {
                    let mut found = Vec::new();
                    for column in columns {
                        let Column::Name(name) = column else {
                            panic!("with headers the oracle names the column")
                        };
                        let Some(k) = this.fields.iter().position(|f| f == name) else {
                            expected.failure = Some(Failure::NoColumn);
                            return expected;
                        };
                        found.push(k);
                    }
                    key_indexes = Some(found);
                    width = Some(this.fields.len());
                    header = Some(this);
                }
                Some(first) => {
                    // `fields` never holds the BOM: headers compare without it (spec 7).
                    if first.fields != this.fields {
                        expected.failure = Some(Failure::HeaderMismatch { input: input_index });
                        return expected;
                    }
                }
            }
        }
        for record in records {
            let ks = key_indexes.as_ref().unwrap();
            let reaches = ks.iter().all(|&k| k < record.fields.len());
            if width.is_none() && !reaches {
                // Without headers the first record sets the field count: one too short for
                // a key column means the column is missing (spec 12: exit 2), not one
                // malformed record (spec 8).
                expected.failure = Some(Failure::NoColumn);
                return expected;
            }
            let width = *width.get_or_insert(record.fields.len());
            if record.fields.len() != width || !reaches {
                if options.skip_malformed {
                    expected.skipped += 1;
                    continue;
                }
                expected.failure = Some(Failure::FieldCount {
                    input: input_index,
                    line: record.line,
                });
                return expected;
            }
            let values: Vec<Vec<u8>> = ks
                .iter()
                .map(|&k| {
                    let mut value = record.fields[k].clone();
                    if let Some(p) = options.prefix_length {
                        value.truncate(p);
                    }
                    value
                })
                .collect();
            let key = joined(&values);
            let header_bytes = header.as_ref().map(|h| h.out.clone()).unwrap_or_default();
            let bounds = expected
                .boundaries
                .entry(key.clone())
                .or_insert_with(|| vec![header_bytes.len()]);
            if !expected.files.contains_key(&key) {
                expected.written += 1;
            }
            let file = expected.files.entry(key).or_insert(header_bytes);
            file.extend_from_slice(&record.out);
            bounds.push(file.len());
            expected.records += 1;
        }
        if let Some(line) = parsed.unterminated {
            expected.failure = Some(Failure::Unterminated {
                input: input_index,
                line,
            });
            return expected;
        }
    }
    expected
}
