//! What the session registration says about the device: its type, OS and
//! OS version.

pub(super) struct DeviceInfo {
    pub(super) device_type: &'static str,
    pub(super) os_name: &'static str,
    pub(super) os_version: String,
}

impl DeviceInfo {
    pub(super) fn detect() -> DeviceInfo {
        let (device_type, os_name) = match std::env::consts::OS {
            "ios" => ("mobile", "iOS"),
            "android" => ("mobile", "Android"),
            "macos" => ("desktop", "macOS"),
            "windows" => ("desktop", "Windows"),
            "linux" => ("desktop", "Linux"),
            other => ("desktop", other),
        };
        DeviceInfo {
            device_type,
            os_name,
            os_version: os_release(),
        }
    }
}

#[cfg(unix)]
fn os_release() -> String {
    // SAFETY: uname fills a zeroed struct of fixed-size NUL-terminated arrays.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) == 0 {
            return std::ffi::CStr::from_ptr(u.release.as_ptr())
                .to_string_lossy()
                .into_owned();
        }
    }
    String::from("unknown")
}

#[cfg(not(unix))]
fn os_release() -> String {
    String::from("unknown")
}
