//! Keeping libtrodo's code loaded while its threads run.

/// On Windows, pins the DLL: a `FreeLibrary` by the host would otherwise
/// unmap code that the delivery threads are still running. Elsewhere
/// nothing: glibc keeps a library loaded while threads it started hold
/// thread-local destructors of it (`c_unload` checks both); Apple's dyld is
/// not checked here.
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
