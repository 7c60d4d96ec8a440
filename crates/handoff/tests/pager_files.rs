//! The pager against a file system that changes under it: renames, replacements, symlink
//! swaps, unlinks and chmods while a file is paged out; files that cannot be reopened; the
//! once-only open flags; cursors; EMFILE from elsewhere in the process.
#![cfg(unix)]

mod common;

use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

use common::Census;
use handoff::pager::{OpenOptions, Pager, VirtualFile};

fn rw_create() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true);
    options
}

/// Opens `path` with a budget of 1, writes `text`, and pages it out by opening a second file.
fn paged_out(pager: &Pager, dir: &Path, name: &str, text: &[u8]) -> (VirtualFile, VirtualFile) {
    assert_eq!(pager.budget(), 1);
    let file = pager.open(dir.join(name), &rw_create()).unwrap();
    file.write_all_at(text, 0).unwrap();
    let other = pager
        .open(dir.join(format!("{name}.other")), &rw_create())
        .unwrap();
    assert!(!file.is_resident() && other.is_resident());
    (file, other)
}

/// Asserts that the file at `path` still holds `text` and was not opened for writing since.
fn untouched(path: &Path, text: &[u8], modified: std::time::SystemTime) {
    assert_eq!(fs::read(path).unwrap(), text);
    assert_eq!(fs::metadata(path).unwrap().modified().unwrap(), modified);
}

#[test]
fn renamed_while_paged_out_is_not_found_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let pager = Pager::new(1);
    let (file, _other) = paged_out(&pager, dir.path(), "a", b"data");
    fs::rename(dir.path().join("a"), dir.path().join("a.moved")).unwrap();

    let error = file.read_at(&mut [0; 4], 0).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
    assert!(error.to_string().contains("renamed or removed"), "{error}");
    assert_eq!(pager.stats().identity_failures, 1);
    assert!(
        !dir.path().join("a").exists(),
        "create applies once: nothing recreated"
    );
    assert_eq!(fs::read(dir.path().join("a.moved")).unwrap(), b"data");
}

#[test]
fn replaced_while_paged_out_fails_before_touching_the_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let pager = Pager::new(1);
    let (mut file, _other) = paged_out(&pager, dir.path(), "a", b"original");
    // Atomic replace, as editors and `mv` do.
    fs::write(dir.path().join("replacement"), b"someone else's").unwrap();
    fs::rename(dir.path().join("replacement"), dir.path().join("a")).unwrap();
    let modified = fs::metadata(dir.path().join("a"))
        .unwrap()
        .modified()
        .unwrap();

    let error = file.write_all_at(b"XXXX", 0).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
    assert!(error.to_string().contains("another file"), "{error}");
    assert!(file.read(&mut [0; 8]).is_err());
    assert!(file.set_len(0).is_err());
    untouched(&dir.path().join("a"), b"someone else's", modified);
    assert_eq!(pager.stats().identity_failures, 3);
}

#[test]
fn a_fifo_swapped_in_while_paged_out_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let pager = Pager::new(1);
    // Write-only, as `handoff partition` opens its outputs: an O_RDWR open of a FIFO does not
    // block on Linux, an O_WRONLY one waits for a reader.
    let mut write_only = OpenOptions::new();
    write_only.write(true).create(true);
    let file = pager.open(dir.path().join("a"), &write_only).unwrap();
    file.write_all_at(b"data", 0).unwrap();
    let _other = pager.open(dir.path().join("b"), &rw_create()).unwrap();
    assert!(!file.is_resident());
    fs::remove_file(dir.path().join("a")).unwrap();
    let fifo =
        std::ffi::CString::new(dir.path().join("a").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);

    // A blocking open for writing would wait forever for a reader that never comes: run the
    // write on a thread and give it a deadline.
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(file.write_all_at(b"XXXX", 0));
    });
    let result = receiver
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the page-in blocked on the FIFO swapped in for the file");
    let error = result.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
}

#[test]
fn a_reopened_descriptor_has_the_status_flags_of_the_first_open() {
    let dir = tempfile::tempdir().unwrap();
    let pager = Pager::new(1);
    let mut append = OpenOptions::new();
    append.append(true).create(true);
    let flags = |file: &VirtualFile| {
        // SAFETY: the descriptor is pinned open for the duration of the closure.
        file.with_fd(|fd| unsafe {
            libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&fd), libc::F_GETFL)
        })
        .unwrap()
    };
    for (name, options, status) in [
        ("plain", rw_create(), 0),
        ("append", append, libc::O_APPEND),
    ] {
        let file = pager.open(dir.path().join(name), &options).unwrap();
        let first = flags(&file);
        let _other = pager
            .open(dir.path().join(format!("{name}.other")), &rw_create())
            .unwrap();
        assert!(!file.is_resident());
        let reopened = flags(&file); // pages it in again
        assert_eq!(reopened & libc::O_NONBLOCK, 0, "{name}: O_NONBLOCK left on");
        assert_eq!(reopened & libc::O_APPEND, status, "{name}");
        assert_eq!(reopened, first, "{name}");
    }
}

#[test]
fn a_swapped_symlink_is_caught_by_identity() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("target1"), b"one").unwrap();
    fs::write(dir.path().join("target2"), b"two").unwrap();
    std::os::unix::fs::symlink("target1", dir.path().join("link")).unwrap();
    let pager = Pager::new(1);
    let file = pager.open(dir.path().join("link"), &rw_create()).unwrap();
    let _other = pager.open(dir.path().join("other"), &rw_create()).unwrap();
    assert!(!file.is_resident());
    // Swap the link atomically to the other target.
    std::os::unix::fs::symlink("target2", dir.path().join("link.new")).unwrap();
    fs::rename(dir.path().join("link.new"), dir.path().join("link")).unwrap();
    let modified = fs::metadata(dir.path().join("target2"))
        .unwrap()
        .modified()
        .unwrap();

    let error = file.write_all_at(b"XXX", 0).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
    untouched(&dir.path().join("target2"), b"two", modified);
    assert_eq!(fs::read(dir.path().join("target1")).unwrap(), b"one");
    assert_eq!(pager.stats().identity_failures, 1);
}

#[test]
fn unlinked_while_paged_out_is_not_found_and_not_recreated() {
    let dir = tempfile::tempdir().unwrap();
    let pager = Pager::new(1);
    // Write-only, as `handoff partition` opens its outputs: an O_RDWR open of a FIFO does not
    // block on Linux, an O_WRONLY one waits for a reader.
    let mut write_only = OpenOptions::new();
    write_only.write(true).create(true);
    let file = pager.open(dir.path().join("a"), &write_only).unwrap();
    file.write_all_at(b"data", 0).unwrap();
    let _other = pager.open(dir.path().join("b"), &rw_create()).unwrap();
    assert!(!file.is_resident());
    fs::remove_file(dir.path().join("a")).unwrap();
    let error = file.write_all_at(b"more", 4).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
    assert!(!dir.path().join("a").exists());
}

#[test]
fn unlinked_while_resident_stays_resident_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let pager = Pager::new(2);
    let orphan = pager.open(dir.path().join("orphan"), &rw_create()).unwrap();
    orphan
        .write_all_at(b"only reachable through the descriptor", 0)
        .unwrap();
    fs::remove_file(dir.path().join("orphan")).unwrap();

    // Churn through other files: evicting the orphan would lose it, so it stays.
    let others: Vec<_> = (0..10)
        .map(|i| {
            pager
                .open(dir.path().join(format!("f{i}")), &rw_create())
                .unwrap()
        })
        .collect();
    for (i, other) in others.iter().enumerate() {
        other.write_all_at(format!("{i}").as_bytes(), 0).unwrap();
        assert!(orphan.is_resident());
        assert!(pager.resident() <= 2);
    }
    let mut text = String::new();
    (&orphan).read_to_string(&mut text).unwrap();
    assert_eq!(text, "only reachable through the descriptor");
    assert_eq!(pager.stats().permanent, 1);
    drop(orphan);
    assert_eq!(pager.stats().permanent, 0);
}

#[test]
fn permissions_are_checked_again_at_page_in() {
    if !common::in_child() {
        return common::run_in_child_obeying_permissions(
            "permissions_are_checked_again_at_page_in",
        );
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let pager = Pager::new(1);
    let (file, _other) = paged_out(&pager, dir.path(), "a", b"secret");
    let path = dir.path().join("a");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();

    let error = file.read_at(&mut [0; 6], 0).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::PermissionDenied, "{error}");
    assert!(error.to_string().contains("checked again"), "{error}");
    assert_eq!(pager.stats().identity_failures, 0);

    // With the permission back, the same virtual file works again.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let mut buf = [0; 6];
    file.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"secret");
}

#[test]
fn pipes_sockets_and_memfds_are_never_paged_out() {
    // Alone in a child process, so that the descriptor census sees only this test.
    if !common::in_child() {
        return common::run_in_child("pipes_sockets_and_memfds_are_never_paged_out", 1024, 1024);
    }
    let census = Census::take();
    let dir = tempfile::tempdir().unwrap();
    let pager = Pager::new(4);

    let (reader, mut writer) = io::pipe().unwrap();
    let mut pipe = pager.adopt(reader.into()).unwrap();
    let (here, there) = std::os::unix::net::UnixStream::pair().unwrap();
    let socket = pager.adopt(here.into()).unwrap();
    // SAFETY: memfd_create returns a new fd that we own, or -1.
    let memfd = unsafe { libc::memfd_create(c"handoff-test".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(memfd >= 0, "{}", io::Error::last_os_error());
    // SAFETY: `memfd` is a new fd that nothing else owns.
    let memfd = pager.adopt(unsafe { OwnedFd::from_raw_fd(memfd) }).unwrap();
    memfd.write_all_at(b"anonymous", 0).unwrap();
    assert_eq!(pager.stats().permanent, 3);

    let files: Vec<_> = (0..20)
        .map(|i| {
            pager
                .open(dir.path().join(format!("f{i}")), &rw_create())
                .unwrap()
        })
        .collect();
    for (i, file) in files.iter().enumerate() {
        file.write_all_at(format!("{i}").as_bytes(), 0).unwrap();
        assert!(pipe.is_resident() && socket.is_resident() && memfd.is_resident());
        assert!(pager.resident() <= 4);
    }
    writer.write_all(b"through the pipe").unwrap();
    drop(writer);
    let mut text = String::new();
    pipe.read_to_string(&mut text).unwrap();
    assert_eq!(text, "through the pipe");
    (&socket).write_all(b"ping").unwrap();
    let mut ping = [0; 4];
    (&there).read_exact(&mut ping).unwrap();
    assert_eq!(&ping, b"ping");
    let mut anonymous = [0; 9];
    memfd.read_exact_at(&mut anonymous, 0).unwrap();
    assert_eq!(&anonymous, b"anonymous");
    assert!(pipe.seek(SeekFrom::Start(0)).is_err(), "a pipe cannot seek");

    drop((pipe, socket, memfd, files, there));
    assert_eq!(pager.resident(), 0);
    census.assert_back();
}

#[test]
fn a_budget_full_of_unpageable_files_is_an_error_not_a_hang() {
    let pager = Pager::new(1);
    let (reader, _writer) = io::pipe().unwrap();
    let _pipe = pager.adopt(reader.into()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let error = pager.open(dir.path().join("a"), &rw_create()).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::Deadlock, "{error}");
}

#[test]
fn adopted_regular_files_are_paged_like_opened_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("adopted");
    let mut std_file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    std_file.write_all(b"0123").unwrap(); // position 4 becomes the cursor
    let pager = Pager::new(1);
    let mut adopted = pager.adopt(std_file.into()).unwrap();
    let _other = pager.open(dir.path().join("other"), &rw_create()).unwrap();
    assert!(!adopted.is_resident());
    adopted.write_all(b"4567").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"01234567");
    assert_eq!(pager.stats().permanent, 0);
}

#[test]
fn create_truncate_and_create_new_apply_once() {
    let dir = tempfile::tempdir().unwrap();
    let pager = Pager::new(1);
    let path = dir.path().join("t");
    fs::write(&path, b"old contents").unwrap();
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(true);
    let truncated = pager.open(&path, &options).unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"", "truncated at the first open");
    truncated.write_all_at(b"new", 0).unwrap();

    let mut options = OpenOptions::new();
    options.read(true).write(true).create_new(true);
    let fresh = pager.open(dir.path().join("n"), &options).unwrap();
    fresh.write_all_at(b"fresh", 0).unwrap();

    // Page each out and in a few times: no truncation, no EEXIST.
    for _ in 0..3 {
        truncated.write_all_at(b"!", 3).unwrap();
        fresh.write_all_at(b"!", 5).unwrap();
    }
    assert_eq!(fs::read(&path).unwrap(), b"new!");
    assert_eq!(fs::read(dir.path().join("n")).unwrap(), b"fresh!");
    assert!(pager.stats().page_ins >= 5);
}

#[test]
fn append_keeps_appending_after_page_in() {
    let dir = tempfile::tempdir().unwrap();
    let pager = Pager::new(1);
    let path = dir.path().join("log");
    let mut options = OpenOptions::new();
    options.append(true).create(true);
    let mut log = pager.open(&path, &options).unwrap();
    log.write_all(b"one;").unwrap();
    let other = pager.open(dir.path().join("other"), &rw_create()).unwrap();
    // An empty write after a page-in moves nothing (found by the model test).
    assert_eq!(log.write(b"").unwrap(), 0);
    assert_eq!(log.stream_position().unwrap(), 4);
    other.write_all_at(b"page log out again", 0).unwrap();
    // Somebody else appends while it is paged out.
    fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"two;")
        .unwrap();
    log.write_all(b"three;").unwrap();
    log.write_all_at(b"four;", 0).unwrap(); // pwrite on O_APPEND appends on Linux
    assert_eq!(fs::read(&path).unwrap(), b"one;two;three;four;");
    assert_eq!(
        log.stream_position().unwrap(),
        14,
        "the cursor follows the append"
    );
}

#[test]
fn each_file_keeps_its_own_cursor_across_page_outs() {
    let dir = tempfile::tempdir().unwrap();
    let pager = Pager::new(1);
    let mut files: Vec<_> = (0..5)
        .map(|i| {
            pager
                .open(dir.path().join(format!("{i}")), &rw_create())
                .unwrap()
        })
        .collect();
    for round in 0..4 {
        for (i, file) in files.iter_mut().enumerate() {
            write!(file, "{i}:{round};").unwrap(); // every write pages in, the next pages out
        }
    }
    for (i, file) in files.iter_mut().enumerate() {
        assert_eq!(file.stream_position().unwrap(), 16);
        file.seek(SeekFrom::Current(-4)).unwrap();
        let mut last = String::new();
        file.read_to_string(&mut last).unwrap();
        assert_eq!(last, format!("{i}:3;"));
    }
    assert!(pager.stats().evictions >= 19);
}

#[test]
fn paths_are_absolute_so_chdir_does_not_matter() {
    if !common::in_child() {
        return common::run_in_child("paths_are_absolute_so_chdir_does_not_matter", 1024, 1024);
    }
    let dir = tempfile::tempdir().unwrap();
    std::env::set_current_dir(dir.path()).unwrap();
    let pager = Pager::new(1);
    let file = pager.open("relative", &rw_create()).unwrap();
    let _other = pager.open("other", &rw_create()).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::env::set_current_dir(elsewhere.path()).unwrap();
    file.write_all_at(b"still here", 0).unwrap();
    assert_eq!(
        fs::read(dir.path().join("relative")).unwrap(),
        b"still here"
    );
    assert!(!elsewhere.path().join("relative").exists());
}

/// Other code holds descriptors too: when an open fails with EMFILE, the pager closes one of
/// its own and tries again; with nothing to close, the error comes back as it is.
#[test]
fn emfile_from_elsewhere_evicts_and_retries() {
    if !common::in_child() {
        return common::run_in_child("emfile_from_elsewhere_evicts_and_retries", 48, 48);
    }
    let dir = tempfile::tempdir().unwrap();
    let pager = Pager::new(1000); // a budget far above what the process may hold
    let files: Vec<_> = (0..10)
        .map(|i| {
            pager
                .open(dir.path().join(format!("{i}")), &rw_create())
                .unwrap()
        })
        .collect();
    // "Other code" takes every descriptor left.
    let mut hog = Vec::new();
    while let Ok(file) = fs::File::open(dir.path().join("0")) {
        hog.push(file);
    }
    let newcomer = pager.open(dir.path().join("new"), &rw_create()).unwrap();
    newcomer.write_all_at(b"made room", 0).unwrap();
    assert!(pager.stats().emfile_retries >= 1);
    for (i, file) in files.iter().enumerate() {
        file.write_all_at(format!("{i}").as_bytes(), 0).unwrap(); // all reachable still
    }

    // Nothing evictable (the pager's only descriptor is pinned): EMFILE comes back, cleanly.
    drop(files);
    let error = newcomer
        .with_fd(|_| {
            while let Ok(file) = fs::File::open(dir.path().join("0")) {
                hog.push(file);
            }
            assert_eq!(pager.resident(), 1);
            pager.open(dir.path().join("no room"), &rw_create())
        })
        .unwrap()
        .unwrap_err();
    assert!(handoff::limits::is_out_of_descriptors(&error), "{error:?}");
    assert_eq!(pager.resident(), 1, "the failed open gave its budget back");
    drop(hog);
    assert!(pager
        .open(dir.path().join("room again"), &rw_create())
        .is_ok());
}

#[test]
fn with_fd_hands_c_the_cursor_and_takes_it_back() {
    use std::os::fd::AsRawFd;
    let dir = tempfile::tempdir().unwrap();
    let pager = Pager::new(1);
    let mut file = pager.open(dir.path().join("shared"), &rw_create()).unwrap();
    file.write_all(b"rust;").unwrap();
    let _other = pager.open(dir.path().join("other"), &rw_create()).unwrap(); // pages it out
    for _ in 0..2 {
        // SAFETY: the fd is pinned open during the call; write does not keep it.
        let n = file
            .with_crt_fd(|fd| unsafe { libc::write(fd, b"c;".as_ptr().cast(), 2) })
            .unwrap();
        assert_eq!(n, 2);
        file.write_all(b"rust;").unwrap();
    }
    assert_eq!(
        fs::read(dir.path().join("shared")).unwrap(),
        b"rust;c;rust;c;rust;"
    );
    file.seek(SeekFrom::Start(5)).unwrap();
    let mut two = [0u8; 2];
    // SAFETY: as above; read fills at most 2 bytes of `two`.
    let n = file
        .with_fd(|fd| unsafe { libc::read(fd.as_raw_fd(), two.as_mut_ptr().cast(), 2) })
        .unwrap();
    assert_eq!((n, &two), (2, b"c;"));
    assert_eq!(file.stream_position().unwrap(), 7);
}
