//! One output file per key, written through the pager, with records coalesced per key in
//! memory under a bound.
//!
//! Buffering is what makes the writes fast: every key collects its records in its own buffer,
//! and a file is paged in only to take a whole buffer in one write. When the buffers (and the
//! per-key bookkeeping) would pass `--memory`, the largest buffers are flushed until half of
//! the bound is free; at the end, everything is flushed and every file closed, so that an error
//! from any close is reported.
//!
//! A buffer holds whole records only, so every file ends at a record boundary after every
//! write; a write that fails (a full disk, `RLIMIT_FSIZE`) is undone by truncating the file
//! back to the length it had before it, and that file takes no more writes.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;

use handoff::pager::{OpenOptions, Pager, Stats, VirtualFile};

use super::display::{shown, shown_names, shown_path};
use super::names::Names;
use super::outdir::{Existing, Outdir};
use super::records::Splitter;

/// Bookkeeping counted against the memory bound for every key, besides its buffer: the map
/// entry, the output's fields, the pager's entry and path, and the key and name bytes.
const PER_KEY: usize = 320;

/// The run's header: its bytes as written (a BOM, the terminator) and its field names.
pub struct Header {
    pub raw: Vec<u8>,
    pub fields: Vec<Vec<u8>>,
    pub delimiter: u8,
}

struct Output {
    key: Box<[u8]>,
    name: String,
    file: Option<VirtualFile>,
    /// The file's length after the last whole write: where it is cut back to if one fails.
    len: u64,
    buf: Vec<u8>,
    /// Records in `buf`.
    pending: u64,
    /// `buf` starts with the header (a new file not written yet).
    header_in_buf: bool,
    /// A write failed: the file takes no more.
    failed: bool,
}

pub struct Outputs {
    pager: Pager,
    dir: Outdir,
    prefix: String,
    suffix: String,
    existing: Existing,
    delimiter: u8,
    header: Option<Header>,
    index: HashMap<Box<[u8]>, usize>,
    outputs: Vec<Output>,
    names: Names,
    /// Capacity of all buffers plus the per-key bookkeeping, in bytes.
    held: usize,
    memory: usize,
    bytes_written: u64,
    records_written: u64,
}

/// A failure to write an output, naming the file and the key.
#[derive(Debug)]
pub struct WriteError {
    /// The file, as shown to the user.
    pub file: String,
    /// The key whose records it holds, if the failure concerns one.
    pub key: Option<Vec<u8>>,
    pub error: io::Error,
    /// Refused before anything was written to it (`--append` onto another header): exit 2.
    pub refused: bool,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{} (key \"{}\"): {}", self.file, shown(key), self.error),
            None => write!(f, "{}: {}", self.file, self.error),
        }
    }
}

/// What `finish` reports.
pub struct Finished {
    pub bytes_written: u64,
    pub records_written: u64,
    pub files: usize,
    pub pager: Stats,
    /// The first failure, if any (the other files were still flushed and closed).
    pub error: Option<WriteError>,
    pub dir: Outdir,
}

/// A `Read` over a file by positional reads, which leave its offset alone.
struct ReadAt<'a> {
    file: &'a std::fs::File,
    at: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// The field names of the first record of a file (a BOM left out), `None` if it is empty.
fn first_record(file: &std::fs::File, delimiter: u8) -> io::Result<Option<Vec<Vec<u8>>>> {
    let mut splitter = Splitter::with_buffer(ReadAt { file, at: 0 }, delimiter, 0, 4096);
    let count = match splitter.next_record(true) {
        Ok(Some(record)) => record.fields,
        Ok(None) => return Ok(None),
        Err(super::records::SplitError::Io(error)) => return Err(error),
        Err(super::records::SplitError::UnterminatedQuote { line }) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("its header has a quote left open on line {line}"),
            ))
        }
    };
    Ok(Some(splitter.fields(count)))
}

/// How much of `buf` (whole records, as buffered) lies within its first `reached` bytes:
/// the end of the last whole record there, and how many records end by it.
fn whole_records(buf: &[u8], reached: u64, delimiter: u8) -> (usize, u64) {
    let mut splitter = Splitter::with_buffer(buf, delimiter, 0, buf.len());
    let (mut end, mut count, mut at) = (0, 0, 0u64);
    while let Ok(Some(record)) = splitter.next_record(false) {
        at += (record.bom.len() + record.raw.len() + record.missing.len()) as u64;
        if at > reached {
            break;
        }
        end = at as usize;
        count += 1;
    }
    (end, count)
}

impl Outputs {
    pub fn new(
        pager: Pager,
        dir: Outdir,
        template: &str,
        existing: Existing,
        delimiter: u8,
        memory: usize,
    ) -> Outputs {
        let (prefix, suffix) = template.split_once("{}").expect("a checked template");
        Outputs {
            pager,
            dir,
            prefix: prefix.to_owned(),
            suffix: suffix.to_owned(),
            existing,
            delimiter,
            header: None,
            index: HashMap::new(),
            outputs: Vec::new(),
            names: Names::default(),
            held: 0,
            memory,
            bytes_written: 0,
            records_written: 0,
        }
    }

    pub fn set_header(&mut self, header: Header) {
        self.header = Some(header);
    }

    pub fn keys(&self) -> usize {
        self.outputs.len()
    }

    pub fn stats(&self) -> Stats {
        self.pager.stats()
    }

    fn refused(&self, name: &[u8], message: String) -> WriteError {
        WriteError {
            file: shown_path(&self.dir.path().join(std::ffi::OsStr::from_bytes(name))),
            key: None,
            error: io::Error::new(io::ErrorKind::InvalidData, message),
            refused: true,
        }
    }

    /// With `--append`: every existing, non-empty file in OUTDIR that this run could write
    /// (its name fits the template) must start with the run's header (a BOM aside). Checked
    /// before anything is written.
    pub fn check_append(&self) -> Result<(), WriteError> {
        let Some(header) = &self.header else {
            return Ok(());
        };
        if self.existing != Existing::Append {
            return Ok(());
        }
        let names = self.dir.names().map_err(|error| WriteError {
            file: shown_path(self.dir.path()),
            key: None,
            error,
            refused: false,
        })?;
        for name in names {
            let fits = name.len() > self.prefix.len() + self.suffix.len()
                && name.starts_with(self.prefix.as_bytes())
                && name.ends_with(self.suffix.as_bytes());
            if !fits {
                continue;
            }
            let Ok(file) = self.dir.open_existing(&name) else {
                continue; // not a regular file: refused when (if) it is opened
            };
            self.check_header(&file, &name, header)?;
        }
        Ok(())
    }

    fn check_header(
        &self,
        file: &std::fs::File,
        name: &[u8],
        header: &Header,
    ) -> Result<(), WriteError> {
        let first = first_record(file, header.delimiter)
            .map_err(|error| self.refused(name, format!("cannot read its header: {error}")))?;
        match first {
            Some(fields) if fields != header.fields => Err(self.refused(
                name,
                format!(
                    "--append: its header ({}) is not the input's ({}); nothing was written to it",
                    shown_names(&fields),
                    shown_names(&header.fields)
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Adds a record to its key's file: `parts` are its bytes (a BOM, the record, a
    /// terminator it lacked).
    pub fn add(&mut self, key: &[u8], parts: [&[u8]; 3]) -> Result<(), WriteError> {
        let at = match self.index.get(key) {
            Some(&at) => at,
            None => self.new_output(key)?,
        };
        let output = &mut self.outputs[at];
        let before = output.buf.capacity();
        for part in parts {
            output.buf.extend_from_slice(part);
        }
        output.pending += 1;
        self.held += output.buf.capacity() - before;
        if self.held > self.memory {
            self.flush_largest()?;
        }
        Ok(())
    }

    fn new_output(&mut self, key: &[u8]) -> Result<usize, WriteError> {
        let name = self.names.name(key).map_err(|message| WriteError {
            file: shown_path(self.dir.path()),
            key: Some(key.to_vec()),
            error: io::Error::other(message),
            refused: false,
        })?;
        let name = format!("{}{name}{}", self.prefix, self.suffix);
        let at = self.outputs.len();
        // A new file starts with the header: in the buffer, so that it goes out in the same
        // write as the first records. (Appending, the header depends on the file: see `open`.)
        let mut buf = Vec::new();
        if let (Some(header), false) = (&self.header, self.existing == Existing::Append) {
            buf.extend_from_slice(&header.raw);
            self.held += buf.capacity();
        }
        let header_in_buf = !buf.is_empty();
        self.outputs.push(Output {
            key: key.into(),
            name,
            file: None,
            len: 0,
            buf,
            pending: 0,
            header_in_buf,
            failed: false,
        });
        self.index.insert(key.into(), at);
        self.held += PER_KEY + 2 * key.len();
        Ok(at)
    }

    /// Flushes the largest buffers until half of the memory bound is free.
    fn flush_largest(&mut self) -> Result<(), WriteError> {
        let mut order: Vec<usize> = (0..self.outputs.len())
            .filter(|&at| !self.outputs[at].buf.is_empty())
            .collect();
        order.sort_unstable_by_key(|&at| std::cmp::Reverse(self.outputs[at].buf.len()));
        for at in order {
            if self.held <= self.memory / 2 {
                break;
            }
            self.flush(at)?;
        }
        Ok(())
    }

    /// Opens a key's file the first time it is written: a new file, or (with `--append`) the
    /// existing one, whose header is checked; returns what goes before the records (the
    /// header for an empty file; a terminator if the file's last record lacks one).
    fn open(&mut self, at: usize) -> Result<Vec<u8>, WriteError> {
        let name = self.outputs[at].name.clone();
        let fail = |outputs: &Outputs, error: io::Error| WriteError {
            file: shown_path(&outputs.dir.path().join(&name)),
            key: Some(outputs.outputs[at].key.to_vec()),
            error,
            refused: false,
        };
        if self.existing == Existing::Refuse {
            // A new file, by a path through OUTDIR's descriptor, with O_EXCL: the cheapest
            // way that is as safe as openat + O_NOFOLLOW (see `Outdir::through_fd`).
            if let Some(path) = self.dir.through_fd(&name) {
                let mut options = OpenOptions::new();
                options.write(true).create_new(true);
                let file = self
                    .pager
                    .open(path, &options)
                    .map_err(|error| fail(self, error))?;
                let output = &mut self.outputs[at];
                output.len = 0;
                output.file = Some(file);
                return Ok(Vec::new());
            }
        }
        let pager = &self.pager;
        // The fd opened here is the pager's once adopted: make room for it first, so that the
        // real descriptors of the outputs never exceed the budget, even for a moment.
        if pager.resident() >= pager.budget() {
            pager.release_one();
        }
        let opened = self
            .dir
            .open_output(name.as_bytes(), self.existing, || pager.release_one());
        let mut fd = opened.map_err(|error| fail(self, error))?;
        let mut before = Vec::new();
        let mut len = 0;
        if self.existing == Existing::Append {
            let file = std::fs::File::from(fd);
            len = file.metadata().map_err(|e| fail(self, e))?.len();
            if let Some(header) = &self.header {
                if len == 0 {
                    before.extend_from_slice(&header.raw);
                } else {
                    self.check_header(&file, name.as_bytes(), header)?;
                }
            }
            if len > 0 {
                let mut last = [0];
                file.read_exact_at(&mut last, len - 1)
                    .map_err(|e| fail(self, e))?;
                if !matches!(last[0], b'\n' | b'\r') {
                    // The file's last record has no terminator: give it the header's.
                    let raw = self.header.as_ref().map_or(&b"\n"[..], |h| &h.raw[..]);
                    let term = [&b"\r\n"[..], b"\n", b"\r"]
                        .into_iter()
                        .find(|t| raw.ends_with(t))
                        .unwrap_or(b"\n");
                    before.extend_from_slice(term);
                }
            }
            fd = file.into();
        }
        let file = self.pager.adopt(fd).map_err(|error| fail(self, error))?;
        let output = &mut self.outputs[at];
        output.len = len;
        output.file = Some(file);
        Ok(before)
    }

    /// Writes one key's buffer to its file (opened the first time). A failed write is cut
    /// back: the file ends with its last whole record.
    fn flush(&mut self, at: usize) -> Result<(), WriteError> {
        if self.outputs[at].failed {
            return Ok(());
        }
        let before = if self.outputs[at].file.is_none() {
            match self.open(at) {
                Ok(before) => before,
                Err(error) => {
                    self.outputs[at].failed = true;
                    return Err(error);
                }
            }
        } else {
            Vec::new()
        };
        let output = &mut self.outputs[at];
        let file = output.file.as_mut().expect("opened above");
        let result = file
            .write_all(&before)
            .and_then(|()| file.write_all(&output.buf));
        if let Err(error) = result {
            output.failed = true;
            // Keep the records that reached the file whole; cut off the rest.
            let on_disk = file.metadata().map_or(output.len, |m| m.len());
            let start = output.len + before.len() as u64;
            let (kept, records) = match on_disk.checked_sub(start) {
                Some(reached) => whole_records(&output.buf, reached, self.delimiter),
                None => (0, 0),
            };
            let (keep, records) = if kept > 0 {
                (
                    start + kept as u64,
                    records - u64::from(output.header_in_buf),
                )
            } else {
                (output.len, 0)
            };
            let error = match file.set_len(keep) {
                Ok(()) => {
                    self.bytes_written += keep - output.len;
                    self.records_written += records;
                    error
                }
                Err(cut) => io::Error::new(
                    error.kind(),
                    format!("{error}; and cutting it back to its last whole record failed: {cut}"),
                ),
            };
            return Err(WriteError {
                file: shown_path(&self.dir.path().join(&output.name)),
                key: Some(output.key.to_vec()),
                error,
                refused: false,
            });
        }
        let wrote = (before.len() + output.buf.len()) as u64;
        output.len += wrote;
        self.bytes_written += wrote;
        self.records_written += output.pending;
        output.pending = 0;
        output.header_in_buf = false;
        self.held -= output.buf.capacity();
        output.buf = Vec::new();
        Ok(())
    }

    /// Flushes everything (but files whose writes failed) and closes every file. The first
    /// error is reported, after all the rest is done.
    pub fn finish(mut self) -> Finished {
        let mut first: Option<WriteError> = None;
        for at in 0..self.outputs.len() {
            if !self.outputs[at].buf.is_empty() {
                if let Err(error) = self.flush(at) {
                    first.get_or_insert(error);
                }
            }
        }
        let files = self.outputs.iter().filter(|o| o.file.is_some()).count();
        for output in std::mem::take(&mut self.outputs) {
            if let Some(file) = output.file {
                if let Err(error) = file.close() {
                    first.get_or_insert(WriteError {
                        file: shown_path(&self.dir.path().join(&output.name)),
                        key: Some(output.key.to_vec()),
                        error,
                        refused: false,
                    });
                }
            }
        }
        Finished {
            bytes_written: self.bytes_written,
            records_written: self.records_written,
            files,
            pager: self.pager.stats(),
            error: first,
            dir: self.dir,
        }
    }
}
