//! The independent oracle for `handoff partition` (issue #9): a reference splitter written from
//! the contract (/work/partition-spec.md) alone — no csv-core, no code from the binary — plus
//! the decoder for output file names, the input generator, and the judge.
#![allow(dead_code)]

pub mod csv;
pub mod gen;
pub mod judge;
pub mod names;
