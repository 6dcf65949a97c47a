//! Where libtrodo keeps its files when `storage_dir` is not given, and how
//! that directory is kept out of backups.

use std::path::{Path, PathBuf};

/// The per-user directory for application data, under which libtrodo makes
/// `trodo/<site id>`; `None` when the environment does not say.
///
/// - Apple (macOS, and iOS/tvOS/watchOS/visionOS, where `HOME` is the app's
///   container): `$HOME/Library/Application Support`.
/// - Windows: `%APPDATA%` (the roaming profile; private to the user).
/// - Elsewhere: `$XDG_DATA_HOME`, else `$HOME/.local/share`.
pub fn user_data_dir() -> Option<PathBuf> {
    if cfg!(target_vendor = "apple") {
        env_dir("HOME").map(|h| application_support(&h))
    } else if cfg!(windows) {
        env_dir("APPDATA")
    } else {
        env_dir("XDG_DATA_HOME").or_else(|| env_dir("HOME").map(|h| h.join(".local").join("share")))
    }
}

/// The data directory inside an app container (an App Group's, say), as
/// Apple lays one out.
pub fn application_support(container: &Path) -> PathBuf {
    container.join("Library").join("Application Support")
}

fn env_dir(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Marks `dir` as not to be backed up (iCloud and computer backups of an
/// iOS, tvOS, watchOS or visionOS device): a queue of unsent events and a
/// device's anonymous id belong to that device. Best effort, like the
/// system's own "caches"; elsewhere nothing.
pub fn exclude_from_backup(dir: &Path) {
    #[cfg(all(target_vendor = "apple", not(target_os = "macos")))]
    apple::exclude_from_backup(dir);
    #[cfg(not(all(target_vendor = "apple", not(target_os = "macos"))))]
    let _ = dir;
}

#[cfg(all(target_vendor = "apple", not(target_os = "macos")))]
mod apple {
    use std::ffi::c_void;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    type CFTypeRef = *const c_void;

    // The few CoreFoundation calls that set NSURLIsExcludedFromBackupKey;
    // declared here rather than pulling a framework-bindings crate for them.
    #[link(name = "CoreFoundation", kind = "framework")]
    extern "C" {
        static kCFURLIsExcludedFromBackupKey: CFTypeRef;
        static kCFBooleanTrue: CFTypeRef;
        fn CFURLCreateFromFileSystemRepresentation(
            allocator: CFTypeRef,
            buffer: *const u8,
            len: isize,
            is_directory: u8,
        ) -> CFTypeRef;
        fn CFURLSetResourcePropertyForKey(
            url: CFTypeRef,
            key: CFTypeRef,
            value: CFTypeRef,
            error: *mut CFTypeRef,
        ) -> u8;
        fn CFRelease(cf: CFTypeRef);
    }

    pub(super) fn exclude_from_backup(dir: &Path) {
        let bytes = dir.as_os_str().as_bytes();
        let Ok(len) = isize::try_from(bytes.len()) else {
            return;
        };
        // SAFETY: the path bytes are read during the call only; the URL it
        // returns is ours to release, and is released once, after use. A
        // NULL allocator is the default one; a NULL error pointer asks for
        // no error object. The two statics are immutable CF constants.
        unsafe {
            let url =
                CFURLCreateFromFileSystemRepresentation(std::ptr::null(), bytes.as_ptr(), len, 1);
            if url.is_null() {
                return;
            }
            CFURLSetResourcePropertyForKey(
                url,
                kCFURLIsExcludedFromBackupKey,
                kCFBooleanTrue,
                std::ptr::null_mut(),
            );
            CFRelease(url);
        }
    }
}
