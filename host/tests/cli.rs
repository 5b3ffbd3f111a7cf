//! The `cf-host` binary: the demo end to end, and one-line errors with a
//! non-zero exit on bad input. Needs the guest component built (the README's
//! test command builds it first).

mod common;

use common::{guest, Server};
use std::path::PathBuf;
use std::process::{Command, Output};

fn cf_host(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cf-host"))
        .args(args)
        .env("CF_HOST_LOG", "error")
        .output()
        .expect("cf-host runs")
}


fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cf-host-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn demo_collects_the_simulator_through_the_guest() {
    let dir = tmp("demo");
    let store = dir.join("demo.db");
    let o = cf_host(&["demo", "--vms", "120", "--store", store.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "stdout: {out}\nstderr: {}", stderr(&o));
    let row = |label: &str| {
        out.lines()
            .find(|l| l.starts_with(label))
            .map(|l| l.split_whitespace().skip(1).map(|n| n.parse::<u64>().unwrap()).collect::<Vec<_>>())
            .unwrap_or_else(|| panic!("no {label} row in:\n{out}"))
    };
    assert_eq!(row("Compute/VirtualMachine"), vec![120, 0, 0, 0]);
    assert_eq!(row("Region"), vec![3, 0, 0, 0]);
    assert_eq!(row("TOTAL"), vec![157, 0, 0, 0]);
    assert!(out.contains(&format!("Store: {}", store.display())), "{out}");
    assert!(store.exists());
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn bad_input_gets_one_line_errors_and_a_failure_exit() {
    let dir = tmp("bad");
    let secret = dir.join("secret.json");
    std::fs::write(&secret, r#"{"username": "admin", "password": "hunter2"}"#).unwrap();
    let corrupt_secret = dir.join("corrupt.json");
    std::fs::write(&corrupt_secret, r#"{"username": "admin", "password": "hunter2""#).unwrap();
    let junk = dir.join("junk.wasm");
    std::fs::write(&junk, b"not wasm at all").unwrap();
    let store = dir.join("s.db");
    let guest = guest();
    let (g, s, st) = (guest.to_str().unwrap(), secret.to_str().unwrap(), store.to_str().unwrap());

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["collect", "--plugin", "/nonexistent/x.wasm", "--endpoint", "http://127.0.0.1:9", "--secret", s, "--store", st], "error: cannot read plugin /nonexistent/x.wasm"),
        (vec!["collect", "--plugin", junk.to_str().unwrap(), "--endpoint", "http://127.0.0.1:9", "--secret", s, "--store", st], "is not a WebAssembly file"),
        (vec!["collect", "--plugin", g, "--endpoint", "http://127.0.0.1:9", "--secret", corrupt_secret.to_str().unwrap(), "--store", st], "is not valid JSON"),
        (vec!["collect", "--plugin", g, "--endpoint", "http://127.0.0.1:9", "--secret", "env:CF_HOST_TEST_NO_SUCH_VAR", "--store", st], "CF_HOST_TEST_NO_SUCH_VAR"),
        (vec!["collect", "--plugin", g, "--endpoint", "ftp://127.0.0.1:9", "--secret", s, "--store", st], "scheme must be http or https"),
        (vec!["collect", "--plugin", g, "--endpoint", "http://127.0.0.1:9", "--secret", s, "--store", st, "--options", "[1]"], "--options must be a JSON object"),
        // Nothing listens on port 9: unreachable → unavailable.
        (vec!["collect", "--plugin", g, "--endpoint", "http://127.0.0.1:9", "--secret", s, "--store", st, "--options", r#"{"max_retries":0}"#], "error: collection failed: unavailable: clusters list failed: GET /api/clustermgmt/v4.2/config/clusters: cannot reach http://127.0.0.1:9"),
    ];
    for (args, expected) in cases {
        let o = cf_host(&args);
        let err = stderr(&o);
        assert!(!o.status.success(), "{args:?} should fail");
        assert!(err.contains(expected), "{args:?}: expected {expected:?} in {err:?}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: one line, got {err:?}");
        assert!(!err.contains("hunter2"), "the password never shows: {err}");
    }
    std::fs::remove_dir_all(dir).ok();
}

/// `cf-host test`: record a cassette from the simulator (credentials
/// redacted), replay it against a golden file, and fail clearly on drift.
#[test]
fn test_command_records_replays_and_guards_the_golden_file() {
    use prism_sim::{estate::EstateConfig, SimConfig, Simulator};
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let sim = rt
        .block_on(Simulator::start(SimConfig { estate: EstateConfig { vms: 7, ..EstateConfig::default() }, ..SimConfig::default() }))
        .unwrap();
    let dir = tmp("cassette");
    let secret = dir.join("secret.json");
    std::fs::write(&secret, sim.secret().to_string()).unwrap();
    let cassette = dir.join("recorded");
    let golden = dir.join("golden.ndjson");
    let guest = guest();
    let (g, c, gd) = (guest.to_str().unwrap(), cassette.to_str().unwrap(), golden.to_str().unwrap());

    let url = sim.url();
    let o = cf_host(&["test", g, "--cassette", c, "--record", "--endpoint", &url, "--secret", secret.to_str().unwrap(),
        "--options", r#"{"page_size": 3}"#]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    assert!(out.contains("Compute/VirtualMachine") && out.contains("PASS"), "{out}");
    let recorded = std::fs::read_to_string(cassette.join("cassette.json")).unwrap();
    assert!(!recorded.contains("nutanix/4u") && recorded.contains("[redacted]"), "credentials stay out of cassettes");

    // Replay (no network: the simulator is gone) and pin the output.
    drop(sim);
    let o = cf_host(&["test", g, "--cassette", c, "--golden", gd, "--update-golden"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let o = cf_host(&["test", g, "--cassette", c, "--golden", gd]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success() && out.contains("Golden: matches"), "{out}");
    // Three pages, and one 1-entity read before the pages fetched together
    // (the guest's check that the list did not shift under them).
    assert!(out.contains("request POST /api/nutanix/v3/vms/list x4"), "7 VMs in pages of 3: {out}");

    // A normalization change shows up as a field-level diff.
    let text = std::fs::read_to_string(&golden).unwrap().replacen("\"vm-0000\"", "\"vm-renamed\"", 1);
    std::fs::write(&golden, text).unwrap();
    let o = cf_host(&["test", g, "--cassette", c, "--golden", gd]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("- golden record.resource.data.name: \"vm-renamed\"") && out.contains("+ actual record.resource.data.name: \"vm-0000\""), "{out}");

    // Requests the cassette does not hold fail the test with a diff.
    let o = cf_host(&["test", g, "--cassette", c, "--options", r#"{"page_size": 4, "api_version": "v3"}"#]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("not in the cassette: POST /api/nutanix/v3/clusters/list") && out.contains("+ body.length: 4"), "{out}");

    // Expectations that do not hold fail; bad input is a one-line error.
    let expect = dir.join("expect.json");
    std::fs::write(&expect, r#"{"counts": {"Compute/VirtualMachine": 8}}"#).unwrap();
    let o = cf_host(&["test", g, "--cassette", c, "--expect", expect.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(!o.status.success() && out.contains("expected 8 Compute/VirtualMachine, got 7"), "{out}");
    let o = cf_host(&["test", g, "--cassette", dir.join("none").to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("cannot read cassette"), "{}", stderr(&o));
    std::fs::remove_dir_all(dir).ok();
}

/// `cf-host bench` runs every stage and prints its table (figures are
/// recorded in BENCHMARKS.md, never asserted).
#[test]
fn bench_prints_its_table() {
    let o = cf_host(&["bench", "--instantiations", "5", "--sandboxes", "3", "--vms", "50"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    for row in ["load a new version, cold", "load a new version, warm", "instantiate p50", "instantiate p99", "3 sandboxes alive", "memory per live sandbox", "collect 50 VMs: records/s", "peak RSS"] {
        assert!(out.contains(row), "missing {row:?} in:\n{out}");
    }
}

/// `cf-host serve --plugins-dir` with the admin API, driven by `cf-host plugins`.
#[test]
fn plugins_commands_manage_a_running_server() {
    let dir = tmp("plugins");
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let server = adversary_server(&plugins, &["--metrics-bind", "127.0.0.1:0"]);
    let serving = &server.lines[0];
    let metrics = format!("{}/metrics", server.metrics.as_deref().unwrap());
    assert!(serving.contains("serving adversary@(no version yet)"), "{serving}");
    let plugins_cmd = |args: &[&str]| server.plugins(args);
    let adversary = guest().with_file_name("cf_adversary.wasm");
    let o = plugins_cmd(&["load", adversary.to_str().unwrap(), "--activate"]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success() && text.contains("loaded adversary@7.7.1") && text.contains("live"), "{text}{}", stderr(&o));
    let o = plugins_cmd(&["list"]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(text.lines().any(|l| l.starts_with("adversary") && l.contains("7.7.1") && l.contains("yes")), "{text}");
    // The live version shows in the metrics.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let text = rt.block_on(async { reqwest::get(&metrics).await.unwrap().text().await.unwrap() });
    assert!(text.contains(r#"cf_host_plugin_live{plugin="adversary",version="7.7.1"} 1"#), "{text}");
    assert!(text.contains("cf_host_sandboxes_active 0"), "{text}");
    let o = plugins_cmd(&["rollback", "adversary"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("FAILED_PRECONDITION: adversary has no earlier version"), "{}", stderr(&o));
    let o = plugins_cmd(&["unload", "adversary"]);
    assert!(!o.status.success() && stderr(&o).contains("NAME@VERSION"), "{}", stderr(&o));
    let o = Command::new(env!("CARGO_BIN_EXE_cf-host")).args(["plugins", "--admin", server.admin.as_deref().unwrap(), "--token", "wrong", "list"]).output().unwrap();
    assert!(!o.status.success() && stderr(&o).contains("UNAUTHENTICATED"), "{}", stderr(&o));
    drop(server);
    std::fs::remove_dir_all(dir).ok();
}

/// `cf-host serve` for the adversary's plugins directory with the admin API.
fn adversary_server(plugins: &std::path::Path, extra: &[&str]) -> Server {
    let mut args = vec!["--name", "adversary", "--admin-bind", "127.0.0.1:0"];
    args.extend(extra);
    args.extend(["--plugins-dir", plugins.to_str().expect("a UTF-8 path")]);
    Server::spawn(&args)
}

/// keygen, sign, and a server that requires signatures: unsigned and
/// re-labelled components are refused, the signed one loads.
#[test]
fn a_server_that_requires_signatures_loads_only_signed_plugins() {
    let dir = tmp("signing");
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let o = cf_host(&["plugins", "keygen", "release-1", "--dir", dir.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success() && text.contains("trusted-keys line:"), "{text}{}", stderr(&o));
    let key = dir.join("release-1.key");
    #[cfg(unix)]
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions()) & 0o777, 0o600);
    std::fs::write(dir.join("trusted"), text.lines().last().unwrap()).unwrap();
    let o = cf_host(&["plugins", "keygen", "release-1", "--dir", dir.to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("cannot create"), "an existing key is never overwritten");

    let bytes = std::fs::read(guest().with_file_name("cf_adversary.wasm")).unwrap();
    for name in ["signed", "unsigned", "relabelled"] {
        std::fs::write(dir.join(format!("{name}.wasm")), &bytes).unwrap();
    }
    let o = cf_host(&["plugins", "sign", dir.join("signed.wasm").to_str().unwrap(), "--key", key.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success() && text.starts_with("signed adversary@7.7.1 (sha256:") && text.contains("with release-1"), "{text}{}", stderr(&o));
    // The same signature under another name does not verify.
    let mut manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("signed.json")).unwrap()).unwrap();
    assert_eq!(manifest["signatures"][0]["key_id"], "release-1");
    manifest["alias"] = "other".into();
    std::fs::write(dir.join("relabelled.json"), manifest.to_string()).unwrap();

    let server = adversary_server(&plugins, &["--trusted-keys", dir.join("trusted").to_str().unwrap(), "--require-signatures"]);
    let o = server.plugins(&["load", dir.join("unsigned.wasm").to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("adversary@7.7.1 is not signed"), "{}", stderr(&o));
    let o = server.plugins(&["load", dir.join("relabelled.wasm").to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("does not match other@7.7.1"), "{}", stderr(&o));
    let o = server.plugins(&["load", dir.join("signed.wasm").to_str().unwrap(), "--activate"]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success() && text.contains("loaded adversary@7.7.1") && text.contains("signed by release-1"), "{text}{}", stderr(&o));
    drop(server);
    std::fs::remove_dir_all(dir).ok();
}

/// `serve --config FILE`: the example documents every flag with its default,
/// a config file drives serve, the command line overrides it, bad keys fail.
#[test]
fn a_config_file_drives_serve_and_the_example_documents_every_flag() {
    use std::io::{BufRead, BufReader};
    let help = String::from_utf8_lossy(&cf_host(&["serve", "--help"]).stdout).into_owned();
    let example = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../cf-host.example.toml")).unwrap();
    let flags: Vec<&str> = help.split_whitespace().filter_map(|w| w.strip_prefix("--")).map(|w| w.trim_end_matches([',', '='])).collect();
    for flag in flags.iter().filter(|f| !["config", "help", "log", "otlp-endpoint"].contains(f) && !f.is_empty()) {
        let documented = example.lines().any(|l| l.trim_start_matches(['#', ' ']).starts_with(&format!("{flag} =")));
        assert!(documented, "cf-host.example.toml does not document --{flag}");
    }
    // Its uncommented values are serve's defaults: --help shows the same.
    for line in example.lines().filter(|l| !l.starts_with('#') && l.contains(" = ")) {
        let (key, value) = line.split_once(" = ").unwrap();
        // A TOML string is shown without its quotes.
        let value = value.split('#').next().unwrap().trim().trim_matches('"');
        if value != "[]" && value != "false" {
            assert!(help.contains(&format!("[default: {value}]")), "--{key} default {value} in the example, not in --help");
        }
    }

    let dir = tmp("config");
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let config = dir.join("cf-host.toml");
    std::fs::write(&config, format!("bind = \"127.0.0.1\"\nport = 0\nname = \"from-file\"\nno_cache = true\ndrain-timeout = 5\nplugins-dir = {:?}\n", plugins.to_str().unwrap())).unwrap();
    let first_line = |extra: &[&str]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cf-host"))
            .args(["serve", "--config", config.to_str().unwrap()])
            .args(extra)
            .env("CF_HOST_LOG", "error")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        line
    };
    let line = first_line(&[]);
    assert!(line.starts_with("cf-host serving from-file@(no version yet) on 127.0.0.1:"), "{line}");
    let line = first_line(&["--name", "from-flag"]);
    assert!(line.starts_with("cf-host serving from-flag@"), "the command line wins: {line}");

    std::fs::write(&config, "colour = \"blue\"\n").unwrap();
    let o = cf_host(&["serve", "--config", config.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown key \"colour\""), "{}", stderr(&o));
    std::fs::remove_dir_all(dir).ok();
}

/// `cf-host test --conformance`: the reference guest passes (against 404s
/// and against its cassette, where every record is checked); the
/// adversary's invalid items fail the record check; the report names each
/// check and the exit code follows it.
#[test]
fn conformance_passes_the_guest_and_fails_the_adversary() {
    let guest = guest();
    let g = guest.to_str().unwrap();
    let o = cf_host(&["test", "--conformance", g]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    for check in ["world", "identity", "init", "get-tasks", "collect", "typed-errors", "records", "cloud-service-types", "cloud-services"] {
        assert!(out.lines().any(|l| l.trim_start().starts_with("PASS") && l.contains(check)), "{check} passes: {out}");
    }
    assert!(out.contains("identity             nutanix 0.1.0"), "{out}");

    let cassette = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-nutanix/tests/cassettes/v3-small");
    let o = cf_host(&["test", "--conformance", g, "--cassette", cassette.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    assert!(out.contains("types with console labels and icons") && out.contains("34 services with a resource_id"), "{out}");

    let adversary = common::adversary_wasm();
    let a = adversary.to_str().unwrap();
    let o = cf_host(&["test", "--conformance", a, "--task-options", r#"{"attack": "emit-invalid"}"#]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("FAIL  records") && out.contains("host rejected an emitted Region: field 'name' is empty"), "{out}");
    assert!(out.contains("FAIL: 1 checks failed"), "{out}");
    // A panic is no typed error.
    let o = cf_host(&["test", "--conformance", a, "--task-options", r#"{"attack": "panic"}"#]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(!o.status.success() && out.contains("FAIL  typed-errors"), "{out}");

    // Not a component at all: one failing check, not a crash.
    let dir = tmp("conformance");
    let junk = dir.join("junk.wasm");
    std::fs::write(&junk, b"not wasm").unwrap();
    let o = cf_host(&["test", "--conformance", junk.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(!o.status.success() && out.contains("FAIL  world") && out.contains("does not load"), "{out}");
    let o = cf_host(&["test", g]);
    assert!(!o.status.success() && stderr(&o).contains("--cassette"), "{}", stderr(&o));
    std::fs::remove_dir_all(dir).ok();
}
