//! The name and version of the operating system, as a person would say
//! them: "macOS" "15.1", "iOS" "18.2", "Windows" "10.0.22631", "Linux"
//! "12" (the distribution's VERSION_ID; the kernel release where there is
//! none).

/// The OS name for the session registration.
pub fn os_name() -> &'static str {
    match std::env::consts::OS {
        "ios" => "iOS",
        "tvos" => "tvOS",
        "watchos" => "watchOS",
        "visionos" => "visionOS",
        "android" => "Android",
        "macos" => "macOS",
        "windows" => "Windows",
        "linux" => "Linux",
        other => other,
    }
}

/// The OS version; "unknown" where it cannot be read.
pub fn os_version() -> String {
    version().unwrap_or_else(|| String::from("unknown"))
}

/// On Apple systems the product version (the Darwin kernel's own is not
/// what users know).
#[cfg(target_vendor = "apple")]
fn version() -> Option<String> {
    let mut buf = [0u8; 64];
    let mut len = buf.len();
    // SAFETY: a NUL-terminated name, a buffer and its length, which the call
    // sets to the bytes it wrote (including the NUL).
    let status = unsafe {
        libc::sysctlbyname(
            c"kern.osproductversion".as_ptr(),
            buf.as_mut_ptr().cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if status != 0 {
        return None;
    }
    let s = std::ffi::CStr::from_bytes_until_nul(buf.get(..len)?).ok()?;
    Some(s.to_string_lossy().into_owned()).filter(|v| !v.is_empty())
}

/// On Windows the real version (GetVersionEx lies to programs without a
/// manifest saying which versions they know).
#[cfg(windows)]
fn version() -> Option<String> {
    use windows_sys::Wdk::System::SystemServices::RtlGetVersion;
    use windows_sys::Win32::System::SystemInformation::OSVERSIONINFOW;
    let mut info = OSVERSIONINFOW {
        dwOSVersionInfoSize: std::mem::size_of::<OSVERSIONINFOW>() as u32,
        ..OSVERSIONINFOW::default()
    };
    // SAFETY: a local struct whose size field is set, as the call requires.
    let status = unsafe { RtlGetVersion(&mut info) };
    (status == 0).then(|| {
        format!(
            "{}.{}.{}",
            info.dwMajorVersion, info.dwMinorVersion, info.dwBuildNumber
        )
    })
}

/// On Linux the distribution's version, else the kernel's.
#[cfg(target_os = "linux")]
fn version() -> Option<String> {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| version_id(&text))
        .or_else(kernel_release)
}

#[cfg(all(unix, not(any(target_vendor = "apple", target_os = "linux"))))]
fn version() -> Option<String> {
    kernel_release()
}

#[cfg(not(any(unix, windows)))]
fn version() -> Option<String> {
    None
}

/// `VERSION_ID` of an os-release file, unquoted.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn version_id(os_release: &str) -> Option<String> {
    os_release
        .lines()
        .find_map(|l| l.trim().strip_prefix("VERSION_ID="))
        .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(all(unix, not(target_vendor = "apple")))]
fn kernel_release() -> Option<String> {
    // SAFETY: uname fills a zeroed struct of fixed-size NUL-terminated arrays.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        (libc::uname(&mut u) == 0).then(|| {
            std::ffi::CStr::from_ptr(u.release.as_ptr())
                .to_string_lossy()
                .into_owned()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_id_is_read_quoted_or_not() {
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\n";
        assert_eq!(version_id(debian).as_deref(), Some("12"));
        assert_eq!(
            version_id("ID=alpine\nVERSION_ID=3.20.3\n").as_deref(),
            Some("3.20.3")
        );
        assert_eq!(version_id("ID=arch\n"), None); // rolling: the kernel's then
        assert_eq!(version_id("VERSION_ID=\"\"\n"), None);
    }

    #[test]
    fn this_systems_version_is_known() {
        let v = os_version();
        assert_ne!(v, "unknown");
        assert!(v.chars().next().is_some_and(|c| c.is_ascii_digit()), "{v}");
    }
}
