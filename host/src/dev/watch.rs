//! The sources `cf-host dev` watches: the project directory and its
//! subdirectories, but not build output or tools' directories (`target/`,
//! `node_modules/`, `.venv/`, `__pycache__/`, hidden ones), editors'
//! backup files, or components (`*.wasm`). Events arrive through the
//! registry's watcher helper ([`crate::registry::watch::notifier`]).
//!
//! The top directory is watched alone and each of its other
//! subdirectories recursively, so no watch is ever placed inside
//! `target/`; a subdirectory created later is watched from the next
//! change on ([`SourceWatch::watch_new_dirs`]).

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecursiveMode, Watcher as _};
use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};
use tokio::sync::mpsc::UnboundedReceiver;

/// Directories whose changes never start a build.
const IGNORED_DIRS: &[&str] = &["target", "node_modules", ".venv", "venv", "__pycache__"];

/// Why the sources cannot be watched.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {path}: {source}")]
pub struct WatchError {
    path: PathBuf,
    source: notify::Error,
}

/// Watches a project's sources; `events` receives `()` per change.
pub struct SourceWatch {
    watcher: notify::RecommendedWatcher,
    root: PathBuf,
    watched: HashSet<PathBuf>,
    pub events: UnboundedReceiver<()>,
}

impl SourceWatch {
    pub fn new(root: &Path) -> Result<SourceWatch, WatchError> {
        let keep_root = root.to_path_buf();
        let (mut watcher, _tx, events) = crate::registry::watch::notifier(move |event: &notify::Event| {
            is_edit(&event.kind) && event.paths.iter().any(|p| is_source(&keep_root, p))
        })
        .map_err(|source| WatchError { path: root.to_path_buf(), source })?;
        watcher.watch(root, RecursiveMode::NonRecursive).map_err(|source| WatchError { path: root.to_path_buf(), source })?;
        let mut w = SourceWatch { watcher, root: root.to_path_buf(), watched: HashSet::new(), events };
        w.watch_new_dirs()?;
        Ok(w)
    }

    /// Watches the top directory's subdirectories not yet watched.
    pub fn watch_new_dirs(&mut self) -> Result<(), WatchError> {
        let Ok(read) = std::fs::read_dir(&self.root) else { return Ok(()) };
        for entry in read.flatten() {
            let path = entry.path();
            if !entry.file_type().is_ok_and(|t| t.is_dir()) || !is_source(&self.root, &path) || self.watched.contains(&path) {
                continue;
            }
            match self.watcher.watch(&path, RecursiveMode::Recursive) {
                Ok(()) => {
                    self.watched.insert(path);
                }
                // Gone again before it could be watched.
                Err(e) if !path.exists() => tracing::debug!(path = %path.display(), error = %e, "not watched"),
                Err(source) => return Err(WatchError { path, source }),
            }
        }
        Ok(())
    }
}

/// Writes, creations, removals, renames: not reads (a build reads every
/// source).
fn is_edit(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// Whether a change of `path` is a change of the sources.
fn is_source(root: &Path, path: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(root) else { return false };
    if rel.as_os_str().is_empty() {
        return false;
    }
    let mut parts = rel.components().peekable();
    while let Some(part) = parts.next() {
        let Component::Normal(name) = part else { return false };
        let name = name.to_string_lossy();
        if name.starts_with('.') || IGNORED_DIRS.contains(&name.as_ref()) {
            return false;
        }
        let last = parts.peek().is_none();
        // Editors' backup and lock files, and components.
        if last && (name.ends_with('~') || name.starts_with('#') || name.ends_with(".swp") || name.ends_with(".wasm")) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_output_and_editors_files_are_not_sources() {
        let root = Path::new("/p");
        for yes in ["/p/src/lib.rs", "/p/Cargo.toml", "/p/collector.py", "/p/cassette/cassette.json", "/p/src"] {
            assert!(is_source(root, Path::new(yes)), "{yes}");
        }
        for no in [
            "/p/target/wasm32-wasip2/release/x.wasm",
            "/p/node_modules/a/b.js",
            "/p/.git/index",
            "/p/src/.lib.rs.swp",
            "/p/src/lib.rs~",
            "/p/__pycache__/c.pyc",
            "/p/x.wasm",
            "/q/src/lib.rs",
            "/p",
        ] {
            assert!(!is_source(root, Path::new(no)), "{no}");
        }
        assert!(!is_edit(&EventKind::Access(AccessKind::Open(AccessMode::Any))));
        assert!(is_edit(&EventKind::Access(AccessKind::Close(AccessMode::Write))));
        assert!(is_edit(&EventKind::Modify(notify::event::ModifyKind::Any)));
    }
}
