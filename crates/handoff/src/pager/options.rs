//! [`OpenOptions`]: how a virtual file is opened the first time, and reopened after.

use std::fs;

/// Options for [`Pager::open`](super::Pager::open), with the methods of
/// [`std::fs::OpenOptions`].
///
/// `create`, `create_new` and `truncate` apply **once**, at the first open: paging a file out
/// and in never recreates or truncates it. `read`, `write` and `append` apply to every reopen.
///
/// ```
/// use handoff::pager::{OpenOptions, Pager};
///
/// let dir = tempfile::tempdir()?;
/// let pager = Pager::new(4);
/// let file = pager.open(dir.path().join("log"), OpenOptions::new().append(true).create(true))?;
/// file.write_all_at(b"ignored offset: appends", 0)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    pub(super) read: bool,
    pub(super) write: bool,
    pub(super) append: bool,
    pub(super) truncate: bool,
    pub(super) create: bool,
    pub(super) create_new: bool,
    #[cfg(unix)]
    pub(super) mode: Option<u32>,
}

impl OpenOptions {
    /// All options off, like [`std::fs::OpenOptions::new`].
    ///
    /// ```
    /// let options = handoff::pager::OpenOptions::new();
    /// # let _ = options;
    /// ```
    pub fn new() -> OpenOptions {
        OpenOptions::default()
    }

    /// Open for reading.
    ///
    /// ```
    /// let mut options = handoff::pager::OpenOptions::new();
    /// options.read(true);
    /// ```
    pub fn read(&mut self, read: bool) -> &mut OpenOptions {
        self.read = read;
        self
    }

    /// Open for writing.
    ///
    /// ```
    /// let mut options = handoff::pager::OpenOptions::new();
    /// options.write(true);
    /// ```
    pub fn write(&mut self, write: bool) -> &mut OpenOptions {
        self.write = write;
        self
    }

    /// Every write goes to the end of the file (`O_APPEND`), after every reopen too.
    ///
    /// ```
    /// let mut options = handoff::pager::OpenOptions::new();
    /// options.append(true);
    /// ```
    pub fn append(&mut self, append: bool) -> &mut OpenOptions {
        self.append = append;
        self
    }

    /// Truncate to length 0 at the first open only.
    ///
    /// ```
    /// let mut options = handoff::pager::OpenOptions::new();
    /// options.write(true).truncate(true);
    /// ```
    pub fn truncate(&mut self, truncate: bool) -> &mut OpenOptions {
        self.truncate = truncate;
        self
    }

    /// Create the file if it does not exist, at the first open only.
    ///
    /// ```
    /// let mut options = handoff::pager::OpenOptions::new();
    /// options.write(true).create(true);
    /// ```
    pub fn create(&mut self, create: bool) -> &mut OpenOptions {
        self.create = create;
        self
    }

    /// Create the file, failing if it exists, at the first open only.
    ///
    /// ```
    /// let mut options = handoff::pager::OpenOptions::new();
    /// options.write(true).create_new(true);
    /// ```
    pub fn create_new(&mut self, create_new: bool) -> &mut OpenOptions {
        self.create_new = create_new;
        self
    }

    /// Permission bits for a file the first open creates (default `0o666`, less the umask).
    ///
    /// ```
    /// let mut options = handoff::pager::OpenOptions::new();
    /// options.write(true).create(true).mode(0o600);
    /// ```
    #[cfg(unix)]
    pub fn mode(&mut self, mode: u32) -> &mut OpenOptions {
        self.mode = Some(mode);
        self
    }

    /// The std options of the first open: everything.
    pub(super) fn first_open(&self) -> fs::OpenOptions {
        let mut options = self.reopen();
        options
            .truncate(self.truncate)
            .create(self.create)
            .create_new(self.create_new);
        #[cfg(unix)]
        if let Some(mode) = self.mode {
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
        }
        options
    }

    /// The std options of a reopen: the access only, never create or truncate.
    pub(super) fn reopen(&self) -> fs::OpenOptions {
        let mut options = fs::OpenOptions::new();
        options
            .read(self.read)
            .write(self.write)
            .append(self.append);
        <super::sys::Backing as super::backing::Backing>::open_flags(&mut options);
        options
    }
}
