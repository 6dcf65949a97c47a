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

/// cbindgen writes `//` comments on the lines that close its C++ guards,
/// which are not comments in C89: the same comments in `/* */`.
fn c89_comments(header: &str) -> String {
    header
        .lines()
        .map(|line| match line.split_once("//") {
            Some((code, comment)) if code.trim_start().starts_with(['#', '}']) => {
                format!("{code}/* {} */", comment.trim())
            }
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[cfg_attr(
    windows,
    ignore = "runs cargo metadata and the host's C compilers, which wine has not; the Linux run checks the header"
)]
#[test]
fn committed_header_matches_a_fresh_cbindgen_run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config =
        cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    // The crate version, as macros a C program can test at compile time.
    let macros = config.after_includes.take().unwrap_or_default();
    config.after_includes = Some(version_macros(env!("CARGO_PKG_VERSION")) + &macros);
    let mut fresh = Vec::new();
    cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate the header")
        .write(&mut fresh);
    let fresh = c89_comments(&String::from_utf8(fresh).expect("UTF-8"));
    let path = root.join("include").join("trodo.h");
    if std::env::var_os("TRODO_BLESS").is_some() {
        std::fs::write(&path, &fresh).expect("write include/trodo.h");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
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

/// A program that uses the header the way a C89 compiler can read, and
/// checks that TrodoStatus is int32_t itself (not an enum of the
/// compiler's chosen size).
const USES_THE_HEADER: &str = r#"#include "trodo.h"
static int use(void) {
    bool opted_out = false;
    int32_t *same_type = (TrodoStatus *)0;
    TrodoStatus s = trodo_get_opt_out(&opted_out);
    char *groups = trodo_get_groups();
    trodo_string_free(groups);
    (void)same_type;
    return s == TRODO_OK && !opted_out;
}
int main(void) { return use(); }
"#;

/// Compiles `source` (as C or C++ by `ext`) with every warning an error;
/// the compiler's messages when it fails.
fn syntax_check(compiler: &str, flags: &[&str], source: &str, ext: &str) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("trodo-header-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!(
        "{}-{}.{ext}",
        compiler,
        flags.join("").replace(['-', '='], "")
    ));
    std::fs::write(&file, source).unwrap();
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    let out = std::process::Command::new(compiler)
        .args(flags)
        // Compiled, not only parsed: gcc warns of an unused result late.
        .args(["-Wall", "-Wextra", "-Werror", "-c", "-o"])
        .arg(file.with_extension("o"))
        .arg(format!("-I{}", include.display()))
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("{compiler} cannot be run ({e}); scripts/test.sh installs it"));
    match out.status.success() {
        true => Ok(()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

/// gcc and g++ always; clang too where it is installed (scripts/test.sh
/// installs it and sets TRODO_REQUIRE_CLANG, so CI never skips it).
fn compilers() -> Vec<(&'static str, &'static str)> {
    let mut found = vec![("gcc", "g++")];
    let clang = std::process::Command::new("clang")
        .arg("--version")
        .output();
    if clang.is_ok_and(|o| o.status.success()) {
        found.push(("clang", "clang++"));
    } else if std::env::var_os("TRODO_REQUIRE_CLANG").is_some() {
        panic!("clang is required (TRODO_REQUIRE_CLANG) but not installed");
    } else {
        eprintln!("note: clang is not installed: the header is checked with gcc only");
    }
    found
}

#[cfg_attr(
    windows,
    ignore = "runs cargo metadata and the host's C compilers, which wine has not; the Linux run checks the header"
)]
#[test]
fn the_header_compiles_without_a_warning_as_c89_c11_and_cxx11() {
    for (cc, cxx) in compilers() {
        // clang calls `bool` in C89 a C99 extension: the one accepted diagnostic.
        let c89: &[&str] = match cc {
            "clang" => &["-std=c89", "-pedantic", "-Wno-c99-extensions"],
            _ => &["-std=c89", "-pedantic"],
        };
        for (compiler, flags, ext) in [
            (cc, c89, "c"),
            (cc, &["-std=c11", "-pedantic"][..], "c"),
            (cxx, &["-std=c++11", "-pedantic"][..], "cpp"),
        ] {
            if let Err(e) = syntax_check(compiler, flags, USES_THE_HEADER, ext) {
                panic!("{compiler} {flags:?} warns about include/trodo.h:\n{e}");
            }
        }
    }
}

#[cfg_attr(
    windows,
    ignore = "runs cargo metadata and the host's C compilers, which wine has not; the Linux run checks the header"
)]
#[test]
fn ignoring_a_string_or_handle_to_free_is_warned_about() {
    let leaks = "#include \"trodo.h\"\nint main(void) { trodo_get_groups(); return 0; }\n";
    for (cc, _) in compilers() {
        let e = syntax_check(cc, &["-std=c11"], leaks, "c").expect_err("a warning");
        assert!(e.contains("unused"), "{cc}: {e}");
    }
}
