//! The container image recipe and the Helm chart, checked without Docker or
//! Helm (neither runs here): `tests/python/check_deploy.py` renders the
//! chart's templates with the values (and with overrides), parses every
//! document as YAML and checks what CloudForet's supervisor needs.

mod common;

#[test]
fn helm_chart_renders_and_dockerfile_serves_the_plugin_port() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::process::Command::new(common::python())
        .arg(common::python_dir().join("check_deploy.py"))
        .arg(&root)
        .output()
        .expect("python runs");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
