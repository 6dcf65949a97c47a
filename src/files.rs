//! How libtrodo opens its own files: private to the user (identity and e-mail
//! addresses live there), never through a symbolic link (a link planted in
//! the storage directory must not make libtrodo write elsewhere), and closed
//! on `exec` (std's default), so a program it starts inherits none of them.

use std::fs::OpenOptions;
use std::io;
use std::path::Path;

/// Options for opening a file in the storage directory: created 0600, and
/// refused (`ELOOP`) when the name is a symbolic link.
pub fn options() -> OpenOptions {
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    o
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
