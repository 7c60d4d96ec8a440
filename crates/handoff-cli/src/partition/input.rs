//! Input read ahead on a thread of its own, so that parsing overlaps reading, and so that a
//! signal stops the run even while the input (a quiet pipe, a terminal) has nothing to say:
//! the signal handler restarts interrupted reads (`SA_RESTART`), so a read in the main thread
//! would wait for more input before the run could stop.
//!
//! The end of the input is a message of its own ([`Chunk::End`]): a reader thread that returns
//! because of a signal only hangs up, and a hang-up is a stop (`ErrorKind::Interrupted`), never
//! the end of the input, so that a partial record read before the signal is never taken for an
//! input's last line.

use std::borrow::Borrow;
use std::fs::File;
use std::io::{self, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

const CHUNK: usize = 1 << 20;

/// What the reader thread sends.
enum Chunk {
    Data(Vec<u8>),
    /// The input ended (a read returned 0).
    End,
    Failed(io::Error),
}

/// A `Read` over chunks read by a background thread. Once the signal is set, it serves only
/// the chunks already read, then reports `ErrorKind::Interrupted`.
pub struct Prefetch {
    chunks: Receiver<Chunk>,
    /// Where parsed chunks go back to the reading thread.
    spare: Sender<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
    /// `End` was received: every later read returns 0.
    ended: bool,
    signal: Arc<AtomicUsize>,
}

impl Prefetch {
    pub fn spawn(mut input: Box<dyn Read + Send>, signal: Arc<AtomicUsize>) -> Prefetch {
        // Two chunks ahead at most: a bound on memory, and on what a signal leaves unread.
        let (sender, chunks) = mpsc::sync_channel(2);
        // Chunks read come back once parsed, to be read into again: a new 1 MiB chunk would
        // cost an allocation, zeroing it and faulting its pages in, a chunk at a time.
        let (spare, spares) = mpsc::channel::<Vec<u8>>();
        let stop = Arc::clone(&signal);
        std::thread::spawn(move || loop {
            if stop.load(Ordering::Relaxed) != 0 {
                return;
            }
            let mut chunk = spares.try_recv().unwrap_or_default();
            chunk.resize(CHUNK, 0);
            let result = loop {
                match input.read(&mut chunk) {
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other,
                }
            };
            let message = match result {
                Ok(0) => Chunk::End,
                Ok(n) => {
                    chunk.truncate(n);
                    Chunk::Data(chunk)
                }
                Err(error) => Chunk::Failed(error),
            };
            if !matches!(message, Chunk::Data(_)) {
                // The input is closed (if this holds its last handle) before the end is told:
                // the run may exit as soon as it knows, before this thread would have let go.
                drop(input);
                let _ = sender.send(message);
                return;
            }
            if sender.send(message).is_err() {
                return;
            }
        });
        Prefetch {
            chunks,
            spare,
            current: Vec::new(),
            at: 0,
            ended: false,
            signal,
        }
    }

    /// The next chunk: `Ok(None)` at the end of the input; `Interrupted` once stopped.
    fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        let chunk = loop {
            if self.signal.load(Ordering::Relaxed) != 0 {
                // What was read before the signal is served; then the run stops.
                match self.chunks.try_recv() {
                    Ok(chunk) => break chunk,
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => {
                        return Err(io::ErrorKind::Interrupted.into())
                    }
                }
            }
            match self.chunks.recv_timeout(Duration::from_millis(50)) {
                Ok(chunk) => break chunk,
                Err(RecvTimeoutError::Timeout) => continue, // look at the signal again
                // The thread hangs up without `End` when told to stop (the signal is set by
                // then), or if it died.
                Err(RecvTimeoutError::Disconnected) => {
                    if self.signal.load(Ordering::Relaxed) != 0 {
                        return Err(io::ErrorKind::Interrupted.into());
                    }
                    return Err(io::Error::other("the reading thread ended early"));
                }
            }
        };
        match chunk {
            Chunk::Data(data) => Ok(Some(data)),
            Chunk::End => Ok(None),
            Chunk::Failed(error) => Err(error),
        }
    }
}

impl Read for Prefetch {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            if self.ended {
                return Ok(0);
            }
            match self.next_chunk()? {
                Some(chunk) => {
                    let parsed = std::mem::replace(&mut self.current, chunk);
                    if parsed.capacity() > 0 {
                        // (The reading thread may be gone: then the chunk is just dropped.)
                        let _ = self.spare.send(parsed);
                    }
                    self.at = 0;
                }
                None => self.ended = true,
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// A `Read` over a file from `at` on, by positional reads, with an offset of its own: the file
/// may be shared (see [`super::halves`]), each reader keeping its own place. (The file's
/// cursor is not used; on Windows, where `seek_read` moves it, no reader may rely on it.)
pub struct ReadAt<F> {
    file: F,
    at: u64,
}

impl<F: Borrow<File>> ReadAt<F> {
    pub fn new(file: F, at: u64) -> ReadAt<F> {
        ReadAt { file, at }
    }
}

impl<F: Borrow<File>> Read for ReadAt<F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = super::os::read_at(self.file.borrow(), buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}
