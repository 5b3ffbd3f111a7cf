//! The server around the sandbox under hostile or careless clients: no
//! deadlock, bounded memory and connections, consistent errors.
//!
//! A test that could hang (a deadlock) runs its work on another thread and
//! fails when that thread does not answer in time, instead of hanging the
//! suite.

use cf_host::registry::cache::PrecompileCache;
use cf_host::registry::Registry;
use cf_host::{Runtime, RuntimeConfig};
use cf_tests::{adversary_wasm, block_on, temp_dir};
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "test-admin-token-0123456789";

/// Runs `f` on its own thread; fails the test when it takes longer than
/// `within` (a deadlock would hold it forever).
fn within<T: Send + 'static>(what: &str, within: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(within).unwrap_or_else(|_| panic!("{what} did not finish within {within:?}: deadlock?"))
}

fn registry(name: &str) -> Arc<Registry> {
    let dir = temp_dir(name);
    let runtime = Arc::new(Runtime::new(RuntimeConfig { max_concurrency: 4, ..RuntimeConfig::default() }).unwrap());
    Arc::new(Registry::new(runtime, Some(PrecompileCache::new(dir.join("cache")).unwrap())))
}

/// Loading a version that is already loaded (a retried `plugins load`)
/// answers "unchanged" and leaves the registry usable; it used to hold the
/// registry's lock while taking it again.
#[test]
fn loading_the_same_build_twice_does_not_deadlock() {
    let reg = registry("same-build-twice");
    let bytes = std::fs::read(adversary_wasm()).unwrap();
    let r = reg.clone();
    let (first, second, again_activated) = within("loading one build twice", Duration::from_secs(60), move || {
        let first = r.load_bytes("a", &bytes, None, None, false).unwrap();
        let second = r.load_bytes("b", &bytes, None, None, false).unwrap();
        let third = r.load_bytes("c", &bytes, None, None, true).unwrap();
        (first, second, third)
    });
    assert!(!first.unchanged && second.unchanged && again_activated.unchanged);
    assert!(second.live && again_activated.live, "the first version of a plugin is live");
    // The registry still answers.
    let r = reg.clone();
    let listed = within("listing after the reload", Duration::from_secs(5), move || r.list());
    assert_eq!(listed.len(), 1);
}

/// The same build uploaded twice through the admin API: both answer, and
/// the admin API and registry keep answering afterwards.
#[test]
fn uploading_the_same_build_twice_answers_both() {
    let bytes = std::fs::read(adversary_wasm()).unwrap();
    block_on(async {
        let reg = registry("upload-twice");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = format!("http://{}", listener.local_addr().unwrap());
        let r = reg.clone();
        tokio::spawn(async move { cf_host::admin::serve(listener, r, cf_tests::admin_config(TOKEN), Default::default(), Default::default(), std::future::pending()).await });
        let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        for attempt in 0..3 {
            let resp = client
                .post(format!("{admin}/v1/plugins?activate=true"))
                .bearer_auth(TOKEN)
                .body(bytes.clone())
                .send()
                .await
                .unwrap_or_else(|e| panic!("upload {attempt} got no answer: {e}"));
            assert_eq!(resp.status().as_u16(), 200, "upload {attempt}");
            let body: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(body["unchanged"], attempt > 0, "{body}");
        }
        let resp = client.get(format!("{admin}/v1/plugins")).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    });
}

/// Two copies of one build in the plugins directory at start: the watcher's
/// first scan loads both (the second is unchanged) and returns, so a server
/// can start listening.
#[test]
fn two_copies_of_a_build_in_the_plugins_dir_load_at_start() {
    let bytes = std::fs::read(adversary_wasm()).unwrap();
    let dir = temp_dir("plugins-dir-copies");
    std::fs::write(dir.join("one.wasm"), &bytes).unwrap();
    std::fs::write(dir.join("two.wasm"), &bytes).unwrap();
    // Old enough to count as settled.
    std::thread::sleep(Duration::from_millis(300));
    let reg = registry("plugins-dir-copies-reg");
    let r = reg.clone();
    within("the plugins directory's first scan", Duration::from_secs(60), move || {
        block_on(async move {
            let handle = cf_host::registry::watch::watch(r, dir).await.unwrap();
            drop(handle);
        })
    });
    let r = reg.clone();
    let live = within("the registry after the scan", Duration::from_secs(5), move || r.live("adversary"));
    assert_eq!(live.map(|v| v.to_string()).as_deref(), Some("7.7.1"));
}
