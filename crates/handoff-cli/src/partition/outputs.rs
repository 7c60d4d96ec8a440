//! One output file per key, written through the pager, with records coalesced per key in
//! memory under a bound.
//!
//! Buffering is what makes the writes fast: every key collects its records in its own buffer,
//! and a file is paged in only to take a whole buffer in one write. When the buffers (and the
//! per-key bookkeeping) would pass `--memory`, the largest buffers are flushed until half of
//! the bound is free; at the end, everything is flushed and every file closed, so that an error
//! from any close is reported.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use handoff::pager::{OpenOptions, Pager, Stats, VirtualFile};

use super::names::Names;

/// What to do with files already in the output directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// The directory must hold no files.
    Refuse,
    /// Add records at the end of existing files (a header only to empty ones).
    Append,
    /// Replace the files this run writes.
    Replace,
}

/// Bookkeeping counted against the memory bound for every key, besides its buffer: the map
/// entry, the output's fields, the pager's entry and path, and the key and name bytes.
const PER_KEY: usize = 320;

struct Output {
    key: Box<[u8]>,
    path: PathBuf,
    file: Option<VirtualFile>,
    buf: Vec<u8>,
}

pub struct Outputs {
    pager: Pager,
    dir: PathBuf,
    prefix: String,
    suffix: String,
    existing: Existing,
    header: Option<Vec<u8>>,
    index: HashMap<Box<[u8]>, usize>,
    outputs: Vec<Output>,
    names: Names,
    /// Capacity of all buffers plus the per-key bookkeeping, in bytes.
    held: usize,
    memory: usize,
    pub bytes_written: u64,
}

/// A failure to write an output, naming the file and the key.
#[derive(Debug)]
pub struct WriteError {
    pub path: PathBuf,
    pub key: Vec<u8>,
    pub error: io::Error,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (key {:?}): {}",
            self.path.display(),
            String::from_utf8_lossy(&self.key),
            self.error
        )
    }
}

impl Outputs {
    pub fn new(
        pager: Pager,
        dir: &Path,
        template: &str,
        existing: Existing,
        memory: usize,
    ) -> Outputs {
        let (prefix, suffix) = template.split_once("{}").expect("a checked template");
        Outputs {
            pager,
            dir: dir.to_path_buf(),
            prefix: prefix.to_owned(),
            suffix: suffix.to_owned(),
            existing,
            header: None,
            index: HashMap::new(),
            outputs: Vec::new(),
            names: Names::default(),
            held: 0,
            memory,
            bytes_written: 0,
        }
    }

    pub fn set_header(&mut self, header: Vec<u8>) {
        self.header = Some(header);
    }

    pub fn keys(&self) -> usize {
        self.outputs.len()
    }

    pub fn stats(&self) -> Stats {
        self.pager.stats()
    }

    /// Adds a record (its exact bytes) to its key's file.
    pub fn add(&mut self, key: &[u8], raw: &[u8], terminated: bool) -> Result<(), WriteError> {
        let at = match self.index.get(key) {
            Some(&at) => at,
            None => self.new_output(key)?,
        };
        let buf = &mut self.outputs[at].buf;
        let before = buf.capacity();
        buf.extend_from_slice(raw);
        if !terminated {
            // The input's last record had no line terminator: give it one, so that records
            // appended after it (from another input, or a later --append) start on a new line.
            buf.push(b'\n');
        }
        self.held += buf.capacity() - before;
        if self.held > self.memory {
            self.flush_largest()?;
        }
        Ok(())
    }

    fn new_output(&mut self, key: &[u8]) -> Result<usize, WriteError> {
        let name = self.names.name(key).map_err(|message| WriteError {
            path: self.dir.clone(),
            key: key.to_vec(),
            error: io::Error::other(message),
        })?;
        let path = self
            .dir
            .join(format!("{}{name}{}", self.prefix, self.suffix));
        let at = self.outputs.len();
        // A new file starts with the header: in the buffer, so that it goes out in the same
        // write as the first records. (Appending, the header depends on the file: see `open`.)
        let mut buf = Vec::new();
        if let (Some(header), false) = (&self.header, self.existing == Existing::Append) {
            buf.extend_from_slice(header);
            self.held += buf.capacity();
        }
        self.outputs.push(Output {
            key: key.into(),
            path,
            file: None,
            buf,
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

    /// Writes one key's buffer to its file (opened, with the header, the first time).
    fn flush(&mut self, at: usize) -> Result<(), WriteError> {
        let output = &mut self.outputs[at];
        let result = (|| -> io::Result<()> {
            if output.file.is_none() {
                output.file = Some(open(
                    &self.pager,
                    &output.path,
                    self.existing,
                    self.header.as_deref(),
                    &mut self.bytes_written,
                )?);
            }
            let file = output.file.as_mut().expect("opened above");
            file.write_all(&output.buf)?;
            Ok(())
        })();
        result.map_err(|error| WriteError {
            path: output.path.clone(),
            key: output.key.to_vec(),
            error,
        })?;
        self.bytes_written += output.buf.len() as u64;
        self.held -= output.buf.capacity();
        output.buf = Vec::new();
        Ok(())
    }

    /// Flushes everything and closes every file, reporting the first error. Returns the bytes
    /// written and the pager's counters at the end.
    pub fn finish(mut self) -> Result<(u64, Stats), WriteError> {
        for at in 0..self.outputs.len() {
            if !self.outputs[at].buf.is_empty() {
                self.flush(at)?;
            }
        }
        for output in std::mem::take(&mut self.outputs) {
            if let Some(file) = output.file {
                file.close().map_err(|error| WriteError {
                    path: output.path,
                    key: output.key.to_vec(),
                    error,
                })?;
            }
        }
        Ok((self.bytes_written, self.pager.stats()))
    }
}

/// Opens a key's file the first time it is written: a new file with the header, or (with
/// `--append`) the existing one, with the header only if it is empty.
fn open(
    pager: &Pager,
    path: &Path,
    existing: Existing,
    header: Option<&[u8]>,
    written: &mut u64,
) -> io::Result<VirtualFile> {
    let mut options = OpenOptions::new();
    match existing {
        // create_new: a file that exists already (another key's, on a case-insensitive file
        // system) is an error, never shared.
        Existing::Refuse => options.write(true).create_new(true),
        Existing::Replace => options.write(true).create(true).truncate(true),
        Existing::Append => options.append(true).create(true),
    };
    let mut file = pager.open(path, &options)?;
    if let (Some(header), Existing::Append) = (header, existing) {
        if file.metadata()?.len() == 0 {
            file.write_all(header)?;
            *written += header.len() as u64;
        }
    }
    Ok(file)
}
