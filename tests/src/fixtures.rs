//! The test fixtures both suites share (`tests/tests` through `cf_tests`,
//! `host/tests` through `host/tests/common`, which includes this file):
//! where the build puts things, the component paths, one tokio runtime per
//! test binary, temp directories, and Python venvs from PyPI. Only std and
//! tokio here, so both can compile it.

use std::future::Future;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The cargo target directory (`CARGO_TARGET_DIR` or the workspace's).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("target"))
}

/// The release build of the guest component.
pub fn guest_wasm() -> PathBuf {
    wasm("guest_nutanix", "guest-nutanix")
}

/// The adversarial test component (`tests/adversary`).
pub fn adversary_wasm() -> PathBuf {
    wasm("cf_adversary", "cf-adversary")
}

/// A collector built against the frozen world 0.1.0 (`tests/legacy-guest`).
pub fn legacy_wasm() -> PathBuf {
    wasm("cf_legacy_guest", "cf-legacy-guest")
}

fn wasm(file: &str, package: &str) -> PathBuf {
    let p = target_dir().join(format!("wasm32-wasip2/release/{file}.wasm"));
    assert!(
        p.exists(),
        "component missing at {}: run `cargo build -p {package} --target wasm32-wasip2 --release` first",
        p.display()
    );
    p
}

/// One multi-threaded tokio runtime shared by all tests of a binary, so the
/// host's HTTP connection pools stay on one runtime.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime"))
}

/// Runs `f` to completion on [`runtime`].
pub fn block_on<F: Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

/// A fresh, unique temporary directory.
pub fn temp_dir(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let d = std::env::temp_dir().join(format!(
        "cf-tests-{name}-{:x}-{:x}-{:x}",
        now.as_nanos(),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// The tests' Python files (tests/python).
pub fn python_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("tests").join("python")
}

/// A Python venv under the target directory with `requirements` (a file of
/// tests/python) installed from PyPI, made once and kept while the file is
/// unchanged; its `bin/python`.
pub fn python_venv(name: &str, requirements: &str) -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let file = python_dir().join(requirements);
    let wanted = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let venv = target_dir().join(name);
    let marker = venv.join("cf-requirements.txt");
    let py = venv.join("bin/python");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) && py.exists() {
        return py;
    }
    let run = |cmd: &mut std::process::Command| {
        let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        assert!(out.status.success(), "{cmd:?} failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    };
    let _ = std::fs::remove_dir_all(&venv);
    run(std::process::Command::new("python3").args(["-m", "venv"]).arg(&venv));
    run(std::process::Command::new(&py).args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"]).arg(&file));
    std::fs::write(&marker, wanted).expect("venv marker");
    py
}
