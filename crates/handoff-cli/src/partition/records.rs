//! Splits an input into records, each with its exact bytes, its key field and its line.
//!
//! The rules (the README's): a record ends at `\n`, `\r\n` or a lone
//! `\r` outside quotes, and its bytes run from its first byte through its terminator, exactly
//! as in the input; a terminator at the start of a record is a blank line, skipped; a UTF-8
//! BOM at the start of the input belongs to the first record's bytes but not to its first
//! field; the last record may lack a terminator ([`Record::missing`] says which one to give
//! it); the input may not end inside a quoted field.
//!
//! Fields are decoded by `csv-core`; runs of input with no quote are plain lines, split with
//! `memchr` instead. Terminators are this module's business, not csv-core's: csv-core ends a
//! record at the `\r` of a `\r\n` and leaves the `\n` for the next call, so after each record
//! the splitter takes a `\n` that follows a `\r` (reading more first if the `\r` ended the
//! buffer).

use std::io::{self, Read};

use csv_core::ReadRecordResult;

/// The UTF-8 byte order mark.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One record of the input.
pub struct Record<'a> {
    /// The input's BOM, if this is its first record and it had one; written before `raw`.
    pub bom: &'static [u8],
    /// The record's bytes as in the input, with its terminator (if it had one).
    pub raw: &'a [u8],
    /// The key field, unquoted; `None` if the record has too few fields.
    pub key: Option<&'a [u8]>,
    /// How many fields the record has.
    pub fields: usize,
    /// The line the record starts on (1-based; `\n`, `\r\n` and a lone `\r` end lines).
    pub line: u64,
    /// The terminator to write after `raw`: empty if it has its own; else the one the input
    /// used last before it, or `\n` if it used none.
    pub missing: &'static [u8],
}

/// A plain record found by [`Splitter::next_plain`]: where its bytes and its key lie in the
/// splitter's buffer ([`Splitter::span`] gives them), valid until the next
/// [`Splitter::next_record`]. It has its terminator, no BOM and no quote.
#[derive(Clone, Copy, Debug)]
pub struct Span {
    start: usize,
    end: usize,
    /// The key's bytes; `None` if the record has too few fields.
    key: Option<(usize, usize)>,
    /// How many fields the record has.
    pub fields: usize,
    /// The line the record is on (1-based).
    pub line: u64,
}

/// Why the input could not be split.
#[derive(Debug)]
pub enum SplitError {
    /// Reading failed.
    Io(io::Error),
    /// The input ended inside a quoted field, opened on this line.
    UnterminatedQuote { line: u64 },
}

impl From<io::Error> for SplitError {
    fn from(error: io::Error) -> SplitError {
        SplitError::Io(error)
    }
}

/// Where a record's key was found, in the splitter's buffers.
enum KeyAt {
    Raw(usize, usize),
    Decoded(usize, usize),
    Missing,
}

/// How a record found by the CSV path ends.
enum Ending {
    /// With a terminator, `len` bytes long in all.
    Terminated(usize),
    /// At the end of the input, with no terminator.
    Unterminated,
}

const CHUNK: usize = 1 << 20;

pub struct Splitter<R> {
    input: R,
    buf: Vec<u8>,
    /// Unparsed data is `buf[pos..end]`.
    pos: usize,
    end: usize,
    eof: bool,
    /// No quote in `buf[pos..plain_until]`: plain lines up to there.
    plain_until: usize,
    /// Whether the start of the input was looked at for a BOM.
    bom_checked: bool,
    /// A BOM was seen and not yet given to a record.
    bom_pending: bool,
    parser: csv_core::Reader,
    decoded: Vec<u8>,
    ends: Vec<usize>,
    delimiter: u8,
    /// 0-based key column.
    column: usize,
    line: u64,
    /// The last terminator seen (`\n` before any).
    last_terminator: &'static [u8],
    bytes_read: u64,
    stopped: bool,
}

/// The terminator that `bytes` ends with, if any.
pub fn terminator_of(bytes: &[u8]) -> Option<&'static [u8]> {
    match bytes {
        [.., b'\r', b'\n'] => Some(b"\r\n"),
        [.., b'\n'] => Some(b"\n"),
        [.., b'\r'] => Some(b"\r"),
        _ => None,
    }
}

/// How many times `byte` occurs in `bytes`: counted in runs of at most 255 into a `u8`, which
/// the compiler turns into vector compares (a search per occurrence costs more on short lines).
fn count(bytes: &[u8], byte: u8) -> usize {
    bytes
        .chunks(255)
        .map(|run| {
            let n = run.iter().fold(0u8, |n, &b| n + u8::from(b == byte));
            usize::from(n)
        })
        .sum()
}

/// Line breaks in `bytes`: every `\n`, and every `\r` not followed by `\n`.
fn line_breaks(bytes: &[u8]) -> u64 {
    memchr::memchr2_iter(b'\n', b'\r', bytes)
        .filter(|&at| bytes[at] == b'\n' || bytes.get(at + 1) != Some(&b'\n'))
        .count() as u64
}

/// Where the quote that opened the still-open field of `raw` (a record the input ended in)
/// is: the rules of quoting (a field that starts with `"`, `""` inside it), for the message.
fn opening_quote(raw: &[u8], delimiter: u8) -> usize {
    let (mut open, mut in_quotes, mut after_quote, mut field_start) = (0, false, false, true);
    for (at, &byte) in raw.iter().enumerate() {
        if in_quotes {
            if byte == b'"' {
                in_quotes = false;
                after_quote = true;
            }
            continue;
        }
        if after_quote && byte == b'"' {
            in_quotes = true; // `""`: one quote, still inside the same field
            after_quote = false;
            continue;
        }
        after_quote = false;
        if field_start && byte == b'"' {
            in_quotes = true;
            open = at;
            field_start = false;
            continue;
        }
        field_start = byte == delimiter;
    }
    open
}

impl<R: Read> Splitter<R> {
    pub fn new(input: R, delimiter: u8, column: usize) -> Splitter<R> {
        Splitter::with_buffer(input, delimiter, column, CHUNK)
    }

    /// A splitter whose buffer starts at `capacity` bytes (it grows for longer records): small
    /// for reading just a header.
    pub fn with_buffer(input: R, delimiter: u8, column: usize, capacity: usize) -> Splitter<R> {
        Splitter {
            input,
            buf: vec![0; capacity.max(1)],
            pos: 0,
            end: 0,
            eof: false,
            plain_until: 0,
            bom_checked: false,
            bom_pending: false,
            parser: csv_core::ReaderBuilder::new().delimiter(delimiter).build(),
            decoded: vec![0; 1024],
            ends: vec![0; 64],
            delimiter,
            column,
            line: 1,
            last_terminator: b"\n",
            bytes_read: 0,
            stopped: false,
        }
    }

    /// A splitter for an input read from a record boundary in its middle (see
    /// [`super::halves`]): no BOM is looked for, lines are counted from `line`, and a last
    /// record without a terminator is given `last_terminator` until another is seen.
    pub fn resume(
        input: R,
        delimiter: u8,
        column: usize,
        line: u64,
        last_terminator: &'static [u8],
    ) -> Splitter<R> {
        let mut splitter = Splitter::new(input, delimiter, column);
        splitter.bom_checked = true;
        splitter.line = line;
        splitter.last_terminator = last_terminator;
        splitter
    }

    /// Bytes of the input taken by the records (and blank lines) returned so far.
    #[inline]
    pub fn consumed(&self) -> u64 {
        self.bytes_read - (self.end - self.pos) as u64
    }

    /// Where `span` ends in the input (valid while [`Splitter::span`] is).
    #[inline]
    pub fn end_of(&self, span: &Span) -> u64 {
        self.bytes_read - (self.end - span.end) as u64
    }

    /// The line the next record starts on (1-based).
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The last terminator seen (`\n` before any, or as given to [`Splitter::resume`]).
    pub fn last_terminator(&self) -> &'static [u8] {
        self.last_terminator
    }

    pub fn set_column(&mut self, column: usize) {
        self.column = column;
    }

    /// Bytes read from the input so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The decoded fields of the record just returned by the CSV path (for the header).
    pub fn fields(&self, count: usize) -> Vec<Vec<u8>> {
        let mut start = 0;
        self.ends[..count]
            .iter()
            .map(|&end| {
                let field = self.decoded[start..end].to_vec();
                start = end;
                field
            })
            .collect()
    }

    /// Whether reading stopped early (a signal): the records returned are the complete ones
    /// read before it; an incomplete one at the end was dropped.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Moves the unparsed tail to the front and reads more. Returns `false` if no more data
    /// will come: the end was seen already, or the read was interrupted (`ErrorKind::
    /// Interrupted`, which the input reports once a signal asks the run to stop).
    fn refill(&mut self) -> io::Result<bool> {
        if self.eof || self.stopped {
            return Ok(false);
        }
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.plain_until = self.plain_until.saturating_sub(self.pos);
        self.pos = 0;
        if self.end == self.buf.len() {
            // One record longer than the buffer: grow it.
            self.buf.resize(self.buf.len() * 2, 0);
        }
        match self.input.read(&mut self.buf[self.end..]) {
            Ok(0) => self.eof = true,
            Ok(n) => {
                self.end += n;
                self.bytes_read += n as u64;
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {
                self.stopped = true;
                return Ok(false);
            }
            Err(error) => return Err(error),
        }
        Ok(true)
    }

    /// Makes `plain_until` the next quote at or after `pos` (or the end of the data). No
    /// quote lies in `buf[pos..plain_until]`, and `plain_until` is a quote or the end.
    fn find_quote(&mut self) {
        let from = self.plain_until.max(self.pos);
        if from >= self.end {
            // Searched to the end of the data already (no quote in it): nothing to look at.
            self.plain_until = self.end;
            return;
        }
        if self.buf[from] == b'"' {
            self.plain_until = from; // found before
            return;
        }
        self.plain_until =
            from + memchr::memchr(b'"', &self.buf[from..self.end]).unwrap_or(self.end - from);
    }

    /// The length of the terminator at `at` (a `\n` or `\r`): 1 or 2; `None` if a `\r` ends
    /// the data and more may come (read more, then look again).
    fn terminator_len(&self, at: usize) -> Option<usize> {
        if self.buf[at] == b'\n' {
            return Some(1);
        }
        match self.buf[at + 1..self.end].first() {
            Some(b'\n') => Some(2),
            Some(_) => Some(1),
            None if self.eof => Some(1),
            None => None,
        }
    }

    /// The next record if it is a plain line with its terminator within the data read (no
    /// quote, no BOM before it, not blank), as a [`Span`] of the buffer; `None` if it is not
    /// (or if more must be read first: [`Splitter::next_record`] takes it then). Never reads,
    /// so the spans returned stay valid until the next `next_record`: a caller can find a run
    /// of records first and then look their keys up together, whose memory accesses then
    /// overlap instead of waiting one after the other.
    #[inline]
    pub fn next_plain(&mut self) -> Option<Span> {
        if self.pos >= self.end
            || !self.bom_checked
            || self.bom_pending
            || matches!(self.buf[self.pos], b'\n' | b'\r')
        {
            return None;
        }
        self.find_quote();
        if self.pos >= self.plain_until {
            return None;
        }
        let (at, fields, key) = self.plain_fields()?;
        let terminator = self.terminator_len(self.pos + at)?;
        let (start, len) = (self.pos, at + terminator);
        self.last_terminator = if terminator == 2 {
            b"\r\n"
        } else if self.buf[start + at] == b'\n' {
            b"\n"
        } else {
            b"\r"
        };
        let line = self.line;
        self.line += 1;
        self.pos = start + len;
        let key = match key {
            KeyAt::Raw(from, to) => Some((from, to)),
            KeyAt::Decoded(..) | KeyAt::Missing => None,
        };
        Some(Span {
            start,
            end: start + len,
            key,
            fields,
            line,
        })
    }

    /// The bytes of a record found by [`Splitter::next_plain`] (with its terminator), and its
    /// key.
    #[inline]
    pub fn span(&self, span: &Span) -> (&[u8], Option<&[u8]>) {
        let key = span.key.map(|(from, to)| &self.buf[from..to]);
        (&self.buf[span.start..span.end], key)
    }

    /// The next record, or `None` at the end of the input (or once stopped). `decode_all`
    /// forces the CSV path (for the header, whose fields are all wanted).
    pub fn next_record(&mut self, decode_all: bool) -> Result<Option<Record<'_>>, SplitError> {
        loop {
            if self.pos == self.end {
                if !self.refill()? {
                    return Ok(None);
                }
                continue;
            }
            if !self.bom_checked {
                let have = &self.buf[self.pos..self.end];
                if have.len() < BOM.len() && BOM.starts_with(have) && !self.eof {
                    if !self.refill()? {
                        return Ok(None);
                    }
                    continue;
                }
                self.bom_checked = true;
                if have.starts_with(BOM) {
                    self.pos += BOM.len();
                    self.bom_pending = true;
                    continue;
                }
            }
            // Blank lines are not records.
            if matches!(self.buf[self.pos], b'\n' | b'\r') {
                let Some(len) = self.terminator_len(self.pos) else {
                    if !self.refill()? {
                        return Ok(None);
                    }
                    continue;
                };
                self.note_terminator(len);
                self.pos += len;
                self.line += 1;
                continue;
            }
            self.find_quote();
            if !decode_all && self.pos < self.plain_until {
                match self.plain_fields() {
                    Some((at, fields, key)) => match self.terminator_len(self.pos + at) {
                        Some(len) => {
                            let ending = Ending::Terminated(at + len);
                            return Ok(Some(self.finish_line(ending, fields, key, 1)));
                        }
                        None => {
                            if !self.refill()? {
                                return Ok(None); // stopped: `…\r` may go on with `\n`
                            }
                            continue;
                        }
                    },
                    None if self.plain_until == self.end => {
                        if self.eof {
                            // The last line, without a terminator.
                            let len = self.end - self.pos;
                            return Ok(Some(self.plain_line(len, len)));
                        }
                        if !self.refill()? {
                            return Ok(None); // stopped: the incomplete line is not a record
                        }
                        continue; // the line went on past the buffer
                    }
                    None => {} // a quote lies ahead on this line: csv-core parses it
                }
            }
            match self.csv_record()? {
                Some((ending, fields, key)) => return Ok(Some(self.finish(ending, fields, key))),
                None if self.stopped => return Ok(None),
                None => continue, // the buffer was refilled
            }
        }
    }

    fn note_terminator(&mut self, len: usize) {
        self.last_terminator = if len == 2 {
            b"\r\n"
        } else if self.buf[self.pos] == b'\n' {
            b"\n"
        } else {
            b"\r"
        };
    }

    /// The plain line at `pos` (it lies before `plain_until`: no quote): where its terminator
    /// is (`\n` or `\r`), its field count and its key; `None` if no terminator comes before
    /// `plain_until`.
    fn plain_fields(&self) -> Option<(usize, usize, KeyAt)> {
        let line = &self.buf[self.pos..self.plain_until];
        let at = memchr::memchr2(b'\n', b'\r', line)?;
        let (fields, key) = self.fields_of(at);
        Some((at, fields, key))
    }

    /// The field count and key of the `body` bytes at `pos` (no quote, no line break): the
    /// delimiters up to the key's end are found one by one, those after it only counted
    /// (a search per delimiter costs more than counting them all at once).
    fn fields_of(&self, body: usize) -> (usize, KeyAt) {
        let line = &self.buf[self.pos..self.pos + body];
        let delimiter = self.delimiter;
        let mut start = 0;
        for skipped in 0..self.column {
            match memchr::memchr(delimiter, &line[start..]) {
                Some(at) => start += at + 1,
                None => return (skipped + 1, KeyAt::Missing),
            }
        }
        let key = |end: usize| KeyAt::Raw(self.pos + start, self.pos + end);
        match memchr::memchr(delimiter, &line[start..]) {
            None => (self.column + 1, key(line.len())),
            Some(at) => {
                let end = start + at;
                let after = count(&line[end + 1..], delimiter);
                (self.column + 2 + after, key(end))
            }
        }
    }

    /// A plain line at `pos`: `body` bytes, then a terminator up to `len`.
    fn plain_line(&mut self, body: usize, len: usize) -> Record<'_> {
        let (fields, key) = self.fields_of(body);
        let (ending, breaks) = if len > body {
            (Ending::Terminated(len), 1)
        } else {
            (Ending::Unterminated, 0)
        };
        self.finish_line(ending, fields, key, breaks)
    }

    /// Parses one record at `pos` with csv-core: how it ends, its field count and key; or
    /// `None` if the buffer had to be refilled first (or reading stopped).
    fn csv_record(&mut self) -> Result<Option<(Ending, usize, KeyAt)>, SplitError> {
        self.parser.reset();
        let (mut nin_total, mut nout_total, mut nend_total) = (0, 0, 0);
        // At the end of the input, a `\n` fed after the last byte tells a record that just
        // lacks a terminator (csv-core ends it) from one inside an open quote (it does not).
        let mut fed_end = false;
        let ending = loop {
            if !fed_end && self.pos + nin_total == self.end {
                // Never give csv-core empty input: to it, that means the end of the input.
                if self.eof {
                    fed_end = true;
                } else {
                    self.refill()?; // then parse it again (or, stopped, drop it)
                    return Ok(None);
                }
            }
            let rest = &self.buf[self.pos + nin_total..self.end];
            // csv-core, reset, drops a BOM at the start of what it is given next (it takes it
            // for the input's). The input's own was taken off before (see `bom_pending`): the
            // bytes EF BB BF at a record's start are content. Given their first byte alone,
            // csv-core drops nothing (it looks for the BOM only in its first input).
            let partial = !fed_end && nin_total == 0 && rest.len() > 1 && rest[0] == BOM[0];
            let input: &[u8] = if fed_end {
                b"\n"
            } else if partial {
                &rest[..1]
            } else {
                rest
            };
            let (result, nin, nout, nend) = self.parser.read_record(
                input,
                &mut self.decoded[nout_total..],
                &mut self.ends[nend_total..],
            );
            if !fed_end {
                nin_total += nin;
            }
            nout_total += nout;
            nend_total += nend;
            match result {
                ReadRecordResult::OutputFull => {
                    let len = self.decoded.len() * 2;
                    self.decoded.resize(len, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    let len = self.ends.len() * 2;
                    self.ends.resize(len, 0);
                }
                ReadRecordResult::Record if fed_end => break Ending::Unterminated,
                ReadRecordResult::Record => {
                    // csv-core stops after the `\n` or the `\r`; a `\n` after the `\r` is ours.
                    let last = self.pos + nin_total - 1;
                    match self.terminator_len(last) {
                        Some(2) => break Ending::Terminated(nin_total + 1),
                        Some(_) => break Ending::Terminated(nin_total),
                        None => {
                            self.refill()?; // then parse it again (or, stopped, drop it)
                            return Ok(None);
                        }
                    }
                }
                // (Only the BOM's first byte was given: the rest follows.)
                ReadRecordResult::InputEmpty if partial => {}
                ReadRecordResult::InputEmpty if fed_end => {
                    let raw = &self.buf[self.pos..self.end];
                    let quote = opening_quote(raw, self.delimiter);
                    return Err(SplitError::UnterminatedQuote {
                        line: self.line + line_breaks(&raw[..quote]),
                    });
                }
                ReadRecordResult::InputEmpty if self.eof => fed_end = true,
                ReadRecordResult::InputEmpty => {
                    // The record goes on past the buffer: read more and parse it again (or,
                    // stopped, drop the incomplete record).
                    self.refill()?;
                    return Ok(None);
                }
                ReadRecordResult::End => unreachable!("csv-core is never given empty input"),
            }
        };
        let key = if self.column < nend_total {
            let start = if self.column == 0 {
                0
            } else {
                self.ends[self.column - 1]
            };
            KeyAt::Decoded(start, self.ends[self.column])
        } else {
            KeyAt::Missing
        };
        Ok(Some((ending, nend_total, key)))
    }

    /// The record at `pos`, ending as `ending` says: `pos` moves past it, the line count by
    /// its line breaks (a quoted field may hold some).
    fn finish(&mut self, ending: Ending, fields: usize, key: KeyAt) -> Record<'_> {
        let end = match ending {
            Ending::Terminated(len) => self.pos + len,
            Ending::Unterminated => self.end,
        };
        let breaks = line_breaks(&self.buf[self.pos..end]);
        self.finish_line(ending, fields, key, breaks)
    }

    /// [`Splitter::finish`] for a record of `breaks` line breaks, known already.
    fn finish_line(
        &mut self,
        ending: Ending,
        fields: usize,
        key: KeyAt,
        breaks: u64,
    ) -> Record<'_> {
        let start = self.pos;
        let (end, terminated) = match ending {
            Ending::Terminated(len) => (start + len, true),
            Ending::Unterminated => (self.end, false),
        };
        let line = self.line;
        if terminated {
            let last = terminator_of(&self.buf[start..end]).expect("a terminated record");
            self.last_terminator = last;
        }
        self.line += breaks;
        self.pos = end;
        let key = match key {
            KeyAt::Raw(start, end) => Some(&self.buf[start..end]),
            KeyAt::Decoded(start, end) => Some(&self.decoded[start..end]),
            KeyAt::Missing => None,
        };
        let missing: &'static [u8] = if terminated {
            b""
        } else {
            self.last_terminator
        };
        let bom: &'static [u8] = if std::mem::take(&mut self.bom_pending) {
            BOM
        } else {
            b""
        };
        Record {
            bom,
            raw: &self.buf[start..end],
            key,
            fields,
            line,
            missing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Records = Vec<(String, Option<String>, usize, u64)>;

    /// A reader that hands out `step` bytes at a time: every read boundary gets tried.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// (bom + raw, key, fields, line) of every record: by the plain-line path where it
    /// applies, or (`csv_only`) always by csv-core; read `step` bytes at a time into a buffer
    /// of `step + 1` bytes at first.
    fn split_with(input: &[u8], column: usize, csv_only: bool, step: usize) -> Records {
        let reader = Trickle { data: input, step };
        // Small reads into a small buffer: boundaries everywhere, and the buffer grows.
        let capacity = if step == usize::MAX { CHUNK } else { step + 1 };
        let mut splitter = Splitter::with_buffer(reader, b',', column, capacity);
        let mut out = Vec::new();
        while let Some(r) = splitter.next_record(csv_only).unwrap() {
            let mut raw = r.bom.to_vec();
            raw.extend_from_slice(r.raw);
            out.push((
                String::from_utf8_lossy(&raw).into_owned(),
                r.key.map(|k| String::from_utf8_lossy(k).into_owned()),
                r.fields,
                r.line,
            ));
        }
        out
    }

    fn split(input: &[u8], column: usize) -> Records {
        split_with(input, column, false, usize::MAX)
    }

    /// Every record as written (BOM, bytes, the terminator it lacked), key, fields and line,
    /// all by csv-core.
    fn written_csv(input: &[u8], column: usize) -> Records {
        let mut splitter = Splitter::new(input, b',', column);
        let shown = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        let mut out = Vec::new();
        while let Some(r) = splitter.next_record(true).unwrap() {
            let written = [r.bom, r.raw, r.missing].concat();
            out.push((shown(&written), r.key.map(shown), r.fields, r.line));
        }
        out
    }

    /// As the feeding loop splits: runs of up to `batch` records by `next_plain`, their bytes
    /// taken only once the run is found, and `next_record` whenever `next_plain` declines; read
    /// `step` bytes at a time into a buffer of `step + 1` bytes at first. Records as written
    /// (see [`written_csv`]).
    fn split_plain_runs(input: &[u8], column: usize, step: usize, batch: usize) -> Records {
        let reader = Trickle { data: input, step };
        let capacity = if step == usize::MAX { CHUNK } else { step + 1 };
        let mut splitter = Splitter::with_buffer(reader, b',', column, capacity);
        let shown = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        let mut out = Vec::new();
        loop {
            let mut spans = Vec::new();
            while spans.len() < batch {
                match splitter.next_plain() {
                    Some(span) => spans.push(span),
                    None => break,
                }
            }
            if !spans.is_empty() {
                for span in &spans {
                    let (raw, key) = splitter.span(span);
                    out.push((shown(raw), key.map(shown), span.fields, span.line));
                }
                continue;
            }
            let Some(r) = splitter.next_record(false).unwrap() else {
                return out;
            };
            let written = [r.bom, r.raw, r.missing].concat();
            out.push((shown(&written), r.key.map(shown), r.fields, r.line));
        }
    }

    fn split_csv(input: &[u8], column: usize) -> Records {
        split_with(input, column, true, usize::MAX)
    }

    fn record(
        raw: &str,
        key: &str,
        fields: usize,
        line: u64,
    ) -> (String, Option<String>, usize, u64) {
        (raw.into(), Some(key.into()), fields, line)
    }

    #[test]
    fn every_terminator_is_kept_whatever_the_reads() {
        let input = b"k,v\r\na,1\rb,\"x\r\ny\"\r\n\r\n\nc,2\n\"d\"\"\",3\r";
        let want = vec![
            record("k,v\r\n", "k", 2, 1),
            record("a,1\r", "a", 2, 2),
            record("b,\"x\r\ny\"\r\n", "b", 2, 3),
            record("c,2\n", "c", 2, 7),
            record("\"d\"\"\",3\r", "d\"", 2, 8),
        ];
        for step in [1, 2, 3, 5, usize::MAX] {
            for csv_only in [false, true] {
                assert_eq!(split_with(input, 0, csv_only, step), want, "step {step}");
            }
        }
    }

    #[test]
    fn the_last_record_without_a_terminator_gets_the_last_one_used() {
        for (input, last) in [
            (&b"k\r\na"[..], &b"\r\n"[..]),
            (b"k\ra", b"\r"),
            (b"k\na", b"\n"),
            (b"k", b"\n"),
            (b"k\r\n\na", b"\n"),
            (b"k\n\"a\r\nb\"", b"\n"),
        ] {
            let mut splitter = Splitter::new(input, b',', 0);
            let mut ends = Vec::new();
            while let Some(record) = splitter.next_record(false).unwrap() {
                ends.push(record.missing);
            }
            assert_eq!(ends.last(), Some(&last), "{input:?}");
        }
    }

    #[test]
    fn a_bom_is_part_of_the_first_record_but_not_of_its_key() {
        let input = b"\xEF\xBB\xBF\"k\",v\na,1\n";
        for step in [1, 2, usize::MAX] {
            let records = split_with(input, 0, false, step);
            assert_eq!(records[0].0.as_bytes(), b"\xEF\xBB\xBF\"k\",v\n");
            assert_eq!(records[0].1.as_deref(), Some("k"));
            assert_eq!(records[1], record("a,1\n", "a", 2, 2));
        }
    }

    /// A BOM's bytes at the start of a record other than the input's first are content (only
    /// the input's own BOM is not): part of the key, and a `"` after them starts no quoted
    /// field. The same by csv-core and by plain lines, whatever the reads (csv-core, reset at
    /// every record, took them for an input's BOM and dropped them).
    #[test]
    fn a_bom_inside_the_input_is_content() {
        let input = b"k,v\n\xEF\xBB\xBFg,\"1\"\n\xEF\xBB\xBF\"x\ny\",2\n\xEF\xBB\xBFh,2\n";
        let want = vec![
            record("k,v\n", "k", 2, 1),
            record("\u{feff}g,\"1\"\n", "\u{feff}g", 2, 2),
            record("\u{feff}\"x\n", "\u{feff}\"x", 1, 3),
            record("y\",2\n", "y\"", 2, 4),
            record("\u{feff}h,2\n", "\u{feff}h", 2, 5),
        ];
        for step in [1, 2, 3, 4, usize::MAX] {
            for csv_only in [false, true] {
                assert_eq!(
                    split_with(input, 0, csv_only, step),
                    want,
                    "step {step}, csv_only {csv_only}"
                );
            }
        }
        // Two BOMs at the input's start: the second is the first field's.
        let records = split_with(b"\xEF\xBB\xBF\xEF\xBB\xBF\"k\",v\n", 0, true, usize::MAX);
        assert_eq!(records[0].1.as_deref(), Some("\u{feff}\"k\""));
    }

    #[test]
    fn an_unterminated_quote_names_the_line_it_opened_on() {
        for (input, line) in [
            (&b"k,v\na,1\nb,\"open\nc,3\n"[..], 3),
            (b"k,v\n\"a\"\"\nb\",\"x\r\ny\r\nz", 3),
            (b"\"", 1),
            (b"a,\"\"\"", 1),
        ] {
            let mut splitter = Splitter::new(input, b',', 0);
            let error = loop {
                match splitter.next_record(false) {
                    Ok(Some(_)) => {}
                    Ok(None) => panic!("no error for {input:?}"),
                    Err(error) => break error,
                }
            };
            assert!(
                matches!(error, SplitError::UnterminatedQuote { line: l } if l == line),
                "{input:?}: {error:?}"
            );
        }
    }

    #[test]
    fn plain_lines_and_csv_agree() {
        for input in [
            &b"a,1\nb,2\n\nc,3"[..],
            b"a,1\r\nb,2\r\n",
            b"\n\na,1\n",
            b"k\n,\n,,\n",
            b"a,1\nb\n",
            b"",
            b"\n",
        ] {
            for column in 0..3 {
                assert_eq!(
                    split(input, column),
                    split_csv(input, column),
                    "{input:?} {column}"
                );
            }
        }
    }

    #[test]
    fn runs_of_plain_lines_give_the_records_csv_core_gives() {
        let input =
            b"\xEF\xBB\xBFk,v,w\r\na,1,x\rb,2\n\n\r\nc,\"3\r\n\",y\n,,\nd\n\"e\",4,z\nf,6\r\nlast,5,6";
        for column in 0..4 {
            let want = written_csv(input, column);
            for step in [1, 2, 3, 7, usize::MAX] {
                for batch in [1, 2, 32] {
                    assert_eq!(
                        split_plain_runs(input, column, step, batch),
                        want,
                        "column {column}, step {step}, batch {batch}"
                    );
                }
            }
        }
    }

    #[test]
    fn count_counts_every_occurrence() {
        let mut bytes = Vec::new();
        for len in 0..1100usize {
            assert_eq!(
                count(&bytes, b','),
                bytes.iter().filter(|&&b| b == b',').count(),
                "length {len}"
            );
            bytes.push(if len % 3 == 0 || len % 7 == 0 {
                b','
            } else {
                b'a'
            });
        }
        assert_eq!(count(&[b','; 1000], b','), 1000, "more than 255 in a row");
    }

    #[test]
    fn quoted_fields_keep_their_bytes() {
        let input = b"\"a,b\",1\n\"multi\nline\",2\n\"q\"\"uote\",3\n";
        let records = split(input, 0);
        assert_eq!(
            records,
            vec![
                record("\"a,b\",1\n", "a,b", 2, 1),
                record("\"multi\nline\",2\n", "multi\nline", 2, 2),
                record("\"q\"\"uote\",3\n", "q\"uote", 2, 4),
            ]
        );
    }

    #[test]
    fn records_longer_than_the_buffer() {
        let long = "x".repeat(3 * CHUNK);
        let input = format!("k,{long}\n\"q,{long}\",v\nlast,1");
        let records = split(input.as_bytes(), 0);
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].0.len(), long.len() + 3);
        assert_eq!(records[1].1.as_deref(), Some(&*format!("q,{long}")));
        assert_eq!(records[2], record("last,1", "last", 2, 3));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Whatever the bytes and the reads, the fast path and csv-core find the same records.
        #[test]
        fn the_fast_path_gives_the_records_csv_core_gives(
            input in proptest::collection::vec(
                proptest::sample::select(vec![b'a', b'b', b',', b'"', b'\n', b'\r']),
                0..200,
            ),
            column in 0..3usize,
            step in 1..8usize,
        ) {
            let mut splitter = Splitter::new(&input[..], b',', column);
            let closed = loop {
                match splitter.next_record(false) {
                    Ok(Some(_)) => {}
                    Ok(None) => break true,
                    Err(_) => break false,
                }
            };
            if closed {
                proptest::prop_assert_eq!(
                    split_with(&input, column, false, step),
                    split_csv(&input, column)
                );
                proptest::prop_assert_eq!(
                    split_plain_runs(&input, column, step, 3),
                    written_csv(&input, column)
                );
            }
        }
    }
}
