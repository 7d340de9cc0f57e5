#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The built-in catalog is derived, not hand-edited: rebuilding it from the
//! public source rows gives byte-identical files. Needs `shared/data/`
//! beside the repository (as on developer machines and CI); a user's clone
//! has no such folder and the test says so and passes.

use std::path::PathBuf;

#[test]
fn builtin_catalog_rebuilds_byte_for_byte() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shared = manifest.join("../../../shared/data");
    if !shared.join("catalog/skypilot-v8").is_dir() {
        eprintln!(
            "skipped: {} not present (only in the development workspace)",
            shared.display()
        );
        return;
    }
    let out = std::env::temp_dir().join(format!("skyward-catalog-rebuild-{}", std::process::id()));
    skyward_catalog::build::build(&shared, &out).unwrap();
    for f in ["offerings.csv", "notes.csv", "rtt.csv", "egress.csv"] {
        let built = std::fs::read(out.join(f)).unwrap();
        let shipped = std::fs::read(manifest.join("data").join(f)).unwrap();
        assert!(built == shipped, "data/{f} differs from a rebuild: run `cargo run -p skyward-catalog --bin build-catalog -- ../shared/data crates/skyward-catalog/data`");
    }
    let _ = std::fs::remove_dir_all(&out);
}
