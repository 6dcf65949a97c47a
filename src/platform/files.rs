//! How libtrodo opens its own files: private to the user (identity and e-mail
//! addresses live there), never through a symbolic link (a link planted in
//! the storage directory must not make libtrodo write elsewhere), and closed
//! on `exec` (std's default), so a program it starts inherits none of them.
//!
//! On Windows "private" is the directory's inherited ACL: the default
//! storage directory is under the user's profile (`%APPDATA%`), which only
//! the user, SYSTEM and Administrators may open; a `storage_dir` elsewhere
//! gets its parent's ACL. Reparse points (symbolic links, junctions) are
//! opened as themselves, never followed, and refused.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

/// Options for opening a file in the storage directory: created 0600, and
/// refused when the name is a symbolic link (`ELOOP` on Unix; on Windows a
/// reparse point is opened as itself, then refused).
pub fn options() -> PrivateOpen {
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::OpenOptionsExt;
        use windows_sys::Win32::Storage::FileSystem::FILE_FLAG_OPEN_REPARSE_POINT;
        o.custom_flags(FILE_FLAG_OPEN_REPARSE_POINT);
    }
    PrivateOpen(o)
}

/// [`OpenOptions`] that never follow a link (see [`options`]).
pub struct PrivateOpen(OpenOptions);

impl PrivateOpen {
    pub fn read(&mut self, on: bool) -> &mut Self {
        self.0.read(on);
        self
    }

    pub fn write(&mut self, on: bool) -> &mut Self {
        self.0.write(on);
        self
    }

    pub fn create(&mut self, on: bool) -> &mut Self {
        self.0.create(on);
        self
    }

    pub fn truncate(&mut self, on: bool) -> &mut Self {
        self.0.truncate(on);
        self
    }

    pub fn create_new(&mut self, on: bool) -> &mut Self {
        self.0.create_new(on);
        self
    }

    pub fn open(&self, path: impl AsRef<Path>) -> io::Result<File> {
        let file = self.0.open(path)?;
        #[cfg(windows)]
        {
            use std::os::windows::fs::MetadataExt;
            use windows_sys::Win32::Storage::FileSystem::FILE_ATTRIBUTE_REPARSE_POINT;
            if file.metadata()?.file_attributes() & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a reparse point (a symbolic link or junction), which libtrodo does not follow",
                ));
            }
        }
        Ok(file)
    }
}

/// Creates `dir` and any missing parents, each 0700.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Gives `file` really allocated space (not a sparse hole) for the `len`
/// bytes from `offset`, so that writes through a mapping of them cannot fail
/// for want of disk space (which would raise `SIGBUS`).
pub fn allocate(file: &File, offset: u64, len: u64) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::io::AsRawFd;
        let at = libc::off_t::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        let len = libc::off_t::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: a descriptor this File owns and plain integers; the call
        // returns an error number and touches no memory of ours.
        let err = unsafe { libc::posix_fallocate(file.as_raw_fd(), at, len) };
        if err == 0 {
            return Ok(());
        }
        if err != libc::EOPNOTSUPP && err != libc::EINVAL {
            return Err(io::Error::from_raw_os_error(err));
        }
    }
    // Elsewhere (or where the file system cannot), zeros written for real
    // past the file's end: allocated blocks, which is all a mapping needs.
    let end = offset.saturating_add(len);
    let have = file.metadata()?.len();
    if have < end {
        let mut f = file;
        f.seek(SeekFrom::Start(have))?;
        let zeros = vec![0u8; 64 * 1024];
        let mut left = end - have;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            f.write_all(&zeros[..n])?;
            left -= n as u64;
        }
    }
    file.sync_data()
}

/// A shared writable mapping of part of a file: stores into it are in the
/// page cache at once, and so survive the process.
pub struct Mapped(Arc<memmap2::MmapRaw>);

/// What may be done to a [`Mapped`] from another thread: push its pages to
/// the disk. It never reads or writes the mapped memory.
#[derive(Clone)]
pub struct Flusher(Arc<memmap2::MmapRaw>);

impl Mapped {
    /// Maps `len` bytes of `file` from `offset`, which must be allocated
    /// ([`allocate`]), its pages faulted in ahead on this thread: on Linux
    /// writable (`MADV_POPULATE_WRITE`, 5.14 on), so that the threads that
    /// store into it later take no page fault at all; elsewhere read in.
    pub fn new(file: &File, offset: u64, len: usize) -> io::Result<Mapped> {
        // The mapping is made by memmap2's safe call; what needs care is the
        // access to its memory, below.
        let mut options = memmap2::MmapOptions::new();
        options.offset(offset).len(len);
        if cfg!(not(target_os = "linux")) {
            options.populate();
        }
        let map = options.map_raw(file)?;
        #[cfg(target_os = "linux")]
        {
            // The kernel faults each page in as if written, without storing
            // anything (so it races with no store through another mapping).
            // An older kernel refuses the advice: its stores fault instead.
            if map.advise(memmap2::Advice::PopulateWrite).is_err() {
                let _ = map.advise(memmap2::Advice::WillNeed);
            }
        }
        Ok(Mapped(Arc::new(map)))
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `len` bytes and lives as long as the Arc we
        // hold. Only a `Mapped` gives access to the memory, and only through
        // `&self`/`&mut self`, so the borrow checker rules out a concurrent
        // store (a `Flusher` makes system calls on the range, never
        // accesses it). Another process could change the file under the
        // mapping; the file is one of our segment's, private to the user
        // (0600), and only the process holding the segment's lock opens it
        // while mapped; its space is allocated before it is mapped and it is
        // never cut below a live mapping, so no access faults.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr(), self.0.len()) }
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`; `&mut self` makes this the only live
        // borrow of the memory.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr(), self.0.len()) }
    }

    pub fn flusher(&self) -> Flusher {
        Flusher(self.0.clone())
    }
}

impl Flusher {
    /// Writes the mapped pages of `len` bytes from `offset` to the disk,
    /// with `wait` until they are there (`msync`; on Windows
    /// `FlushViewOfFile`, and `FlushFileBuffers` to wait).
    pub fn flush(&self, offset: usize, len: usize, wait: bool) -> io::Result<()> {
        let len = len.min(self.0.len().saturating_sub(offset));
        match (len, wait) {
            (0, _) => Ok(()),
            (_, true) => self.0.flush_range(offset, len),
            (_, false) => self.0.flush_async_range(offset, len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link planted where libtrodo keeps a file is refused, and what it
    /// points to is left alone (Unix: `O_NOFOLLOW`; Windows: the reparse
    /// point is opened as itself and refused).
    #[test]
    #[cfg_attr(
        windows,
        ignore = "wine refuses to open a symbolic link for writing with or without the check, so it \
                  cannot show it; on Windows this is untested"
    )]
    fn a_symbolic_link_in_the_storage_directory_is_refused() {
        let dir = std::env::temp_dir().join(format!("trodo-files-{}", crate::util::new_id()));
        create_dir(&dir).unwrap();
        let target = dir.join("elsewhere");
        std::fs::write(&target, b"not libtrodo's").unwrap();
        let link = dir.join("state.json");
        #[cfg(unix)]
        std::os::unix::fs::symlink(&target, &link).unwrap();
        #[cfg(windows)]
        std::os::windows::fs::symlink_file(&target, &link).unwrap();
        let opened = options().write(true).truncate(true).open(&link);
        assert!(opened.is_err(), "the link was followed");
        assert_eq!(std::fs::read(&target).unwrap(), b"not libtrodo's");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
