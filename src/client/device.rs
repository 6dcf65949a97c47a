//! What the session registration says about the device: its type, OS and
//! OS version.

pub(super) struct DeviceInfo {
    pub(super) device_type: &'static str,
    pub(super) os_name: &'static str,
    pub(super) os_version: String,
}

impl DeviceInfo {
    pub(super) fn detect() -> DeviceInfo {
        let device_type = match std::env::consts::OS {
            "ios" | "android" | "watchos" => "mobile",
            "tvos" => "tv",
            _ => "desktop",
        };
        DeviceInfo {
            device_type,
            os_name: crate::platform::os_version::os_name(),
            os_version: crate::platform::os_version::os_version(),
        }
    }
}
