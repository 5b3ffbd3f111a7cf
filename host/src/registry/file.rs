//! Component files: opening and reading one for loading, and the memo of
//! what its bytes determine ([`Facts`]: the sha256 digest and the embedded
//! identity), so a warm load of an unchanged file neither reads nor hashes
//! it. The digest of a 20 MB Python component costs ~18 ms; the rest of a
//! warm load (mapping the precompiled code, linking) about 3 ms.
//!
//! A memo entry is keyed by the file's path and holds its [`Stamp`]:
//! device, inode, size, and modification and change times in nanoseconds.
//! Every write to a file sets its change time (ctime), which no
//! unprivileged process can set back, so a file with the remembered stamp
//! has the remembered bytes. Entries are written only for files that had
//! settled, last changed more than [`SETTLED`] before they were read: a
//! write within the filesystem's timestamp granularity of the read could
//! otherwise leave the stamp unchanged (git's "racy" case). Entries live in
//! the precompile cache's directory, as trusted as the compiled code there.
//!
//! When the compiled code is not cached and a remembered file must be read
//! after all, its bytes are hashed again and refused if they differ.

use super::identity::{self, EmbeddedInfo};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::fs::{File, Metadata};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How long a file must have been unchanged before its facts are
/// remembered.
pub const SETTLED: Duration = Duration::from_secs(1);

/// Components larger than this are refused when no other cap applies.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;

/// Memo entries larger than this are neither written nor read.
const MAX_ENTRY_BYTES: u64 = 64 << 10;

/// A file's identity on disk: any change to its bytes changes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    #[cfg(unix)]
    pub fn of(meta: &Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt as _;
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// Without a change time the stamp never matches a remembered one.
    #[cfg(not(unix))]
    pub fn of(meta: &Metadata) -> Stamp {
        Stamp { dev: 0, ino: 0, size: meta.len(), mtime_ns: -1, ctime_ns: -1 }
    }

    /// Whether the file last changed more than [`SETTLED`] before `at`.
    fn settled_before(&self, at: SystemTime) -> bool {
        let Ok(at) = at.duration_since(SystemTime::UNIX_EPOCH) else { return false };
        let last = self.mtime_ns.max(self.ctime_ns);
        last >= 0 && (at.as_nanos() as i128) - last > SETTLED.as_nanos() as i128
    }
}

/// What a component's bytes determine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    /// `sha256:<hex>`.
    pub digest: String,
    /// The `cloudforet-plugin` section, or why it cannot be read.
    pub identity: Result<Option<EmbeddedInfo>, String>,
}

impl Facts {
    pub fn of(bytes: &[u8]) -> Facts {
        Facts { digest: crate::runtime::component_digest(bytes), identity: identity::embedded(bytes) }
    }
}

/// Why a component file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0} is not a regular file")]
    NotAFile(String),
    #[error("{path} is larger than {max} bytes")]
    TooLarge { path: String, max: u64 },
    #[error("{0} changed while it was read; load it again")]
    Changed(String),
}

/// A component file opened for loading: reads go to the file that was
/// opened and checked, whatever happens to the path afterwards.
pub struct ComponentFile {
    path: PathBuf,
    file: File,
    stamp: Stamp,
    max: u64,
}

impl ComponentFile {
    /// Opens `path` (following links) and checks it is a regular file of at
    /// most `max` bytes.
    pub fn open(path: &Path, max: u64) -> Result<ComponentFile, FileError> {
        let file = File::open(path).map_err(|source| FileError::Io { path: path.display().to_string(), source })?;
        let meta = file.metadata().map_err(|source| FileError::Io { path: path.display().to_string(), source })?;
        ComponentFile::opened(path, file, &meta, max)
    }

    /// A file the caller opened itself, with `meta` from the open file.
    pub fn opened(path: &Path, file: File, meta: &Metadata, max: u64) -> Result<ComponentFile, FileError> {
        let name = path.display().to_string();
        if !meta.is_file() {
            return Err(FileError::NotAFile(name));
        }
        if meta.len() > max {
            return Err(FileError::TooLarge { path: name, max });
        }
        Ok(ComponentFile { path: path.to_path_buf(), file, stamp: Stamp::of(meta), max })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn stamp(&self) -> Stamp {
        self.stamp
    }

    /// All of the file's bytes (at most `max`), refused when the file
    /// changed since it was opened.
    pub fn read(&self) -> Result<Vec<u8>, FileError> {
        use std::io::Read as _;
        let name = || self.path.display().to_string();
        let io = |source| FileError::Io { path: name(), source };
        let mut bytes = Vec::with_capacity(self.stamp.size.min(self.max) as usize);
        // `&File` reads at the shared offset: a second read starts over.
        let mut file = &self.file;
        std::io::Seek::rewind(&mut file).map_err(io)?;
        file.take(self.max + 1).read_to_end(&mut bytes).map_err(io)?;
        if bytes.len() as u64 > self.max {
            return Err(FileError::TooLarge { path: name(), max: self.max });
        }
        let now = self.file.metadata().map_err(io)?;
        if Stamp::of(&now) != self.stamp || bytes.len() as u64 != self.stamp.size {
            return Err(FileError::Changed(name()));
        }
        Ok(bytes)
    }
}

/// One remembered file.
#[derive(Serialize, Deserialize)]
struct Entry {
    path: String,
    stamp: Stamp,
    digest: String,
    identity: Option<EmbeddedInfo>,
}

/// Remembered facts of component files, one small file per path.
pub struct FactsMemo {
    dir: PathBuf,
}

impl FactsMemo {
    /// A memo in `dir` (created when missing; a memo that cannot be
    /// written only costs a hash per load).
    pub fn new(dir: PathBuf) -> FactsMemo {
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot create the file-digest memo");
        }
        FactsMemo { dir }
    }

    fn entry_path(&self, path: &Path) -> PathBuf {
        self.dir.join(format!("{:x}.json", Sha256::digest(path.as_os_str().as_encoded_bytes())))
    }

    /// The facts of `file` if they were remembered for its current stamp.
    pub fn get(&self, file: &ComponentFile) -> Option<Facts> {
        let at = self.entry_path(file.path());
        let meta = std::fs::metadata(&at).ok()?;
        if meta.len() > MAX_ENTRY_BYTES {
            return None;
        }
        let entry: Entry = serde_json::from_slice(&std::fs::read(&at).ok()?).ok()?;
        (entry.path.as_bytes() == file.path().as_os_str().as_encoded_bytes() && entry.stamp == file.stamp())
            .then(|| Facts { digest: entry.digest, identity: Ok(entry.identity) })
    }

    /// Remembers the facts of `file`, read from `read_at` on, when it had
    /// settled by then and its identity section was readable (best effort).
    pub fn put(&self, file: &ComponentFile, facts: &Facts, read_at: SystemTime) {
        let Ok(identity) = &facts.identity else { return };
        if !file.stamp().settled_before(read_at) {
            return;
        }
        let Some(path) = file.path().to_str() else { return };
        let entry = Entry { path: path.to_string(), stamp: file.stamp(), digest: facts.digest.clone(), identity: identity.clone() };
        let Ok(text) = serde_json::to_vec(&entry) else { return };
        if text.len() as u64 > MAX_ENTRY_BYTES {
            return;
        }
        let at = self.entry_path(file.path());
        let tmp = at.with_extension(format!("tmp{}", std::process::id()));
        if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &at)) {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(path = %at.display(), error = %e, "cannot write the file-digest memo");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cf-file-{name}-{}", crate::runtime::new_run_id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Two empty wasm files of the same size.
    const COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";
    const CORE_MODULE: &[u8] = b"\0asm\x01\0\0\0";

    /// Sets a file's modification time `ago` into the past.
    fn age(path: &Path, ago: Duration) {
        let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        f.set_modified(SystemTime::now() - ago).unwrap();
    }

    #[test]
    fn a_settled_file_is_remembered_and_any_write_forgets_it() {
        let d = dir("memo");
        let path = d.join("a.wasm");
        std::fs::write(&path, COMPONENT).unwrap();
        age(&path, Duration::from_secs(60));
        let memo = FactsMemo::new(d.join("memo"));
        let file = ComponentFile::open(&path, 1 << 20).unwrap();
        assert_eq!(memo.get(&file), None);
        let facts = Facts::of(&file.read().unwrap());
        assert_eq!(facts.identity, Ok(None));
        // The change time is now (set_modified changed it): not settled yet.
        memo.put(&file, &facts, SystemTime::now());
        assert_eq!(memo.get(&file), None, "a file changed within SETTLED is not remembered");
        memo.put(&file, &facts, SystemTime::now() + SETTLED * 2);
        assert_eq!(memo.get(&ComponentFile::open(&path, 1 << 20).unwrap()), Some(facts.clone()));

        // Same size, the old modification time put back: the change time
        // still tells the write apart.
        std::fs::write(&path, CORE_MODULE).unwrap();
        age(&path, Duration::from_secs(60));
        let changed = ComponentFile::open(&path, 1 << 20).unwrap();
        assert_eq!(changed.stamp().size, file.stamp().size);
        assert_eq!(memo.get(&changed), None);
        assert_ne!(Facts::of(&changed.read().unwrap()).digest, facts.digest);

        // Another file in the place of the first (a rename over it).
        let other = d.join("b.wasm");
        std::fs::write(&other, COMPONENT).unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert_eq!(memo.get(&ComponentFile::open(&path, 1 << 20).unwrap()), None);
    }

    #[test]
    fn a_corrupt_or_foreign_entry_is_a_miss() {
        let d = dir("corrupt");
        let path = d.join("a.wasm");
        std::fs::write(&path, b"content").unwrap();
        let memo = FactsMemo::new(d.join("memo"));
        let file = ComponentFile::open(&path, 1 << 20).unwrap();
        std::fs::write(memo.entry_path(&path), b"{not json").unwrap();
        assert_eq!(memo.get(&file), None);
        // An entry written for another path under this path's name.
        let entry = Entry { path: "/elsewhere.wasm".into(), stamp: file.stamp(), digest: "sha256:00".into(), identity: None };
        std::fs::write(memo.entry_path(&path), serde_json::to_vec(&entry).unwrap()).unwrap();
        assert_eq!(memo.get(&file), None);
        // An oversized entry is not read.
        std::fs::write(memo.entry_path(&path), vec![b' '; MAX_ENTRY_BYTES as usize + 1]).unwrap();
        assert_eq!(memo.get(&file), None);
    }

    #[test]
    fn reads_are_capped_and_refuse_a_file_that_changed() {
        let d = dir("read");
        let path = d.join("a.wasm");
        std::fs::write(&path, b"0123456789").unwrap();
        assert!(matches!(ComponentFile::open(&path, 9), Err(FileError::TooLarge { max: 9, .. })));
        assert!(matches!(ComponentFile::open(&d, 100), Err(FileError::NotAFile(_))));
        let file = ComponentFile::open(&path, 100).unwrap();
        assert_eq!(file.read().unwrap(), b"0123456789");
        assert_eq!(file.read().unwrap(), b"0123456789", "a second read starts over");
        std::fs::OpenOptions::new().append(true).open(&path).and_then(|mut f| std::io::Write::write_all(&mut f, b"!")).unwrap();
        assert!(matches!(file.read(), Err(FileError::Changed(_))));
    }
}
