//! Memory per paged-out virtual file: opens 1,000,000 virtual files (of one real file, so that
//! the measure is the pager's own) under a budget of 64, and reports the growth of the
//! process's resident memory per file.
//!
//! ```text
//! cargo run --release -p handoff --example pager_memory [FILES]
//! ```

#[cfg(unix)]
fn main() -> std::io::Result<()> {
    use handoff::pager::{OpenOptions, Pager};

    fn resident_bytes() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    }

    let files: usize = std::env::args()
        .nth(1)
        .map_or(1_000_000, |n| n.parse().expect("a number of files"));
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("one-file-opened-many-times");
    std::fs::write(&path, b"x")?;
    let path_bytes = std::path::absolute(&path)?.as_os_str().len();

    let pager = Pager::new(64);
    let mut options = OpenOptions::new();
    options.read(true);
    let mut open = Vec::with_capacity(files); // allocated up front: not part of the growth
    let before = resident_bytes();
    for _ in 0..files {
        open.push(pager.open(&path, &options)?);
    }
    let after = resident_bytes();
    // The growth includes the caller's handles (the Vec's pages are touched as it fills).
    let handle = std::mem::size_of::<handoff::pager::VirtualFile>() as f64;
    let per_file = (after - before) as f64 / files as f64 - handle;
    println!(
        "{files} virtual files, {} resident: {per_file:.1} bytes each in the pager \
         = {:.1} + the path's {path_bytes} bytes; plus {handle} bytes for each VirtualFile \
         handle the caller holds",
        pager.resident(),
        per_file - path_bytes as f64,
    );
    Ok(())
}

#[cfg(not(unix))]
fn main() {
    eprintln!("the pager's Unix backing only, for now");
}
