//! include/trodo.h must be exactly what cbindgen generates from the sources.
//! Regenerate with `TRODO_BLESS=1 cargo test --test header`.

use std::path::Path;

fn version_macros(version: &str) -> String {
    let mut parts = version.split(['.', '-', '+']);
    let mut next = || parts.next().unwrap_or("0").to_string();
    let (major, minor, patch) = (next(), next(), next());
    format!(
        "\n/* The version of this header; trodo_version() is the library's. */\n\
         #define TRODO_VERSION_MAJOR {major}\n\
         #define TRODO_VERSION_MINOR {minor}\n\
         #define TRODO_VERSION_PATCH {patch}\n\
         #define TRODO_VERSION \"{version}\"\n"
    )
}

#[test]
fn committed_header_matches_a_fresh_cbindgen_run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config =
        cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    // The crate version, as macros a C program can test at compile time.
    config.after_includes = Some(version_macros(env!("CARGO_PKG_VERSION")));
    let mut fresh = Vec::new();
    cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate the header")
        .write(&mut fresh);
    let path = root.join("include").join("trodo.h");
    if std::env::var_os("TRODO_BLESS").is_some() {
        std::fs::write(&path, &fresh).expect("write include/trodo.h");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "include/trodo.h is stale: run `TRODO_BLESS=1 cargo test --test header` and commit it"
    );
}

#[test]
fn the_header_version_macros_equal_the_crate_version() {
    let header = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("include")
            .join("trodo.h"),
    )
    .unwrap();
    let define = |name: &str| {
        header
            .lines()
            .find_map(|l| l.strip_prefix(&format!("#define {name} ")))
            .unwrap_or_else(|| panic!("{name} is not defined in include/trodo.h"))
            .to_string()
    };
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(define("TRODO_VERSION"), format!("\"{version}\""));
    let numbers = format!(
        "{}.{}.{}",
        define("TRODO_VERSION_MAJOR"),
        define("TRODO_VERSION_MINOR"),
        define("TRODO_VERSION_PATCH")
    );
    assert_eq!(numbers, version);
    // And the library says the same at run time.
    let runtime = unsafe { std::ffi::CStr::from_ptr(trodo::ffi::trodo_version()) };
    assert_eq!(runtime.to_str().unwrap(), version);
}
