//! Windows: the console's control events (`SetConsoleCtrlHandler`).
//!
//! The system calls the handler on a thread of its own. For Ctrl-C and Ctrl-Break the handler
//! sets the flag and returns TRUE (handled: the process goes on, stops reading, writes what it
//! read, and exits 130). For a console close, a logoff or a shutdown, returning at all ends
//! the process at once (`ExitProcess`), so the handler sets the flag and never returns: the
//! process ends when `main` returns, once every record read is written. Windows waits for
//! that about 5 seconds after a close (longer at shutdown), then ends the process anyway: a
//! run with more than that to flush is cut there, with its files holding whole records only
//! as far as they were written.
//!
//! References: <https://learn.microsoft.com/en-us/windows/console/setconsolectrlhandler>,
//! <https://learn.microsoft.com/en-us/windows/console/handlerroutine>.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use windows_sys::core::BOOL;
use windows_sys::Win32::System::Console::{
    SetConsoleCtrlHandler, CTRL_BREAK_EVENT, CTRL_CLOSE_EVENT, CTRL_C_EVENT, CTRL_LOGOFF_EVENT,
    CTRL_SHUTDOWN_EVENT,
};

use super::{INTERRUPT, TERMINATE};

/// The flag the handler sets (a handler routine takes no context).
static FLAG: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

/// The number a control event stores, if it is a stop.
fn number(event: u32) -> Option<usize> {
    match event {
        CTRL_C_EVENT | CTRL_BREAK_EVENT => Some(INTERRUPT),
        CTRL_CLOSE_EVENT | CTRL_LOGOFF_EVENT | CTRL_SHUTDOWN_EVENT => Some(TERMINATE),
        _ => None,
    }
}

/// The handler routine: sets the flag; never returns for the events after which Windows would
/// end the process on return.
unsafe extern "system" fn on_control(event: u32) -> BOOL {
    let (Some(number), Some(flag)) = (number(event), FLAG.get()) else {
        return 0; // not ours: the next handler (the default one ends the process)
    };
    flag.store(number, Ordering::SeqCst);
    if number == TERMINATE {
        loop {
            // `main` returning ends the process, this thread with it.
            std::thread::park();
        }
    }
    1
}

pub fn install(flag: &Arc<AtomicUsize>) -> io::Result<()> {
    if FLAG.set(Arc::clone(flag)).is_err() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the console control handler is installed already",
        ));
    }
    // SAFETY: `on_control` is a valid HandlerRoutine for the whole life of the process (a
    // function, and FLAG is a static); adding a handler has no other precondition.
    if unsafe { SetConsoleCtrlHandler(Some(on_control), 1) } == 0 {
        let error = io::Error::last_os_error();
        return Err(io::Error::new(
            error.kind(),
            format!("cannot handle console control events (SetConsoleCtrlHandler): {error}"),
        ));
    }
    Ok(())
}

pub fn describe(number: usize) -> String {
    match number {
        INTERRUPT => "Ctrl-C or Ctrl-Break".to_owned(),
        TERMINATE => "the console closing, a logoff or a shutdown".to_owned(),
        _ => format!("control event {number}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The handler's effect, called as the system calls it (a console close cannot be made
    /// under Wine; Ctrl-C is sent for real by ci/partition_oracle.py): Ctrl-C and Ctrl-Break
    /// set the flag to 2 and are handled; a close, a logoff or a shutdown set it to 15 and
    /// hold the process until `main` returns; an event that is not a stop is passed on.
    #[test]
    fn console_events_set_the_flag_as_the_unix_signals_do() {
        let flag = Arc::new(AtomicUsize::new(0));
        install(&flag).unwrap();
        // SAFETY: called as the system would, with a control event number.
        assert_eq!(unsafe { on_control(99) }, 0);
        assert_eq!(flag.load(Ordering::SeqCst), 0);
        for event in [CTRL_C_EVENT, CTRL_BREAK_EVENT] {
            flag.store(0, Ordering::SeqCst);
            // SAFETY: as above.
            assert_eq!(unsafe { on_control(event) }, 1);
            assert_eq!(flag.load(Ordering::SeqCst), INTERRUPT);
        }
        assert!(install(&flag).is_err(), "a second install is refused");

        // A console close: the flag says SIGTERM's number, and the handler does not return
        // (returning would let Windows end the process before the records are written).
        for event in [CTRL_CLOSE_EVENT, CTRL_LOGOFF_EVENT, CTRL_SHUTDOWN_EVENT] {
            flag.store(0, Ordering::SeqCst);
            // SAFETY: as above, on a thread of its own, as the system does.
            let handler = std::thread::spawn(move || unsafe { on_control(event) });
            let start = std::time::Instant::now();
            while flag.load(Ordering::SeqCst) == 0 {
                assert!(
                    start.elapsed().as_secs() < 20,
                    "event {event}: the flag was never set"
                );
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            assert_eq!(flag.load(Ordering::SeqCst), TERMINATE);
            std::thread::sleep(std::time::Duration::from_millis(200));
            assert!(
                !handler.is_finished(),
                "event {event}: the handler returned"
            );
        }
    }
}
