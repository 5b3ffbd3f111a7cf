//! Precompile cache: compiled components keyed by the wasm's sha256 and the
//! engine's compatibility hash, so a restart or a re-load of a known version
//! skips compilation. Only files this cache wrote are ever deserialized,
//! never user-supplied artifacts. Beside them, `files/` remembers the
//! digests of component files (see [`super::file`]).

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use wasmtime::component::Component;
use wasmtime::Engine;

pub struct PrecompileCache {
    dir: PathBuf,
    memo: super::file::FactsMemo,
}

impl PrecompileCache {
    pub fn new(dir: PathBuf) -> Result<PrecompileCache, String> {
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create the cache directory {}: {e}", dir.display()))?;
        let memo = super::file::FactsMemo::new(dir.join("files"));
        Ok(PrecompileCache { dir, memo })
    }

    /// The digests of component files loaded before (`files/`).
    pub fn memo(&self) -> &super::file::FactsMemo {
        &self.memo
    }

    fn path(&self, engine: &Engine, digest_hex: &str) -> PathBuf {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        self.dir.join(format!("{digest_hex}-{:016x}.cwasm", h.finish()))
    }

    /// The cached compilation of `digest_hex`, if any (and usable).
    pub fn get(&self, engine: &Engine, digest_hex: &str) -> Option<Component> {
        let path = self.path(engine, digest_hex);
        if !path.exists() {
            return None;
        }
        // SAFETY: the file is this cache's own output (named by the sha256 of
        // the source and the engine's compatibility hash, written by `put`
        // with an atomic rename); wasmtime also checks its header.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "dropping an unusable precompiled component");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Removes all but the `keep` most recently written compilations (best
    /// effort): `cf-host dev` writes one per build.
    pub fn prune(&self, keep: usize) {
        let Ok(read) = std::fs::read_dir(&self.dir) else { return };
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = read
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
            .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
            .collect();
        files.sort_by_key(|f| std::cmp::Reverse(f.0));
        for (_, p) in files.into_iter().skip(keep) {
            let _ = std::fs::remove_file(p);
        }
    }

    /// Stores a compilation (best effort: a failure only costs a recompile).
    pub fn put(&self, engine: &Engine, digest_hex: &str, component: &Component) {
        let path = self.path(engine, digest_hex);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let result = component
            .serialize()
            .map_err(|e| e.to_string())
            .and_then(|bytes| std::fs::write(&tmp, bytes).map_err(|e| e.to_string()))
            .and_then(|()| std::fs::rename(&tmp, &path).map_err(|e| e.to_string()));
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(path = %path.display(), error = %e, "cannot write the precompile cache");
        }
    }
}
