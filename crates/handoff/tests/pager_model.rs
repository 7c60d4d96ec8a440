//! Model-based test: random sequences of operations on ~50 files through a `Pager` with a tiny
//! budget (1-4) must give byte for byte what the same operations give on plain `std::fs::File`s.
//!
//! Cases: `HANDOFF_MODEL_CASES` in all, split between the two tests: 2,000 by default (about
//! ten seconds on two cores), 10,000 in CI (`.ci/run`), 1,000 under Wine (`ci/windows-test.sh`).

use std::cell::RefCell;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use handoff::pager::{OpenOptions, Pager, VirtualFile};
use proptest::prelude::*;

const FILES: usize = 50;

#[derive(Clone, Debug)]
enum Op {
    Open {
        file: usize,
        truncate: bool,
        append: bool,
    },
    Write {
        file: usize,
        data: Vec<u8>,
    },
    WriteAt {
        file: usize,
        offset: u64,
        data: Vec<u8>,
    },
    Read {
        file: usize,
        len: usize,
    },
    ReadAt {
        file: usize,
        offset: u64,
        len: usize,
    },
    Seek {
        file: usize,
        to: SeekTo,
    },
    SetLen {
        file: usize,
        len: u64,
    },
    /// Written by C code on the real descriptor (`with_crt_fd`), at the cursor.
    CrtWrite {
        file: usize,
        data: Vec<u8>,
    },
    Close {
        file: usize,
    },
}

#[derive(Clone, Copy, Debug)]
enum SeekTo {
    Start(u64),
    Current(i64),
    End(i64),
}

impl From<SeekTo> for SeekFrom {
    fn from(seek: SeekTo) -> SeekFrom {
        match seek {
            SeekTo::Start(n) => SeekFrom::Start(n),
            SeekTo::Current(n) => SeekFrom::Current(n),
            SeekTo::End(n) => SeekFrom::End(n),
        }
    }
}

fn op() -> impl Strategy<Value = Op> {
    let file = 0..FILES;
    let data = proptest::collection::vec(any::<u8>(), 0..64);
    prop_oneof![
        3 => (file.clone(), any::<bool>(), prop::bool::weighted(0.15))
            .prop_map(|(file, truncate, append)| Op::Open { file, truncate, append }),
        4 => (file.clone(), data.clone()).prop_map(|(file, data)| Op::Write { file, data }),
        3 => (file.clone(), 0..300u64, data).prop_map(|(file, offset, data)| Op::WriteAt { file, offset, data }),
        3 => (file.clone(), 0..100usize).prop_map(|(file, len)| Op::Read { file, len }),
        3 => (file.clone(), 0..300u64, 0..100usize).prop_map(|(file, offset, len)| Op::ReadAt { file, offset, len }),
        2 => (file.clone(), prop_oneof![
                (0..300u64).prop_map(SeekTo::Start),
                (-100..100i64).prop_map(SeekTo::Current),
                (-100..50i64).prop_map(SeekTo::End),
            ]).prop_map(|(file, to)| Op::Seek { file, to }),
        1 => (file.clone(), 0..300u64).prop_map(|(file, len)| Op::SetLen { file, len }),
        2 => (file.clone(), proptest::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(file, data)| Op::CrtWrite { file, data }),
        1 => file.prop_map(|file| Op::Close { file }),
    ]
}

fn cases() -> u32 {
    std::env::var("HANDOFF_MODEL_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000)
}

/// Ok values must be equal; errors must have the same kind.
fn same<T: PartialEq + std::fmt::Debug>(
    op: &Op,
    virt: io::Result<T>,
    real: io::Result<T>,
) -> Result<(), TestCaseError> {
    match (virt, real) {
        (Ok(v), Ok(r)) => prop_assert_eq!(v, r, "{:?}", op),
        // Windows reports a negative seek as ERROR_NEGATIVE_SEEK (an uncategorized kind); the
        // pager says InvalidInput on every platform, as Unix does.
        (Err(v), Err(_)) if matches!(op, Op::Seek { .. }) => {
            prop_assert_eq!(v.kind(), io::ErrorKind::InvalidInput)
        }
        (Err(v), Err(r)) => prop_assert_eq!(v.kind(), r.kind(), "{:?}: {} vs {}", op, v, r),
        (v, r) => prop_assert!(false, "{:?}: pager {:?}, std {:?}", op, v, r),
    }
    Ok(())
}

/// Positional reads and writes on the reference `File`, which leave its cursor alone (as the
/// pager's do on every platform; Windows' `seek_read`/`seek_write` would move it).
#[cfg(unix)]
fn std_read_at(file: &mut File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(unix)]
fn std_write_at(file: &mut File, buf: &[u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::write_at(file, buf, offset)
}

#[cfg(windows)]
fn std_read_at(file: &mut File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let cursor = file.stream_position()?;
    let result = std::os::windows::fs::FileExt::seek_read(file, buf, offset);
    file.seek(SeekFrom::Start(cursor))?;
    result
}

#[cfg(windows)]
fn std_write_at(file: &mut File, buf: &[u8], offset: u64) -> io::Result<usize> {
    let cursor = file.stream_position()?;
    let result = std::os::windows::fs::FileExt::seek_write(file, buf, offset);
    file.seek(SeekFrom::Start(cursor))?;
    result
}

/// `write` (Unix) / `_write` (Windows) on a C-runtime descriptor.
///
/// # Safety
/// `fd` must be open for the call (`with_crt_fd` lends it pinned).
unsafe fn crt_write(fd: std::ffi::c_int, data: &[u8]) -> io::Result<usize> {
    // SAFETY: `data` is valid for its length; `fd` is open (see above).
    let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len() as _) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn read_up_to(
    len: usize,
    mut read: impl FnMut(&mut [u8]) -> io::Result<usize>,
) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; len];
    let n = read(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

thread_local! {
    /// One directory per test thread, `virtual/` and `real/`, reused by every case: creating and
    /// removing directories, or files, for each case cost more than the case itself (ext4's
    /// inode allocator steps over every recently deleted inode when it creates one).
    static DIR: tempfile::TempDir = {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("virtual")).unwrap();
        fs::create_dir(dir.path().join("real")).unwrap();
        dir
    };
    /// The files the last case opened, on either side.
    static USED: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

fn name(side: &Path, file: usize) -> PathBuf {
    side.join(format!("{file}"))
}

/// `dir/virtual` and `dir/real`, where every file the last case opened is now empty on both
/// sides (truncated, not removed; created on the side where a failed case left none). For the
/// operations here an empty file is the same as none: every open creates.
fn emptied(dir: &Path) -> (PathBuf, PathBuf) {
    let (vdir, rdir) = (dir.join("virtual"), dir.join("real"));
    let mut used = USED.with(|used| std::mem::take(&mut *used.borrow_mut()));
    used.sort_unstable();
    used.dedup();
    for file in used {
        for side in [&vdir, &rdir] {
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(name(side, file))
                .unwrap();
        }
    }
    (vdir, rdir)
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<std::ffi::OsString> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    names.sort();
    names
}

fn run(budget: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    DIR.with(|dir| run_in(dir.path(), budget, ops))
}

fn run_in(dir: &Path, budget: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    let (vdir, rdir) = emptied(dir);
    let pager = Pager::new(budget);
    let mut open: Vec<Option<(VirtualFile, File)>> = (0..FILES).map(|_| None).collect();

    for op in ops {
        match *op {
            Op::Open {
                file,
                truncate,
                append,
            } => {
                open[file] = None; // close any earlier handle first, on both sides
                USED.with(|used| used.borrow_mut().push(file));
                let mut v = OpenOptions::new();
                v.read(true)
                    .write(!append)
                    .append(append)
                    .create(true)
                    .truncate(truncate);
                let mut r = fs::OpenOptions::new();
                r.read(true)
                    .write(!append)
                    .append(append)
                    .create(true)
                    .truncate(truncate);
                match (pager.open(name(&vdir, file), &v), r.open(name(&rdir, file))) {
                    (Ok(v), Ok(r)) => open[file] = Some((v, r)),
                    (v, r) => same(op, v.map(|_| ()), r.map(|_| ()))?,
                }
            }
            Op::Close { file } => {
                if let Some((v, _)) = open[file].take() {
                    prop_assert!(v.close().is_ok());
                }
            }
            _ => {
                let file = match op {
                    Op::Write { file, .. }
                    | Op::WriteAt { file, .. }
                    | Op::Read { file, .. }
                    | Op::ReadAt { file, .. }
                    | Op::Seek { file, .. }
                    | Op::SetLen { file, .. }
                    | Op::CrtWrite { file, .. } => *file,
                    Op::Open { .. } | Op::Close { .. } => unreachable!(),
                };
                let Some((v, r)) = open[file].as_mut() else {
                    continue;
                };
                match op {
                    Op::Write { data, .. } => same(op, v.write(data), r.write(data))?,
                    Op::WriteAt { offset, data, .. } => same(
                        op,
                        v.write_at(data, *offset),
                        std_write_at(r, data, *offset),
                    )?,
                    Op::Read { len, .. } => same(
                        op,
                        read_up_to(*len, |b| v.read(b)),
                        read_up_to(*len, |b| r.read(b)),
                    )?,
                    Op::ReadAt { offset, len, .. } => same(
                        op,
                        read_up_to(*len, |b| v.read_at(b, *offset)),
                        read_up_to(*len, |b| std_read_at(r, b, *offset)),
                    )?,
                    Op::Seek { to, .. } => same(op, v.seek((*to).into()), r.seek((*to).into()))?,
                    Op::SetLen { len, .. } => same(op, v.set_len(*len), r.set_len(*len))?,
                    Op::CrtWrite { data, .. } => same(
                        op,
                        // SAFETY: `with_crt_fd` lends `fd` pinned open for the call.
                        v.with_crt_fd(|fd| unsafe { crt_write(fd, data) })
                            .and_then(|n| n),
                        r.write(data),
                    )?,
                    Op::Open { .. } | Op::Close { .. } => unreachable!(),
                }
            }
        }
        prop_assert!(
            pager.resident() <= budget,
            "{} resident, budget {}",
            pager.resident(),
            budget
        );
    }
    // The same files exist, with the same bytes, and every open file's cursor agrees. (The
    // files this case did not open are empty on both sides since `emptied`.)
    for (v, r) in open.iter_mut().flatten() {
        prop_assert_eq!(v.stream_position().unwrap(), r.stream_position().unwrap());
    }
    prop_assert_eq!(names(&vdir), names(&rdir));
    let mut used = USED.with(|used| used.borrow().clone());
    used.sort_unstable();
    used.dedup();
    for file in used {
        prop_assert_eq!(
            fs::read(name(&vdir, file)).ok(), // none if both opens failed
            fs::read(name(&rdir, file)).ok(),
            "file {}",
            file
        );
    }
    let stats = pager.stats();
    prop_assert!(stats.peak_resident <= budget as u64);
    drop(open);
    prop_assert_eq!(pager.resident(), 0);
    Ok(())
}

// Two tests (so that both cores work), half of the cases each.
proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases() / 2))]

    #[test]
    fn with_budget_1_or_2_the_pager_behaves_like_std_files(
        budget in 1..=2usize,
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        run(budget, &ops)?;
    }

    #[test]
    fn with_budget_3_or_4_the_pager_behaves_like_std_files(
        budget in 3..=4usize,
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        run(budget, &ops)?;
    }
}
