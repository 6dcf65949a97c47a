//! Keeping libtrodo's code loaded while its threads run.

/// On Windows, pins the DLL: a `FreeLibrary` by the host would otherwise
/// unmap code that the delivery threads are still running. Elsewhere
/// nothing: `dlclose` of a library with thread-local destructors or atexit
/// handlers is already refused by glibc and by Apple's dyld.
pub fn pin_library() {
    #[cfg(windows)]
    {
        use windows_sys::Win32::System::LibraryLoader::{
            GetModuleHandleExW, GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS,
            GET_MODULE_HANDLE_EX_FLAG_PIN,
        };
        static IN_THIS_MODULE: u8 = 0;
        let mut module = std::ptr::null_mut();
        // SAFETY: the address of a static of this module identifies it;
        // `module` is a local the call fills. With FLAG_PIN the module stays
        // loaded until the process ends; for a static build (the .exe
        // itself) that is a no-op.
        unsafe {
            GetModuleHandleExW(
                GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_PIN,
                (&raw const IN_THIS_MODULE).cast(),
                &mut module,
            );
        }
    }
}
