//! The plugins directory: every `*.wasm` in it is loaded (with its
//! `<file>.json` manifest), and a newly loaded version higher than the live
//! one goes live. Changes are debounced; a file still being written (size or
//! modification time moving, or modified in the last moments) waits for the
//! next scan, and a file that fails admission is reported and skipped until
//! it changes again, so a half-copied file never goes live. Removing a file
//! does not unload its version (runs may use it); use the admin API.

use super::Registry;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Quiet time after a change before scanning.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// A file modified more recently than this is still being written.
const SETTLE: Duration = Duration::from_millis(200);

/// Keeps the watcher alive; dropping it stops watching.
pub struct WatchHandle {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Size and modification time of a file.
type Fingerprint = (u64, Option<SystemTime>);

/// Loads what is in `dir` now, then watches it.
pub async fn watch(registry: Arc<Registry>, dir: PathBuf) -> Result<WatchHandle, String> {
    use notify::Watcher as _;
    if !dir.is_dir() {
        return Err(format!("plugins directory {} does not exist", dir.display()));
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let notify_tx = tx.clone();
    let mut watcher = notify::recommended_watcher(move |_event: notify::Result<notify::Event>| {
        let _ = notify_tx.send(());
    })
    .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    watcher
        .watch(&dir, notify::RecursiveMode::NonRecursive)
        .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    let mut seen: HashMap<PathBuf, (Fingerprint, Option<Fingerprint>)> = HashMap::new();
    let unsettled = scan(&registry, &dir, &mut seen).await;
    if unsettled {
        let _ = tx.send(());
    }
    let task = tokio::spawn(async move {
        while rx.recv().await.is_some() {
            tokio::time::sleep(DEBOUNCE).await;
            while rx.try_recv().is_ok() {}
            if scan(&registry, &dir, &mut seen).await {
                // Something is still being written: look again shortly.
                let tx = tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(SETTLE).await;
                    let _ = tx.send(());
                });
            }
        }
    });
    Ok(WatchHandle { _watcher: watcher, task })
}

fn fingerprint(path: &Path) -> Option<Fingerprint> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()))
}

/// One pass over the directory. Returns true when a file was left for later
/// because it is still changing.
async fn scan(registry: &Arc<Registry>, dir: &Path, seen: &mut HashMap<PathBuf, (Fingerprint, Option<Fingerprint>)>) -> bool {
    let Ok(read) = std::fs::read_dir(dir) else { return false };
    let mut files: Vec<PathBuf> = read
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "wasm")
                && !p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    files.sort();
    let mut unsettled = false;
    for path in files {
        let Some(fp) = fingerprint(&path) else { continue };
        // The manifest counts as part of the file.
        let seen_as = (fp, fingerprint(&path.with_extension("json")));
        if seen.get(&path) == Some(&seen_as) {
            continue;
        }
        let recent = fp.1.and_then(|t| t.elapsed().ok()).is_none_or(|age| age < SETTLE);
        if recent {
            unsettled = true;
            continue;
        }
        let (reg, p) = (registry.clone(), path.clone());
        let result = tokio::task::spawn_blocking(move || reg.load_file(&p, None, false)).await;
        // Changed while we read it: try again next pass.
        if fingerprint(&path).map(|f| f.1) != Some(fp.1) {
            unsettled = true;
            continue;
        }
        seen.insert(path.clone(), seen_as);
        match result {
            Ok(Ok(report)) => {
                let newer = semver::Version::parse(&report.version).ok().is_some_and(|v| {
                    registry.live(&report.name).is_none_or(|live| v > live)
                });
                if newer && let Ok(v) = semver::Version::parse(&report.version) {
                    let _ = registry.activate(&report.name, &v);
                }
                tracing::info!(file = %path.display(), plugin = %report.name, version = %report.version, "plugins directory: loaded");
            }
            Ok(Err(e)) => tracing::warn!(file = %path.display(), error = %e, "plugins directory: rejected"),
            Err(e) => tracing::error!(file = %path.display(), error = %e, "plugins directory: load task failed"),
        }
    }
    unsettled
}
