//! `cf-host dev`: on a Rust project of `cf-host new` (one project for
//! every case: its first wasm build is the slow part), `--once` against
//! the project's cassette (and a golden file) and against the simulator;
//! then the watch loop as a child process: an edit (a record renamed)
//! gives a second result showing it, a broken edit prints the compiler's
//! error and keeps the last good build loaded, the fix runs again, an
//! edit during a build is not lost, and Ctrl-C stops it cleanly. The project builds into a target directory of
//! its own (see `probe_target`).

mod common;

use common::{cf_host_in, output_text};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long one build and run may take (cargo may wait for the shared
/// target directory's lock).
const STEP: Duration = Duration::from_secs(150);

/// The project's target directory: its own, under the workspace's, so
/// that its builds never wait for the workspace's builds (the first run
/// compiles its dependencies once).
fn probe_target() -> std::path::PathBuf {
    common::target_dir().join("cf-dev-probe")
}

/// `cf-host dev ARGS` in `dir`, building offline (the dependencies are
/// fetched by the first build) into [`probe_target`].
fn dev_command(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cf-host"));
    c.arg("dev")
        .args(args)
        .current_dir(dir)
        .env("CF_HOST_LOG", "error")
        .env("CARGO_TARGET_DIR", probe_target())
        .env("CARGO_NET_OFFLINE", "true")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    c
}

/// The watch loop's process and what it printed so far; killed when dropped.
struct Dev {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dev {
    fn start(dir: &Path, args: &[&str]) -> Dev {
        let mut child = dev_command(dir, args).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("cf-host dev starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Dev { child, lines, seen: Vec::new() }
    }

    /// The lines printed up to and including the first that starts with
    /// `prefix`; fails at once if the loop goes back to watching first.
    fn until(&mut self, prefix: &str) -> Vec<String> {
        let deadline = Instant::now() + STEP;
        let mut block = Vec::new();
        loop {
            let line = self.next_line(deadline.saturating_duration_since(Instant::now()), prefix);
            block.push(line.clone());
            if line.starts_with(prefix) {
                return block;
            }
            assert!(!line.starts_with("watching "), "no line starting with {prefix:?}; it printed:\n{}", self.seen.join("\n"));
        }
    }

    /// The lines of the first run whose result holds the line `wanted`,
    /// through its `[run k]` line; runs without it may come first. Fails
    /// when the loop waits for edits (30 s without a line) before one.
    fn until_run_with(&mut self, wanted: &str) -> String {
        let mut block = Vec::new();
        let mut wait = STEP;
        loop {
            let line = self.next_line(wait, wanted);
            block.push(line.clone());
            if line.starts_with("[run ") {
                if block.iter().any(|l| l == wanted) {
                    return block.join("\n");
                }
                block.clear();
            }
            wait = if line.starts_with("watching ") { Duration::from_secs(30) } else { STEP };
        }
    }

    /// The next line printed, within `wait`.
    fn next_line(&mut self, wait: Duration, waiting_for: &str) -> String {
        match self.lines.recv_timeout(wait) {
            Ok(line) => {
                self.seen.push(line.clone());
                line
            }
            Err(e) => panic!("no {waiting_for:?} ({e}); it printed:\n{}", self.seen.join("\n")),
        }
    }
}

fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).expect("the source");
    assert!(text.contains(from), "{from:?} in {}", file.display());
    std::fs::write(file, text.replacen(from, to, 1)).expect("the edit");
}

#[test]
fn dev_builds_runs_and_rebuilds_after_each_edit() {
    let root = common::temp_dir("dev-rust");
    // The first build (and the dependencies, offline or not).
    let (dir, wasm) = common::new_rust_project(&root, "dev-probe", &probe_target());
    let o = cf_host_in(&["test", wasm.to_str().unwrap(), "--cassette", "cassette", "--golden", "golden.ndjson", "--update-golden"], &dir);
    assert!(o.status.success(), "{}", output_text(&o));

    // Once, against the project's cassette and the golden file.
    let o = dev_command(&dir, &["--once", "--golden", "golden.ndjson"]).output().expect("cf-host dev runs");
    let out = output_text(&o);
    assert!(o.status.success(), "{out}");
    for expected in [
        "  against:   cassette ",
        "[build 1] ok in ",
        "[load 1] dev-probe 0.1.0 sha256:",
        "Result: ok, 2 records (0 error resources), 0 HTTP requests",
        "  Hello/Greeting          1",
        "  record Hello/Greeting greeting (hello-1)",
        "Golden: matches golden.ndjson",
        "[run 1] PASS edit→result ",
    ] {
        assert!(out.contains(expected), "{expected:?} in:\n{out}");
    }
    assert!(!out.contains("watching"), "--once does not watch: {out}");

    // Once, against the simulator; a golden file that differs fails.
    std::fs::write(dir.join("other.ndjson"), "{}\n").unwrap();
    let o = dev_command(&dir, &["--once", "--sim", "--vms", "3", "--golden", "other.ndjson"]).output().expect("cf-host dev runs");
    let out = output_text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("the Prism Central simulator (test double) on http://127.0.0.1:") && out.contains("with 3 VMs"), "{out}");
    assert!(out.contains("Result: ok, 2 records") && out.contains("Golden: differs from other.ndjson") && out.contains("[run 1] FAIL"), "{out}");

    // Watching: the first result, then an edit.
    let mut dev = Dev::start(&dir, &["--golden", "golden.ndjson"]);
    let first = dev.until("[run 1] ");
    assert!(first.iter().any(|l| l == "  record Hello/Greeting greeting (hello-1)"), "{first:#?}");
    dev.until("watching ");
    let lib = dir.join("src/lib.rs");
    edit(&lib, r#""hello-1", "greeting")"#, r#""hello-1", "salute")"#);
    let second = dev.until("[run 2] ");
    let text = second.join("\n");
    assert!(text.contains("[build 2] ok") && text.contains("  record Hello/Greeting salute (hello-1)"), "{text}");
    assert!(text.contains("Golden: differs from golden.ndjson") && text.contains("salute"), "the golden diff: {text}");
    assert!(second.last().is_some_and(|l| l.starts_with("[run 2] FAIL edit→result ")), "{text}");
    let loaded = second.iter().find_map(|l| l.strip_prefix("[load 2] ")).expect("the second build loaded").to_string();
    let digest = loaded.split(" in ").next().expect("name version digest").to_string();
    assert!(digest.starts_with("dev-probe 0.1.0 sha256:"), "{loaded}");
    assert!(!first.iter().any(|l| l.contains(&digest)), "a new build: {first:#?}");
    dev.until("watching ");

    // A broken edit: the compiler's error, the last good build stays.
    edit(&lib, "Ok(Summary {", "Ok(Summary { broken ");
    let third = dev.until("[build 3] ");
    let text = third.join("\n");
    assert!(text.contains("error") && text.contains("src/lib.rs"), "the compiler's error: {text}");
    assert_eq!(third.last().map(String::as_str), Some(format!("[build 3] FAILED (exit status: 101); the last good build stays loaded ({digest})").as_str()), "{text}");
    dev.until("watching ");

    // The fix: built and run again, the renamed record still there.
    edit(&lib, "Ok(Summary { broken ", "Ok(Summary {");
    let fourth = dev.until("[run 4] ").join("\n");
    assert!(fourth.contains("[build 4] ok") && fourth.contains("  record Hello/Greeting salute (hello-1)"), "{fourth}");
    dev.until("watching ");

    // Two edits, the second while the first builds: no edit is lost, the
    // last result shows the second (after one more build, or a run of its own).
    edit(&lib, r#""hello-1", "salute")"#, r#""hello-1", "hail")"#);
    std::thread::sleep(Duration::from_millis(400));
    edit(&lib, r#""hello-1", "hail")"#, r#""hello-1", "welcome")"#);
    let last = dev.until_run_with("  record Hello/Greeting welcome (hello-1)");
    assert!(last.contains("PASS") || last.contains("Golden: differs"), "{last}");
    dev.until("watching ");

    // Ctrl-C: a clean stop.
    // SAFETY: signals the child this test started (its pid, alive: `until` saw it print).
    assert_eq!(unsafe { libc::kill(dev.child.id() as libc::pid_t, libc::SIGINT) }, 0);
    dev.until("stopped");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = dev.child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "cf-host dev exits after Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    drop(dev);
    std::fs::remove_dir_all(root).ok();
}
