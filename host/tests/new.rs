//! `cf-host new`: a Rust collector project that builds with cargo for
//! wasm32-wasip2 and passes `cf-host test --conformance` and its first
//! `cf-host test` (the empty cassette and `expect.json` it comes with);
//! the refusals (bad name, non-empty directory, unknown language). The
//! Python and TypeScript projects are built in `tests/tests/sdk_guests.rs`,
//! with the SDKs' pinned tools.

mod common;

use common::{cf_host_in as cf_host, output_text as text};

#[test]
fn a_new_rust_collector_builds_and_passes_conformance_and_its_first_test() {
    let root = common::temp_dir("new-rust");
    let (dir, wasm) = common::new_rust_project(&root, "scaffold-probe", &common::target_dir());
    for f in ["Cargo.toml", "src/lib.rs", "vendor/cloudforet-collector/wit/collector.wit", "vendor/cloudforet-collector/src/lib.rs", "README.md", "cassette/cassette.json", "expect.json"] {
        assert!(dir.join(f).is_file(), "{f} in {}", dir.display());
    }
    let hello = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
    let lines = hello.lines().take_while(|l| !l.starts_with("#[cfg(test)]")).count();
    assert!(lines <= 40, "the Rust hello collector has {lines} lines; the goal is at most 40");
    // Its own test, natively against the SDK's doubles of the host.
    let o = common::cargo_in(&dir, &common::target_dir(), &["test", "--quiet"]);
    assert!(o.status.success() && text(&o).contains("1 passed"), "the scaffold's cargo test: {}", text(&o));
    let w = wasm.to_str().unwrap();

    let o = cf_host(&["test", "--conformance", w], &dir);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("identity             scaffold-probe 0.1.0") && out.contains("PASS: 9 checks passed, 0 warnings"), "{out}");

    let o = cf_host(&["test", w, "--cassette", "cassette", "--expect", "expect.json"], &dir);
    let out = text(&o);
    assert!(o.status.success() && out.contains("PASS: expectations met"), "{out}");

    // Refusals: the same directory again, a bad name, an unknown language.
    for (args, expected) in [
        (vec!["new", "scaffold-probe", "--lang", "rust", "--dir", "probe"], "is not an empty directory"),
        (vec!["new", "Probe", "--lang", "rust"], "invalid collector name \"Probe\""),
        (vec!["new", "probe2", "--lang", "go"], "unknown language \"go\""),
    ] {
        let o = cf_host(&args, &root);
        assert!(!o.status.success() && text(&o).contains(expected), "{args:?}: {}", text(&o));
    }
    assert!(!root.join("Probe").exists() && !root.join("probe2").exists(), "nothing written on refusal");
    std::fs::remove_dir_all(root).ok();
}
