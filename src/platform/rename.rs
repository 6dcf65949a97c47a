//! Replacing a file by renaming a new one over it, durably.

use std::fs;
use std::io;
use std::path::Path;

/// Renames `from` over `to`, replacing it.
///
/// On Windows std renames with POSIX semantics where the file system has
/// them (NTFS on Windows 10 1607 and later), and then an open `to` is
/// replaced as on Unix. Where it has not (FAT, older systems, wine), a `to`
/// that another handle has open cannot be replaced (os error 5 or 32): that
/// is retried for up to half a second, since another process reading
/// `state.json` holds it only for a moment. Callers close their own handles
/// on `to` first.
pub fn replace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(windows)]
    {
        use std::time::{Duration, Instant};
        const PATIENCE: Duration = Duration::from_millis(500);
        let give_up = Instant::now() + PATIENCE;
        let mut pause = Duration::from_millis(1);
        loop {
            match fs::rename(from, to) {
                // ERROR_ACCESS_DENIED, ERROR_SHARING_VIOLATION
                Err(e) if matches!(e.raw_os_error(), Some(5 | 32)) && Instant::now() < give_up => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }
    #[cfg(not(windows))]
    fs::rename(from, to)
}

/// Makes the renames and creations in `dir` durable. On Unix that takes a
/// sync of the directory itself; NTFS journals them with the file (and a
/// directory cannot be opened as a plain file there).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
