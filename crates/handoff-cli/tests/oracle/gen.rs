//! Generated CSV inputs (proptest strategies) and the fields each one is meant to hold.
//!
//! The generator knows what it meant to write; the reference parser only sees the bytes. The
//! property test checks the two agree (a cheap check of the reference) before judging the
//! binary with the reference.

use proptest::prelude::*;
use proptest::sample::select;

use super::csv::{quoted, BOM};

/// A record terminator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Term {
    Lf,
    CrLf,
    Cr,
}

impl Term {
    pub fn bytes(self) -> &'static [u8] {
        match self {
            Term::Lf => b"\n",
            Term::CrLf => b"\r\n",
            Term::Cr => b"\r",
        }
    }
}

/// How a field is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enc {
    /// Raw, when the value allows it (else quoted).
    Plain,
    /// `"…"` with doubled quotes.
    Quoted,
    /// `"…"` followed by these literal bytes (no delimiter, terminator; not starting with `"`).
    Tail(Vec<u8>),
}

#[derive(Debug, Clone)]
pub struct Field {
    pub value: Vec<u8>,
    pub enc: Enc,
}

#[derive(Debug, Clone)]
pub struct GenRecord {
    pub fields: Vec<Field>,
    pub term: Term,
    /// -1: one field fewer, +1: one more, 0: well-formed.
    pub extra: i8,
    pub blanks_after: Vec<Term>,
}

#[derive(Debug, Clone)]
pub struct GenInput {
    pub bom: bool,
    pub leading_blanks: Vec<Term>,
    pub header: Option<GenRecord>,
    pub records: Vec<GenRecord>,
    /// Whether the last record (or the header) is terminated.
    pub final_term: bool,
    /// Ends the input inside a quoted field: (fields before it, the open field's content).
    pub unterminated: Option<(usize, Vec<u8>)>,
}

/// How an existing file to be appended to begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendTo {
    Empty,
    /// The run's header (with or without a BOM), then an old record.
    SameHeader {
        bom: bool,
    },
    /// Another header: the run must refuse (spec 13).
    OtherHeader,
}

/// What OUTDIR holds before the run.
#[derive(Debug, Clone)]
pub enum Outdir {
    /// Nothing: the run creates it.
    Fresh,
    /// Files for these keys, to be replaced where this run writes (`--force`).
    Force(Vec<&'static str>),
    /// Files for these keys, to be appended to (`--append`).
    Append(Vec<(&'static str, AppendTo)>),
}

fn outdir() -> impl Strategy<Value = Outdir> {
    let key = || select(vec!["a", "b", "A", "zzz"]);
    prop_oneof![
        6 => Just(Outdir::Fresh),
        1 => prop::collection::vec(key(), 1..3).prop_map(Outdir::Force),
        1 => prop::collection::vec(
            (
                key(),
                prop_oneof![
                    2 => Just(AppendTo::Empty),
                    5 => prop::bool::ANY.prop_map(|bom| AppendTo::SameHeader { bom }),
                    1 => Just(AppendTo::OtherHeader),
                ],
            ),
            1..3
        )
        .prop_map(Outdir::Append),
    ]
}

/// One generated run.
#[derive(Debug, Clone)]
pub struct Case {
    pub headers: bool,
    pub delimiter: u8,
    pub key_index: usize,
    pub key_name: Vec<u8>,
    pub prefix_length: Option<usize>,
    pub max_open: Option<usize>,
    pub memory: Option<&'static str>,
    /// `--filename` (`{}.csv` is the default, not passed).
    pub template: &'static str,
    /// OUTDIR before the run (`--force`, `--append`).
    pub outdir: Outdir,
    pub skip_malformed: bool,
    /// The last input comes from standard input.
    pub stdin: bool,
    /// Every input that is a file is parsed by two threads, however small
    /// (`HANDOFF_PARTITION_SPLIT_MIN=1`: see the CLI's `partition::halves`).
    pub split: bool,
    pub inputs: Vec<GenInput>,
}

/// Keys meant to break file naming.
pub fn hostile_keys() -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = [
        &b""[..],
        b"/",
        b"a/b",
        b"..",
        b".",
        b".x",
        b"\0",
        b"\x01\x7f",
        b"\x1b[2J\x1b]0;PWNED\x07",
        b"%",
        b"%41",
        b"%empty",
        b"empty",
        b"~",
        b"x~0123456789abcdef",
        b"\xc3\xa9",
        "日本".as_bytes(),
        b"\xff\xfe",
        b"\x80",
        b"CON",
        b"con",
        b"aux",
        b"Nul",
        b"COM1",
        b"lpt9",
        b" ",
        b"a b",
        b"\\",
        b"\t",
        b"\r",
        b"\n",
        b"\r\n",
        b"\"",
        b"a\"b",
        b"\"a",
        b",",
        b";",
        b"|",
    ]
    .iter()
    .map(|k| k.to_vec())
    .collect();
    keys.push(vec![b'a'; 201]);
    keys.push(vec![b'a'; 250]);
    let mut twin = vec![b'a'; 250];
    twin[249] = b'b';
    keys.push(twin);
    keys.push(b"/".repeat(80));
    keys.push("é".repeat(120).into_bytes());
    keys
}

fn key_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => select(vec![b"a".to_vec(), b"b".to_vec(), b"A".to_vec(), b"ab".to_vec(), b"abc".to_vec()]),
        3 => select(hostile_keys()),
        1 => prop::collection::vec(select(b"aA/.%\"\r\n, \x00\xff".to_vec()), 0..5),
    ]
}

fn other_value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(select(b"xy \"\",;\t|\r\n\x00\xc3\xa9".to_vec()), 0..7)
}

fn enc() -> impl Strategy<Value = Enc> {
    prop_oneof![
        5 => Just(Enc::Plain),
        3 => Just(Enc::Quoted),
        1 => (select(b"x ".to_vec()), prop::collection::vec(select(b"x\" ".to_vec()), 0..3))
            .prop_map(|(first, mut rest)| { rest.insert(0, first); Enc::Tail(rest) }),
    ]
}

fn term() -> impl Strategy<Value = Term> {
    prop_oneof![3 => Just(Term::Lf), 3 => Just(Term::CrLf), 1 => Just(Term::Cr)]
}

pub fn record(ncols: usize, key_index: usize, malformed: bool) -> impl Strategy<Value = GenRecord> {
    let fields: Vec<BoxedStrategy<Field>> = (0..ncols)
        .map(|i| {
            let value = if i == key_index {
                key_value().boxed()
            } else {
                other_value().boxed()
            };
            (value, enc())
                .prop_map(|(value, enc)| Field { value, enc })
                .boxed()
        })
        .collect();
    let extra = if malformed {
        prop_oneof![14 => Just(0i8), 1 => Just(-1i8), 1 => Just(1i8)].boxed()
    } else {
        Just(0i8).boxed()
    };
    let blanks = prop_oneof![5 => Just(vec![]), 1 => prop::collection::vec(term(), 1..3)];
    (fields, term(), extra, blanks).prop_map(|(fields, term, extra, blanks_after)| GenRecord {
        fields,
        term,
        extra,
        blanks_after,
    })
}

pub fn header(names: Vec<Vec<u8>>) -> impl Strategy<Value = GenRecord> {
    let n = names.len();
    // No tails in a header: its names are fixed (a tail would rename the column).
    let plain_or_quoted = prop_oneof![Just(Enc::Plain), Just(Enc::Quoted)];
    (prop::collection::vec(plain_or_quoted, n), term()).prop_map(move |(encs, term)| GenRecord {
        fields: names
            .iter()
            .zip(encs)
            .map(|(value, enc)| Field {
                value: value.clone(),
                enc,
            })
            .collect(),
        term,
        extra: 0,
        blanks_after: vec![],
    })
}

fn input(
    names: Option<Vec<Vec<u8>>>,
    ncols: usize,
    key_index: usize,
    malformed: bool,
    first: bool,
    records: std::ops::Range<usize>,
) -> impl Strategy<Value = GenInput> {
    let header = match names {
        Some(names) => header(names).prop_map(Some).boxed(),
        None => Just(None).boxed(),
    };
    (
        prop::bool::weighted(0.2),
        prop_oneof![4 => Just(vec![]), 1 => prop::collection::vec(term(), 1..3)],
        header,
        prop::collection::vec(record(ncols, key_index, malformed), records),
        prop::bool::weighted(0.75),
        if malformed {
            prop::option::weighted(
                0.15,
                (
                    0..ncols,
                    prop::collection::vec(select(b"u,\r\n".to_vec()), 0..5),
                ),
            )
            .boxed()
        } else {
            Just(None).boxed()
        },
    )
        .prop_map(
            move |(bom, leading_blanks, header, mut records, final_term, unterminated)| {
                // The first record of a headerless run sets the width: keep it well-formed.
                if first && header.is_none() {
                    if let Some(r) = records.first_mut() {
                        r.extra = 0;
                    }
                }
                GenInput {
                    bom,
                    leading_blanks: if bom { vec![] } else { leading_blanks },
                    header,
                    records,
                    final_term,
                    unterminated,
                }
            },
        )
}

/// A whole run: options and 1–3 inputs.
pub fn case() -> impl Strategy<Value = Case> {
    case_sized(0..10)
}

/// A whole run whose inputs hold `records` records each (besides the header).
pub fn case_sized(records: std::ops::Range<usize>) -> impl Strategy<Value = Case> {
    let (least, most) = (records.start, records.end);
    (
        prop::bool::weighted(0.8),
        select(b",;\t|".to_vec()),
        1..=4usize,
        prop::bool::weighted(0.3),
    )
        .prop_flat_map(move |(headers, delimiter, ncols, malformed)| {
            (0..ncols).prop_flat_map(move |key_index| {
                let key_name = select(vec![
                    b"k".to_vec(),
                    b"key name".to_vec(),
                    "ké".as_bytes().to_vec(),
                    b"a,b".to_vec(),
                    b"\"q\"".to_vec(),
                    b"x\r\ny".to_vec(),
                ]);
                (key_name, 1..=3usize).prop_flat_map(move |(key_name, ninputs)| {
                    let names: Option<Vec<Vec<u8>>> = headers.then(|| {
                        (0..ncols)
                            .map(|i| {
                                if i == key_index {
                                    key_name.clone()
                                } else {
                                    format!("c{i}").into_bytes()
                                }
                            })
                            .collect()
                    });
                    let inputs: Vec<_> = (0..ninputs)
                        .map(|i| {
                            let records = least..most;
                            input(names.clone(), ncols, key_index, malformed, i == 0, records)
                                .boxed()
                        })
                        .collect();
                    (
                        Just(key_name),
                        inputs,
                        prop::option::weighted(0.25, 1..=4usize),
                        prop::option::weighted(0.5, select(vec![1usize, 2, 3, 8])),
                        prop::option::weighted(0.5, select(vec!["64", "300", "1K", "4K"])),
                        prop::bool::ANY,
                        prop::bool::weighted(0.3),
                        prop::bool::weighted(if malformed { 0.15 } else { 0.0 }),
                        prop_oneof![4 => Just("{}.csv"), 1 => Just("p-{}.txt"), 1 => Just("{}")],
                        outdir(),
                        prop::bool::ANY,
                    )
                        .prop_map(
                            move |(
                                key_name,
                                mut inputs,
                                prefix_length,
                                max_open,
                                memory,
                                skip_malformed,
                                stdin,
                                mismatch,
                                template,
                                outdir,
                                split,
                            )| {
                                // A later input whose header names another column.
                                if mismatch {
                                    if let Some(header) =
                                        inputs.last_mut().and_then(|i| i.header.as_mut())
                                    {
                                        header.fields[0].value.extend_from_slice(b"X");
                                    }
                                }
                                Case {
                                    headers,
                                    delimiter,
                                    key_index,
                                    key_name,
                                    prefix_length,
                                    max_open,
                                    memory,
                                    template,
                                    outdir,
                                    skip_malformed,
                                    stdin,
                                    split,
                                    inputs,
                                }
                            },
                        )
                })
            })
        })
}

/// Writes one field; returns its value as a parser must read it back.
fn render_field(out: &mut Vec<u8>, field: &Field, delimiter: u8, alone: bool) -> Vec<u8> {
    let v = &field.value;
    let must_quote = v.contains(&delimiter)
        || v.contains(&b'\r')
        || v.contains(&b'\n')
        || v.first() == Some(&b'"')
        // A lone empty field would be a blank line.
        || (alone && v.is_empty())
        // A value that begins with a BOM's bytes is not generated, but be safe.
        || v.starts_with(BOM);
    match &field.enc {
        Enc::Plain if !must_quote => {
            out.extend_from_slice(v);
            v.clone()
        }
        Enc::Plain | Enc::Quoted => {
            quoted(v, out);
            v.clone()
        }
        Enc::Tail(tail) => {
            quoted(v, out);
            out.extend_from_slice(tail);
            let mut value = v.clone();
            value.extend_from_slice(tail);
            value
        }
    }
}

/// Writes `term`, unless it would merge with a `\r` just written into one `\r\n`.
fn render_term(out: &mut Vec<u8>, term: Term) {
    if term == Term::Lf && out.last() == Some(&b'\r') {
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(term.bytes());
    }
}

/// An input's bytes, and the fields of each record (header included) it is meant to hold, and
/// whether it ends inside a quoted field.
pub fn render(input: &GenInput, delimiter: u8) -> (Vec<u8>, Vec<Vec<Vec<u8>>>, bool) {
    let mut out = Vec::new();
    let mut meant = Vec::new();
    let all: Vec<&GenRecord> = input.header.iter().chain(&input.records).collect();
    // A BOM alone would be a record of one empty field: only with something after it.
    if input.bom && (!all.is_empty() || input.unterminated.is_some()) {
        out.extend_from_slice(BOM);
    }
    for &t in &input.leading_blanks {
        render_term(&mut out, t);
    }
    for (i, record) in all.iter().enumerate() {
        let mut fields = record.fields.clone();
        match record.extra {
            -1 if fields.len() > 1 => {
                fields.pop();
            }
            0 => {}
            _ => fields.push(Field {
                value: b"z".to_vec(),
                enc: Enc::Plain,
            }),
        }
        let mut values = Vec::new();
        for (j, field) in fields.iter().enumerate() {
            if j > 0 {
                out.push(delimiter);
            }
            values.push(render_field(&mut out, field, delimiter, fields.len() == 1));
        }
        meant.push(values);
        let last = i + 1 == all.len();
        if !last || input.final_term || input.unterminated.is_some() {
            render_term(&mut out, record.term);
            for &t in &record.blanks_after {
                render_term(&mut out, t);
            }
        }
    }
    if let Some((before, content)) = &input.unterminated {
        for _ in 0..*before {
            out.extend_from_slice(b"u");
            out.push(delimiter);
        }
        out.push(b'"');
        out.extend_from_slice(content);
    }
    (out, meant, input.unterminated.is_some())
}
