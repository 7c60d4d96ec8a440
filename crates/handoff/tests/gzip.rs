//! A real C library that closes what it is given: zlib's `gzdopen` takes ownership of the
//! descriptor and `gzclose` closes it. Given a `dup_from` duplicate, the caller's `File` keeps
//! working: it reads back what zlib wrote, and an independent decoder checks it.

mod common;

use std::ffi::c_int;
use std::io::{Read, Seek, SeekFrom, Write};

use common::{is_open, raw, serial, Census};
use handoff::crt::{Access, AsOsHandle, CrtFd};

/// Some compressible, non-trivial bytes.
fn sample(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..len)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if i % 64 == 63 {
                b'\n'
            } else {
                b"handoff gzip "[(state % 13) as usize]
            }
        })
        .collect()
}

/// Writes `data` gzip-compressed through zlib, which owns `fd` from here on.
fn gzip_into(fd: c_int, data: &[u8]) {
    // SAFETY: `fd` is an open descriptor given to zlib; the mode is a C string.
    let gz = unsafe { libz_sys::gzdopen(fd, c"wb9".as_ptr()) };
    if gz.is_null() {
        // zlib does not close the descriptor when gzdopen fails: it is still ours.
        // SAFETY: we still own `fd`.
        drop(unsafe { CrtFd::from_raw(fd) });
        panic!("gzdopen failed");
    }
    for chunk in data.chunks(64 * 1024) {
        // SAFETY: `chunk` is valid for its length; `gz` is open.
        let n = unsafe { libz_sys::gzwrite(gz, chunk.as_ptr().cast(), chunk.len() as u32) };
        assert_eq!(n as usize, chunk.len());
    }
    // SAFETY: `gz` is open; gzclose flushes, closes the descriptor and frees `gz`.
    assert_eq!(unsafe { libz_sys::gzclose(gz) }, libz_sys::Z_OK);
}

#[test]
fn gzdopen_on_a_duplicate_leaves_the_callers_file_working() {
    let _serial = serial();
    let census = Census::take();
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(b"HEADER\n").unwrap();
    let lent = raw(file.as_os_handle());

    let data = sample(1 << 20);
    let fd = CrtFd::dup_from(file.as_os_handle(), Access::Write).unwrap();
    let given = raw(fd.as_os_handle());
    gzip_into(fd.into_raw(), &data);

    assert!(!is_open(given), "gzclose closed the duplicate it was given");
    assert!(is_open(lent), "and not the caller's handle");
    // zlib wrote at the shared position, after the header.
    let end = file.stream_position().unwrap();
    assert!(
        end > 7 && end < 7 + data.len() as u64 / 2,
        "compressed: {end} bytes"
    );

    // The caller's File seeks, reads back the compressed bytes, and keeps writing.
    file.seek(SeekFrom::Start(0)).unwrap();
    let mut header = [0; 7];
    file.read_exact(&mut header).unwrap();
    assert_eq!(&header, b"HEADER\n");
    let mut compressed = Vec::new();
    file.read_to_end(&mut compressed).unwrap();
    assert_eq!(&compressed[..2], &[0x1f, 0x8b], "a gzip member");
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_end(&mut decoded)
        .unwrap();
    assert!(decoded == data, "what zlib compressed decodes to the input");
    file.write_all(b"TRAILER").unwrap();

    drop(file);
    assert!(!is_open(lent));
    census.assert_back();
}
