//! include/trodo.h must be exactly what cbindgen generates from the sources.
//! Regenerate with `TRODO_BLESS=1 cargo test --test header`.

use std::path::Path;

#[test]
fn committed_header_matches_a_fresh_cbindgen_run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
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
