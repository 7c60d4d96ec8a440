//! The preload library behind `handoff audit`, and the contract between it and the CLI.
//!
//! `handoff audit -- CMD` runs CMD with this library in `LD_PRELOAD`. The library (C, in
//! `csrc/preload.c`, compiled by this crate's build script and embedded here as bytes)
//! interposes the calls that open, own, close and use file descriptors, and writes one record
//! per finding — a double close, a close of a descriptor a `FILE*`/`DIR*` owns, a use after
//! close, a leak — to a file per process in the directory named by [`DIR_VAR`]. After a close
//! it keeps the number out of circulation for the next K closes ([`QUARANTINE_VAR`]) with a
//! close-on-exec tombstone, so that a late second close hits the tombstone instead of a file
//! someone opened next.
//!
//! This crate gives the CLI the library's bytes ([`LIBRARY`]), a place to put them on disk
//! ([`install`]) and a parser for the records ([`record`]). Linux only: on other targets it is
//! empty.

#[cfg(target_os = "linux")]
mod install;
#[cfg(target_os = "linux")]
pub mod record;

#[cfg(target_os = "linux")]
pub use install::install;

/// The preload library, compiled from `csrc/preload.c` for this target.
#[cfg(target_os = "linux")]
pub const LIBRARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/libhandoff_audit.so"));

/// The directory where each audited process writes `PID.audit` (absent: standard error).
pub const DIR_VAR: &str = "HANDOFF_AUDIT_DIR";
/// How many closed numbers stay quarantined (default 64, at most 4096, 0 turns it off).
pub const QUARANTINE_VAR: &str = "HANDOFF_AUDIT_QUARANTINE";
/// `fast`: stacks by frame-pointer walk instead of DWARF unwinding (see `handoff audit --help`).
pub const STACKS_VAR: &str = "HANDOFF_AUDIT_STACKS";
/// `1`: report the descriptors still open at exit.
pub const LEAKS_VAR: &str = "HANDOFF_AUDIT_LEAKS";
