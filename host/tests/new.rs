//! `cf-host new`: a Rust collector project that builds with cargo for
//! wasm32-wasip2 and passes `cf-host test --conformance` and its first
//! `cf-host test` (the empty cassette and `expect.json` it comes with);
//! the refusals (bad name, non-empty directory, unknown language). The
//! Python and TypeScript projects are built in `tests/tests/sdk_guests.rs`,
//! with the SDKs' pinned tools.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn cf_host(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cf-host"))
        .args(args)
        .current_dir(dir)
        .env("CF_HOST_LOG", "error")
        .output()
        .expect("cf-host runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `cargo build --target wasm32-wasip2 --release` in `dir`, into the
/// shared target directory: offline first (wit-bindgen is in the registry
/// cache when the workspace's guests were built), then online.
fn cargo_build(dir: &Path) -> Output {
    cargo(dir, &["build", "--target", "wasm32-wasip2", "--release", "--quiet"])
}

/// `cargo ARGS` in `dir`, offline first.
fn cargo(dir: &Path, args: &[&str]) -> Output {
    let build = |offline: bool| {
        let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        c.args(args).current_dir(dir).env("CARGO_TARGET_DIR", common::target_dir());
        // Not the outer build's: the project is its own workspace.
        c.env_remove("RUSTFLAGS").env_remove("CARGO_ENCODED_RUSTFLAGS");
        if offline {
            c.arg("--offline");
        }
        c.output().expect("cargo runs")
    };
    let o = build(true);
    if o.status.success() { o } else { build(false) }
}

#[test]
fn a_new_rust_collector_builds_and_passes_conformance_and_its_first_test() {
    let root = common::temp_dir("new-rust");
    let o = cf_host(&["new", "scaffold-probe", "--lang", "rust", "--dir", "probe"], &root);
    assert!(o.status.success(), "{}", text(&o));
    let dir = root.join("probe");
    for f in ["Cargo.toml", "src/lib.rs", "vendor/cloudforet-collector/wit/collector.wit", "vendor/cloudforet-collector/src/lib.rs", "README.md", "cassette/cassette.json", "expect.json"] {
        assert!(dir.join(f).is_file(), "{f} in {}", text(&o));
    }
    let hello = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
    let lines = hello.lines().take_while(|l| !l.starts_with("#[cfg(test)]")).count();
    assert!(lines <= 40, "the Rust hello collector has {lines} lines; the goal is at most 40");
    let o = cargo_build(&dir);
    assert!(o.status.success(), "the scaffold builds: {}", text(&o));
    // Its own test, natively against the SDK's doubles of the host.
    let o = cargo(&dir, &["test", "--quiet"]);
    assert!(o.status.success() && text(&o).contains("1 passed"), "the scaffold's cargo test: {}", text(&o));
    let wasm = common::target_dir().join("wasm32-wasip2/release/scaffold_probe.wasm");
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
