//! Unix: SIGINT and SIGTERM set the flag to their number (`signal_hook`, async-signal-safe).

use std::io;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};

const _: () = assert!(SIGINT as usize == super::INTERRUPT && SIGTERM as usize == super::TERMINATE);

pub fn install(flag: &Arc<AtomicUsize>) -> io::Result<()> {
    for number in [SIGINT, SIGTERM] {
        signal_hook::flag::register_usize(number, Arc::clone(flag), number as usize).map_err(
            |error| {
                io::Error::new(
                    error.kind(),
                    format!("cannot handle signal {number}: {error}"),
                )
            },
        )?;
    }
    Ok(())
}

pub fn describe(number: usize) -> String {
    format!("signal {number}")
}
