//! The plugins directory: every `*.wasm` in it is loaded (with its
//! `<file>.json` manifest), and a newly loaded version higher than the live
//! one goes live. Changes are debounced; a file still being written (size or
//! modification time moving, or modified in the last moments) waits for the
//! next scan, and a file that fails admission is reported and skipped until
//! it changes again, so a half-copied file never goes live. Removing a file
//! does not unload its version (runs may use it); use the admin API.
//!
//! Entries are hostile too: only regular files are read (a FIFO, a device
//! or a socket named `x.wasm` is skipped, and so is a symbolic link unless
//! the operator asked to follow them), opened without blocking and without
//! following links, checked again once open, and read through a size cap.

use super::file::{ComponentFile, FileError};
use super::Registry;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Quiet time after a change before scanning (and before `cf-host dev`
/// rebuilds).
pub const DEBOUNCE: Duration = Duration::from_millis(100);
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

/// A plugins directory and how its entries are read.
#[derive(Clone, Debug)]
pub struct WatchedDir {
    pub path: PathBuf,
    /// Read what symbolic links point at (off: links are skipped).
    pub follow_symlinks: bool,
    /// Largest component read.
    pub max_bytes: u64,
}

impl WatchedDir {
    pub fn new(path: PathBuf) -> WatchedDir {
        WatchedDir { path, follow_symlinks: false, max_bytes: 64 << 20 }
    }
}

/// Largest manifest read beside a component.
const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// [`watch_dir`] with the defaults: no symbolic links, 64 MiB at most.
pub async fn watch(registry: Arc<Registry>, dir: PathBuf) -> Result<WatchHandle, String> {
    watch_dir(registry, WatchedDir::new(dir)).await
}

/// Loads what is in the directory now, then watches it.
pub async fn watch_dir(registry: Arc<Registry>, watched: WatchedDir) -> Result<WatchHandle, String> {
    use notify::Watcher as _;
    let dir = watched.path.clone();
    if !dir.is_dir() {
        return Err(format!("plugins directory {} does not exist", dir.display()));
    }
    let (mut watcher, tx, mut rx) = notifier(|_| true).map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    watcher
        .watch(&dir, notify::RecursiveMode::NonRecursive)
        .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    let mut seen: HashMap<PathBuf, (Fingerprint, Option<Fingerprint>)> = HashMap::new();
    let unsettled = scan(&registry, &watched, &mut seen).await;
    if unsettled {
        let _ = tx.send(());
    }
    let task = tokio::spawn(async move {
        while rx.recv().await.is_some() {
            tokio::time::sleep(DEBOUNCE).await;
            while rx.try_recv().is_ok() {}
            if scan(&registry, &watched, &mut seen).await {
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

/// A file system watcher (nothing watched yet) whose events that `keep`
/// accepts arrive as `()` on the channel; its sender is answered too, to
/// look again later. A watcher error counts as an event: look.
pub fn notifier(
    keep: impl Fn(&notify::Event) -> bool + Send + 'static,
) -> notify::Result<(notify::RecommendedWatcher, tokio::sync::mpsc::UnboundedSender<()>, tokio::sync::mpsc::UnboundedReceiver<()>)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let notify_tx = tx.clone();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.as_ref().map_or(true, &keep) {
            let _ = notify_tx.send(());
        }
    })?;
    Ok((watcher, tx, rx))
}

/// Size and modification time of an entry as it will be read (the link
/// itself when links are not followed).
fn fingerprint(path: &Path, follow: bool) -> Option<Fingerprint> {
    let m = if follow { std::fs::metadata(path) } else { std::fs::symlink_metadata(path) }.ok()?;
    Some((m.len(), m.modified().ok()))
}

/// Why an entry is not read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("{0} is a symbolic link (start with --plugins-follow-symlinks to follow links)")]
    Symlink(String),
    #[error("{0} is not a regular file")]
    NotAFile(String),
    #[error("{path} is larger than {max} bytes")]
    TooLarge { path: String, max: u64 },
    #[error("cannot read {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("{0} changed while it was read")]
    Changed(String),
}

/// Reads one entry: a regular file (a link only when following links),
/// opened without blocking, checked again once open, at most `max` bytes.
pub fn read_entry(path: &Path, follow: bool, max: u64) -> Result<Vec<u8>, EntryError> {
    open_entry(path, follow, max)?.read().map_err(EntryError::from)
}

/// Opens one entry as [`read_entry`] reads it.
pub fn open_entry(path: &Path, follow: bool, max: u64) -> Result<ComponentFile, EntryError> {
    let name = || path.display().to_string();
    let io = |e: std::io::Error| EntryError::Io { path: name(), reason: e.to_string() };
    let meta = std::fs::symlink_metadata(path).map_err(io)?;
    if meta.file_type().is_symlink() && !follow {
        return Err(EntryError::Symlink(name()));
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        // A FIFO opens at once with O_NONBLOCK instead of waiting for a
        // writer; O_NOFOLLOW refuses a link swapped in after the check.
        let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
        options.custom_flags(libc::O_NONBLOCK | nofollow);
    }
    let file = options.open(path).map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) => EntryError::Symlink(name()),
        _ => io(e),
    })?;
    let meta = file.metadata().map_err(io)?;
    ComponentFile::opened(path, file, &meta, max).map_err(EntryError::from)
}

impl From<FileError> for EntryError {
    fn from(e: FileError) -> EntryError {
        match e {
            FileError::Io { path, source } => EntryError::Io { path, reason: source.to_string() },
            FileError::NotAFile(path) => EntryError::NotAFile(path),
            FileError::TooLarge { path, max } => EntryError::TooLarge { path, max },
            FileError::Changed(path) => EntryError::Changed(path),
        }
    }
}

/// Loads one component of the directory and its manifest, read with
/// [`read_entry`]; a component unchanged since an earlier load is not read
/// again (see [`super::file`]).
fn load_entry(registry: &Registry, path: &Path, watched: &WatchedDir) -> Result<super::LoadReport, String> {
    let file = open_entry(path, watched.follow_symlinks, watched.max_bytes).map_err(|e| e.to_string())?;
    let manifest_path = path.with_extension("json");
    let manifest = match std::fs::symlink_metadata(&manifest_path) {
        Err(_) => None,
        Ok(_) => {
            let text = read_entry(&manifest_path, watched.follow_symlinks, MAX_MANIFEST_BYTES).map_err(|e| e.to_string())?;
            Some(serde_json::from_slice(&text).map_err(|e| format!("manifest {} is not valid: {e}", manifest_path.display()))?)
        }
    };
    let read = registry.read_file(file).map_err(|e| e.to_string())?;
    registry.load_read(read, manifest, None, false).map_err(|e| e.to_string())
}

/// One pass over the directory. Returns true when a file was left for later
/// because it is still changing.
async fn scan(registry: &Arc<Registry>, watched: &WatchedDir, seen: &mut HashMap<PathBuf, (Fingerprint, Option<Fingerprint>)>) -> bool {
    let Ok(read) = std::fs::read_dir(&watched.path) else { return false };
    let follow = watched.follow_symlinks;
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
        let Some(fp) = fingerprint(&path, follow) else { continue };
        // The manifest counts as part of the file.
        let seen_as = (fp, fingerprint(&path.with_extension("json"), follow));
        if seen.get(&path) == Some(&seen_as) {
            continue;
        }
        let recent = fp.1.and_then(|t| t.elapsed().ok()).is_none_or(|age| age < SETTLE);
        if recent {
            unsettled = true;
            continue;
        }
        let (reg, p, w) = (registry.clone(), path.clone(), watched.clone());
        let result = tokio::task::spawn_blocking(move || load_entry(&reg, &p, &w)).await;
        // Changed while we read it: try again next pass.
        if fingerprint(&path, follow).map(|f| f.1) != Some(fp.1) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cf-watch-{name}-{}", crate::runtime::new_run_id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn only_regular_files_within_the_cap_are_read() {
        let d = dir("entries");
        let f = d.join("a.wasm");
        std::fs::write(&f, b"0123456789").unwrap();
        assert_eq!(read_entry(&f, false, 10).unwrap(), b"0123456789");
        assert!(matches!(read_entry(&f, false, 9), Err(EntryError::TooLarge { max: 9, .. })));
        #[cfg(unix)]
        {
            let link = d.join("link.wasm");
            std::os::unix::fs::symlink(&f, &link).unwrap();
            assert!(matches!(read_entry(&link, false, 100), Err(EntryError::Symlink(_))));
            assert_eq!(read_entry(&link, true, 100).unwrap(), b"0123456789");
            let zero = d.join("zero.wasm");
            std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
            assert!(matches!(read_entry(&zero, false, 100), Err(EntryError::Symlink(_))));
            assert!(matches!(read_entry(&zero, true, 100), Err(EntryError::NotAFile(_))), "a device is never read");
            let fifo = d.join("fifo.wasm");
            let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            // SAFETY: a valid NUL-terminated path; mkfifo only creates a node.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            let started = std::time::Instant::now();
            assert!(matches!(read_entry(&fifo, false, 100), Err(EntryError::NotAFile(_))));
            assert!(started.elapsed() < std::time::Duration::from_secs(1), "a FIFO never blocks the reader");
        }
        std::fs::remove_dir_all(d).ok();
    }
}
