//! Input read ahead on a thread of its own, so that parsing overlaps reading, and so that a
//! signal stops the run even while the input (a quiet pipe, a terminal) has nothing to say:
//! the signal handler restarts interrupted reads (`SA_RESTART`), so a read in the main thread
//! would wait for more input before the run could stop.

use std::io::{self, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

const CHUNK: usize = 1 << 20;

/// A `Read` over chunks read by a background thread. Once the signal is set, it serves only
/// the chunks already read, then reports `ErrorKind::Interrupted`.
pub struct Prefetch {
    chunks: Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    at: usize,
    signal: Arc<AtomicUsize>,
}

impl Prefetch {
    pub fn spawn(mut input: Box<dyn Read + Send>, signal: Arc<AtomicUsize>) -> Prefetch {
        // Two chunks ahead at most: a bound on memory, and on what a signal leaves unread.
        let (sender, chunks) = mpsc::sync_channel(2);
        let stop = Arc::clone(&signal);
        std::thread::spawn(move || loop {
            if stop.load(Ordering::Relaxed) != 0 {
                return;
            }
            let mut chunk = vec![0; CHUNK];
            let result = loop {
                match input.read(&mut chunk) {
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other,
                }
            };
            let last = !matches!(result, Ok(n) if n > 0);
            let message = result.map(|n| {
                chunk.truncate(n);
                chunk
            });
            if sender.send(message).is_err() || last {
                return;
            }
        });
        Prefetch {
            chunks,
            current: Vec::new(),
            at: 0,
            signal,
        }
    }

    /// The next chunk: `Ok(None)` at the end of the input.
    fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if self.signal.load(Ordering::Relaxed) != 0 {
                return match self.chunks.try_recv() {
                    Ok(chunk) => chunk.map(Some),
                    Err(TryRecvError::Empty) => Err(io::ErrorKind::Interrupted.into()),
                    Err(TryRecvError::Disconnected) => Ok(None),
                };
            }
            match self.chunks.recv_timeout(Duration::from_millis(50)) {
                Ok(chunk) => return chunk.map(Some),
                Err(RecvTimeoutError::Timeout) => continue, // look at the signal again
                Err(RecvTimeoutError::Disconnected) => return Ok(None),
            }
        }
    }
}

impl Read for Prefetch {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            match self.next_chunk()? {
                Some(chunk) if chunk.is_empty() => return Ok(0),
                Some(chunk) => {
                    self.current = chunk;
                    self.at = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
