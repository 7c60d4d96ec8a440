//! The census the other tests trust ("every handle opened since is closed") must be able to
//! fail: it sees 50 files opened, and sees them closed again. (Under Wine,
//! `GetProcessHandleCount` answers 0 whatever is open; a census built on it passed everything.)

mod common;

use common::{serial, Census};

#[test]
fn the_census_sees_fifty_files_come_and_go() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let before = Census::take();
    let files: Vec<_> = (0..50)
        .map(|i| std::fs::File::create(dir.path().join(i.to_string())).unwrap())
        .collect();
    let open = Census::take().len();
    eprintln!(
        "census: {} open before, {open} with 50 files open",
        before.len()
    );
    assert_eq!(open, before.len() + 50, "the census counts each file");
    let changes = before.changes();
    eprintln!("census: {changes:?}");
    assert!(changes.is_some(), "the census sees the files open");

    drop(files);
    eprintln!("census: {} open after closing them", Census::take().len());
    before.assert_back();
}

/// One file closed and another opened in its place leave the count alone; the census still
/// tells them apart when the new one gets another number.
#[test]
fn the_census_tells_a_swap_from_no_change() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let first = std::fs::File::create(dir.path().join("first")).unwrap();
    let before = Census::take();
    let blocker = std::fs::File::create(dir.path().join("blocker")).unwrap(); // takes the lowest free number
    drop(first);
    let changes = before.changes();
    assert!(
        changes.is_some(),
        "a closed file and an opened one are both seen"
    );
    drop(blocker);
}
