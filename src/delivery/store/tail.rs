//! The writer's hold on the queue file: where the records end, the window
//! mapped after them, and appends where no window can be mapped.

use std::fs::File;
use std::io;
use std::path::Path;

use super::FileState;
use crate::delivery::window::Window;
use crate::sync::MutexGuard;

/// The queue file, held by the writer: its tail is mapped, and written to
/// where it cannot be.
pub struct Tail<'a> {
    st: MutexGuard<'a, FileState>,
    path: &'a Path,
}

impl<'a> Tail<'a> {
    pub(super) fn new(st: MutexGuard<'a, FileState>, path: &'a Path) -> Tail<'a> {
        Tail { st, path }
    }

    /// Whether the file is still open (not closed at shutdown).
    pub fn is_open(&self) -> bool {
        self.st.file.is_some()
    }

    /// Where the records end while no window is mapped.
    pub fn end(&self) -> u64 {
        self.st.end
    }

    /// Allocates and maps the window from `end`, with room for `min` bytes.
    pub fn map_window(&mut self, end: u64, min: usize) -> io::Result<Window> {
        match self.st.file.as_ref() {
            Some(f) => Window::map(f, end, min),
            None => Err(io::Error::new(io::ErrorKind::NotConnected, "closed")),
        }
    }

    /// Writes `records` at the end, where no window can be mapped (a file
    /// system without mappings). A write that fails part-way is cut back,
    /// so no torn record hides the ones written after it.
    pub fn append(&mut self, records: &[u8]) -> io::Result<()> {
        let st = &mut *self.st;
        let file = st
            .file
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "closed"))?;
        super::write_records_at(file, st.end, records, false)?;
        st.end += records.len() as u64;
        Ok(())
    }

    /// A handle of the file's own to make what was written or mapped
    /// durable against power loss with (the window's pages are pushed by
    /// its owner first), once the file is let go; None when closed. Should
    /// a compaction replace the file meanwhile, it has synced the new one.
    pub fn sync_handle(&self) -> io::Result<Option<File>> {
        self.st.file.as_ref().map(File::try_clone).transpose()
    }

    pub fn path(&self) -> &Path {
        self.path
    }
}
