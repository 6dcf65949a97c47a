//! Builds the C harness (tests/c) with the system C and C++ compilers against
//! include/trodo.h and the built libtrodo, then runs each program against its
//! own loopback fake server, once natively and once under valgrind memcheck.
//!
//! Valgrind runs when it is installed; set TRODO_REQUIRE_VALGRIND=1 (the test
//! command does) to make its absence a failure instead of a skip.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use support::FakeTrodo;

const C_PROGRAMS: &[&str] = &[
    "c_delivery",
    "c_groups",
    "c_profile",
    "c_errors",
    "c_persist",
    "c_identify",
    "c_threads",
    "c_fork",
    "c_exit",
    "c_users",
    "c_late",
    "c_unload",
    "c_transport",
];
const CXX_PROGRAMS: &[&str] = &["c_cxx"];
#[cfg(not(windows))]
const WARNINGS: &[&str] = &["-Wall", "-Wextra", "-Werror", "-pedantic"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// target/<profile>: this test binary lives in target/<profile>/deps. With
/// TRODO_HARNESS_LIB_DIR, another build of the library (scripts/test-sanitizers.sh
/// points it at one built with AddressSanitizer).
fn lib_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TRODO_HARNESS_LIB_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

#[cfg(not(windows))]
fn lib_name() -> &'static str {
    if cfg!(target_os = "macos") {
        "libtrodo.dylib"
    } else {
        "libtrodo.so"
    }
}

#[cfg(not(windows))]
fn compile(compiler: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(compiler)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {compiler}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{compiler} {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `cargo test` builds the crate as an rlib only, so the shared library the C
/// programs link is whatever the last `cargo build` left: refuse a stale one.
#[cfg(not(windows))]
fn check_library_is_fresh(lib: &Path) -> Result<(), String> {
    let hint = "run `cargo build` first (the README's test command does)";
    let built = std::fs::metadata(lib)
        .and_then(|m| m.modified())
        .map_err(|_| format!("{} not found: {hint}", lib.display()))?;
    let mut newest = std::fs::metadata(root().join("Cargo.toml"))
        .and_then(|m| m.modified())
        .unwrap();
    let mut dirs = vec![root().join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)
            .map_err(|e| e.to_string())?
            .flatten()
        {
            let meta = entry.metadata().map_err(|e| e.to_string())?;
            if meta.is_dir() {
                dirs.push(entry.path());
            } else if let Ok(m) = meta.modified() {
                newest = newest.max(m);
            }
        }
    }
    if built < newest {
        return Err(format!(
            "{} is older than the sources: {hint}",
            lib.display()
        ));
    }
    Ok(())
}

/// On Windows (under wine, from scripts/test-windows.sh) the programs are
/// cross-compiled with mingw-w64 before the tests run, beside trodo.dll:
/// there is no compiler inside wine.
#[cfg(windows)]
fn built() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = lib_dir().join("c-harness");
        assert!(
            out.join("c_delivery.exe").exists() && out.join("trodo.dll").exists(),
            "{} has no cross-compiled programs: run scripts/test-windows.sh",
            out.display()
        );
        out
    })
}

/// Compiles every program once per test binary; returns the output directory.
#[cfg(not(windows))]
fn built() -> &'static PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let lib = lib_dir();
        check_library_is_fresh(&lib.join(lib_name()))?;
        let out = lib.join("c-harness");
        std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
        let include = format!("-I{}", root().join("include").display());
        let tests_c = root().join("tests").join("c");
        let include_c = format!("-I{}", tests_c.display());
        let link_dir = format!("-L{}", lib.display());
        let rpath = format!("-Wl,-rpath,{}", lib.display());
        let harness_c = tests_c.join("harness.c").display().to_string();
        let harness_o = out.join("harness.o").display().to_string();

        // Extra compiler flags, e.g. -fsanitize=address,undefined.
        let extra = std::env::var("TRODO_HARNESS_CFLAGS").unwrap_or_default();
        let extra: Vec<&str> = extra.split_whitespace().collect();
        let mut c_flags = vec!["-std=c99"];
        c_flags.extend(WARNINGS);
        c_flags.extend(["-g", &include, &include_c]);
        c_flags.extend(&extra);
        let mut args = c_flags.clone();
        args.extend(["-c", &harness_c, "-o", &harness_o]);
        compile(&cc, &args)?;

        // One C file of the harness is C++: the header's extern "C" guards.
        for (compiler, std, ext, programs) in [
            (&cc, "-std=c99", "c", C_PROGRAMS),
            (&cxx, "-std=c++11", "cpp", CXX_PROGRAMS),
        ] {
            for name in programs {
                let src = tests_c.join(format!("{name}.{ext}")).display().to_string();
                let exe = out.join(name).display().to_string();
                if *name == "c_unload" {
                    // Loads libtrodo at run time: neither it nor harness.o
                    // (which needs it) is linked.
                    let mut args = vec![std];
                    args.extend(WARNINGS);
                    args.extend(&extra);
                    args.extend(["-g", &src, "-o", &exe, "-ldl"]);
                    compile(compiler, &args)?;
                    continue;
                }
                let mut args = vec![std];
                args.extend(WARNINGS);
                args.extend(&extra);
                args.extend([
                    "-g",
                    &include,
                    &include_c,
                    &src,
                    &harness_o,
                    "-o",
                    &exe,
                    &link_dir,
                    "-ltrodo",
                    "-lpthread",
                    "-lm",
                    &rpath,
                ]);
                // The host transport's program sends through libcurl
                // (libcurl4-openssl-dev; scripts/test.sh installs it).
                if *name == "c_transport" {
                    args.push("-lcurl");
                }
                compile(compiler, &args)?;
            }
        }
        // The README's quick start must keep compiling (it is not run: it
        // would talk to the real service).
        let quickstart = root()
            .join("examples")
            .join("quickstart.c")
            .display()
            .to_string();
        let exe = out.join("quickstart").display().to_string();
        let mut args = c_flags.clone();
        args.extend([&quickstart, "-o", &exe, &link_dir, "-ltrodo", &rpath]);
        compile(&cc, &args)?;
        // So must every full C program in the README, as written.
        for (i, program) in readme_c_programs().iter().enumerate() {
            let src = out.join(format!("readme_{i}.c"));
            std::fs::write(&src, program).map_err(|e| e.to_string())?;
            let src = src.display().to_string();
            let exe = out.join(format!("readme_{i}")).display().to_string();
            let mut args = c_flags.clone();
            args.extend([&src, "-o", &exe, &link_dir, "-ltrodo", &rpath]);
            if program.contains("<curl/curl.h>") {
                args.push("-lcurl"); // the Transport section's libcurl example
            }
            compile(&cc, &args).map_err(|e| format!("README program {i}:\n{program}\n{e}"))?;
        }
        Ok(out)
    });
    match result {
        Ok(dir) => dir,
        Err(e) => panic!("building the C harness failed:\n{e}"),
    }
}

/// The README's full C programs: its ```c blocks that have a `main`.
fn readme_c_programs() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap_or_default();
    readme
        .split("```c\n")
        .skip(1)
        .filter_map(|rest| rest.split_once("```").map(|(code, _)| code.to_string()))
        .filter(|code| code.contains("int main("))
        .collect()
}

#[test]
fn the_readme_has_full_c_programs_to_compile() {
    assert!(!readme_c_programs().is_empty());
}

#[cfg(target_os = "linux")]
fn valgrind_available() -> bool {
    let found = Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found && std::env::var_os("TRODO_REQUIRE_VALGRIND").is_some() {
        panic!("TRODO_REQUIRE_VALGRIND is set but valgrind is not installed");
    }
    found
}

/// A harness program still running after this has hung: it is killed and fails.
const DEADLINE: Duration = Duration::from_secs(300);

/// `cmd.output()`, killing the program and failing at `deadline`.
fn output_within(mut cmd: Command, deadline: Duration) -> std::io::Result<Output> {
    use std::io::Read;
    let mut kid = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = drain(
        kid.stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        kid.stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let end = Instant::now() + deadline;
    let status = loop {
        if let Some(status) = kid.try_wait()? {
            break status;
        }
        if Instant::now() > end {
            let _ = kid.kill();
            panic!("the program did not finish within {deadline:?} (deadlock?)");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Runs one harness program against a fresh server and storage directory.
fn run(name: &str, under_valgrind: bool) {
    let exe = built().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let work = std::env::temp_dir().join(format!("trodo-c-{name}-{}", trodo::util::new_id()));
    std::fs::create_dir_all(&work).unwrap();
    let log = work.join("server.log");
    let server = FakeTrodo::start_with_log(Some(log.clone()));
    if name == "c_identify" {
        server.set_identify_delay(Duration::from_millis(300));
    }
    if name == "c_transport" {
        // The retry cases: the first request fails, the second is paused.
        server.script_faults([
            support::Fault::Status(503),
            support::Fault::RetryAfter(429, "1".into()),
        ]);
    }
    let storage = work.join("storage");
    std::fs::create_dir_all(&storage).unwrap();

    let mut cmd = if under_valgrind {
        let mut c = Command::new("valgrind");
        c.args([
            "--tool=memcheck",
            "--error-exitcode=97",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--quiet",
            // A forked child loses what only its parent's other threads
            // pointed to (c_fork): that is fork's nature, not a leak to report.
            "--child-silent-after-fork=yes",
        ])
        .arg(&exe)
        .env("TRODO_TEST_VALGRIND", "1");
        c
    } else {
        Command::new(&exe)
    };
    // cargo test puts target/<profile> on the loader path, which comes
    // before a program's RUNPATH: the library under test must come first.
    let loader_path = match std::env::var_os("LD_LIBRARY_PATH") {
        Some(rest) => {
            let mut dirs = vec![lib_dir()];
            dirs.extend(std::env::split_paths(&rest));
            std::env::join_paths(dirs).expect("loader path")
        }
        None => lib_dir().into_os_string(),
    };
    cmd.env("LD_LIBRARY_PATH", loader_path);
    // The programs put TRODO_TEST_DIR into JSON as it is: forward slashes
    // on Windows too (which takes them), so no backslash needs escaping.
    let slashed = |p: &Path| p.display().to_string().replace('\\', "/");
    // Where c_unload finds the library (on Windows, beside the programs).
    let lib_home = if cfg!(windows) {
        built().clone()
    } else {
        lib_dir()
    };
    cmd.env("TRODO_TEST_API", server.url())
        .env("TRODO_TEST_LOG", slashed(&log))
        .env("TRODO_TEST_DIR", slashed(&storage))
        .env("TRODO_TEST_LIB_DIR", slashed(&lib_home));
    let out = output_within(cmd, DEADLINE)
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name}{} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        if under_valgrind {
            " under valgrind"
        } else {
            ""
        },
        out.status
    );
    assert!(stdout.contains("all checks passed"), "{name}: {stdout}");
    let _ = std::fs::remove_dir_all(&work);
}

macro_rules! harness_tests {
    ($($(#[$attr:meta])* $name:ident),* $(,)?) => {
        mod native {
            $( $(#[$attr])* #[test] fn $name() { super::run(stringify!($name), false); } )*
        }
        // valgrind is a Linux tool here: elsewhere these do not exist.
        #[cfg(target_os = "linux")]
        mod valgrind {
            $( $(#[$attr])*
            #[test] fn $name() {
                if super::valgrind_available() {
                    super::run(stringify!($name), true);
                } else {
                    eprintln!("valgrind is not installed: skipped (set TRODO_REQUIRE_VALGRIND=1 to fail instead)");
                }
            } )*
        }
    };
}

harness_tests!(
    c_delivery,
    c_groups,
    c_profile,
    c_errors,
    c_persist,
    c_identify,
    c_threads,
    #[cfg_attr(windows, ignore = "fork() is Unix-only")]
    c_fork,
    c_exit,
    c_users,
    c_late,
    c_unload,
    c_transport,
    c_cxx
);

#[test]
fn every_program_in_tests_c_is_run() {
    let mut on_disk: Vec<String> = std::fs::read_dir(root().join("tests").join("c"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("c_"))
        .map(|n| n.rsplit_once('.').map(|(s, _)| s.to_string()).unwrap_or(n))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = C_PROGRAMS
        .iter()
        .chain(CXX_PROGRAMS)
        .map(|s| s.to_string())
        .collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}
