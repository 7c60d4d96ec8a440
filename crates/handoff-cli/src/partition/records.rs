//! Splits an input into records, each with its exact bytes, its key field and its line.
//!
//! Quoted fields, escaped quotes, delimiters and newlines inside quotes, CRLF: `csv-core`
//! parses them. Runs of input with no quote and no carriage return are plain lines, split with
//! `memchr` instead; both paths give the same records (the tests hold them to it).

use std::io::{self, Read};

use csv_core::ReadRecordResult;

/// One record of the input.
pub struct Record<'a> {
    /// The record's bytes as in the input, with its terminator (if it had one).
    pub raw: &'a [u8],
    /// The key field, unquoted; `None` if the record has too few fields.
    pub key: Option<&'a [u8]>,
    /// How many fields the record has.
    pub fields: usize,
    /// The line the record starts on (1-based).
    pub line: u64,
}

impl Record<'_> {
    /// Whether the record ends with a line terminator (only the last one of an input may not).
    pub fn terminated(&self) -> bool {
        matches!(self.raw.last(), Some(b'\n' | b'\r'))
    }
}

/// Where a record's key was found, in the splitter's buffers.
enum KeyAt {
    Raw(usize, usize),
    Decoded(usize, usize),
    Missing,
}

const CHUNK: usize = 1 << 20;

pub struct Splitter<R> {
    input: R,
    buf: Vec<u8>,
    /// Unparsed data is `buf[pos..end]`.
    pos: usize,
    end: usize,
    eof: bool,
    /// No quote or carriage return before this index: plain lines up to here.
    plain_until: usize,
    parser: csv_core::Reader,
    decoded: Vec<u8>,
    ends: Vec<usize>,
    delimiter: u8,
    /// 0-based key column.
    column: usize,
    line: u64,
    bytes_read: u64,
    stopped: bool,
}

impl<R: Read> Splitter<R> {
    pub fn new(input: R, delimiter: u8, column: usize) -> Splitter<R> {
        Splitter {
            input,
            buf: vec![0; CHUNK],
            pos: 0,
            end: 0,
            eof: false,
            plain_until: 0,
            parser: csv_core::ReaderBuilder::new().delimiter(delimiter).build(),
            decoded: vec![0; 1024],
            ends: vec![0; 64],
            delimiter,
            column,
            line: 1,
            bytes_read: 0,
            stopped: false,
        }
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

    /// Moves the unparsed tail to the front and reads more. Returns `false` if no more data
    /// will come: the end was seen already, or the read was interrupted (`ErrorKind::
    /// Interrupted`, which the input reports once a signal asks the run to stop).
    fn refill(&mut self) -> io::Result<bool> {
        if self.eof || self.stopped {
            return Ok(false);
        }
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
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
        self.plain_until = self.pos
            + memchr::memchr2(b'"', b'\r', &self.buf[self.pos..self.end])
                .unwrap_or(self.end - self.pos);
        Ok(true)
    }

    /// Whether reading stopped early (a signal): the records returned are the complete ones
    /// read before it; an incomplete one at the end was dropped.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// The next record, or `None` at the end of the input. `decode_all` forces the CSV path
    /// (for the header, whose fields are all wanted).
    pub fn next_record(&mut self, decode_all: bool) -> io::Result<Option<Record<'_>>> {
        loop {
            // Blank lines are not records (as csv-core skips them).
            while self.pos < self.end && self.buf[self.pos] == b'\n' && self.pos < self.plain_until
            {
                self.pos += 1;
                self.line += 1;
            }
            if !decode_all && self.pos < self.plain_until {
                if let Some(newline) = memchr::memchr(b'\n', &self.buf[self.pos..self.plain_until])
                {
                    return Ok(Some(self.plain_line(newline + 1)));
                }
                if self.plain_until == self.end {
                    if self.eof {
                        // The last line, without a terminator.
                        return Ok(Some(self.plain_line(self.end - self.pos)));
                    }
                    if !self.refill()? {
                        return Ok(None); // stopped: the incomplete line is not a record
                    }
                    continue; // the line went on past the buffer
                }
                // A quote or carriage return lies ahead on this line: csv-core parses it.
            }
            if self.pos < self.end {
                if let Some((len, fields, key)) = self.csv_record()? {
                    return Ok(Some(self.finish(len, fields, key)));
                }
                continue; // the buffer was refilled, or only blank lines were left
            }
            if !self.refill()? {
                return Ok(None);
            }
        }
    }

    fn plain_line(&mut self, len: usize) -> Record<'_> {
        let line = &self.buf[self.pos..self.pos + len];
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let mut fields = 1;
        let mut key = KeyAt::Missing;
        let mut start = 0;
        for at in memchr::memchr_iter(self.delimiter, body) {
            if fields - 1 == self.column {
                key = KeyAt::Raw(self.pos + start, self.pos + at);
            }
            fields += 1;
            start = at + 1;
        }
        if fields - 1 == self.column {
            key = KeyAt::Raw(self.pos + start, self.pos + body.len());
        }
        self.finish(len, fields, key)
    }

    /// Parses one record at `pos` with csv-core: its length, field count and key, or `None`
    /// if the buffer had to be refilled first.
    fn csv_record(&mut self) -> io::Result<Option<(usize, usize, KeyAt)>> {
        self.parser.reset();
        let (mut nin_total, mut nout_total, mut nend_total) = (0, 0, 0);
        loop {
            let input = &self.buf[self.pos + nin_total..self.end];
            let (result, nin, nout, nend) = self.parser.read_record(
                input,
                &mut self.decoded[nout_total..],
                &mut self.ends[nend_total..],
            );
            nin_total += nin;
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
                ReadRecordResult::Record => break,
                ReadRecordResult::InputEmpty if !self.eof => {
                    // The record goes on past the buffer: read more and parse it again (or,
                    // stopped, drop the incomplete record).
                    if !self.refill()? {
                        self.pos = self.end;
                    }
                    return Ok(None);
                }
                ReadRecordResult::InputEmpty => {} // at end of input: call once more with nothing
                ReadRecordResult::End => {
                    // Nothing but blank lines was left.
                    self.pos = self.end;
                    return Ok(None);
                }
            }
        }
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
        Ok(Some((nin_total, nend_total, key)))
    }

    fn finish(&mut self, len: usize, fields: usize, key: KeyAt) -> Record<'_> {
        let mut raw_start = self.pos;
        // Blank lines before a record (skipped by csv-core) are not part of it.
        while raw_start < self.pos + len && matches!(self.buf[raw_start], b'\n' | b'\r') {
            if self.buf[raw_start] == b'\n' {
                self.line += 1;
            }
            raw_start += 1;
        }
        let raw_end = self.pos + len;
        let line = self.line;
        self.line += memchr::memchr_iter(b'\n', &self.buf[raw_start..raw_end]).count() as u64;
        self.pos = raw_end;
        let key = match key {
            KeyAt::Raw(start, end) => Some(&self.buf[start..end]),
            KeyAt::Decoded(start, end) => Some(&self.decoded[start..end]),
            KeyAt::Missing => None,
        };
        Record {
            raw: &self.buf[raw_start..raw_end],
            key,
            fields,
            line,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Records = Vec<(String, Option<String>, usize, u64)>;

    /// (raw, key, fields, line) of every record: by the plain-line path where it applies, or
    /// (`csv_only`) always by csv-core.
    fn split_with(input: &[u8], column: usize, csv_only: bool) -> Records {
        let mut splitter = Splitter::new(input, b',', column);
        let mut out = Vec::new();
        while let Some(r) = splitter.next_record(csv_only).unwrap() {
            out.push((
                String::from_utf8_lossy(r.raw).into_owned(),
                r.key.map(|k| String::from_utf8_lossy(k).into_owned()),
                r.fields,
                r.line,
            ));
        }
        out
    }

    fn split(input: &[u8], column: usize) -> Records {
        split_with(input, column, false)
    }

    fn split_csv(input: &[u8], column: usize) -> Records {
        split_with(input, column, true)
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
    fn quoted_fields_keep_their_bytes() {
        let input = b"\"a,b\",1\n\"multi\nline\",2\n\"q\"\"uote\",3\n";
        let records = split(input, 0);
        assert_eq!(
            records,
            vec![
                ("\"a,b\",1\n".into(), Some("a,b".into()), 2, 1),
                (
                    "\"multi\nline\",2\n".into(),
                    Some("multi\nline".into()),
                    2,
                    2
                ),
                ("\"q\"\"uote\",3\n".into(), Some("q\"uote".into()), 2, 4),
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
        assert_eq!(records[2], ("last,1".into(), Some("last".into()), 2, 3));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Whatever the bytes, the fast path and csv-core find the same records.
        #[test]
        fn the_fast_path_gives_the_records_csv_core_gives(
            input in proptest::collection::vec(
                proptest::sample::select(vec![b'a', b'b', b',', b'"', b'\n', b'\r']),
                0..200,
            ),
            column in 0..3usize,
        ) {
            proptest::prop_assert_eq!(split(&input, column), split_csv(&input, column));
        }
    }
}
