//! Incremental VM collection (option `incremental`): the cache format and
//! the decisions, as pure functions; `collect` does the I/O.
//!
//! CloudForet treats a resource that a collection does not return as gone
//! (garbage collection), so an incremental run must still return every VM.
//! It therefore:
//!
//! 1. lists only the VMs changed since the newest change it saw last time,
//!    less an overlap (v3 `filter: last_update_time=ge=T`, v4
//!    `$filter=updateTime ge T`);
//! 2. lists the ids of all VMs (v3 groups API, v4 `$select=extId`), which is
//!    how deletions are seen;
//! 3. emits the changed VMs fresh and every other listed VM from the cache
//!    the previous run left in the collector's `state`; cached VMs that are
//!    no longer listed are dropped (and so deleted by CloudForet).
//!
//! Anything it cannot account for makes the run a full collection instead:
//! no or unreadable cache, a different guest version, Prism endpoint,
//! account, cluster names or `api_version` option, a listed id that is
//! neither cached nor changed, a refused filter, a lost page. Every
//! `full_every` runs is full anyway, so names a cached VM carries (host,
//! subnet, category) are refreshed at least that often.
//!
//! The cache lives under `vms/<endpoint hash>/`: a manifest and chunks of
//! at most [`CHUNK_TARGET_BYTES`], each a list of lines `id TAB record-json`
//! (so a pass over the ids needs no JSON parsing). The manifest is deleted
//! before chunks change and written last, so an interrupted run leaves no
//! half-updated cache behind, only a missing one.

use crate::config::{ApiChoice, Incremental};
use crate::normalize::Context;
use crate::record::CloudService;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Version of the cache layout; a change makes every cache stale.
pub const FORMAT: u32 = 1;

/// Chunks are closed at this size; the state interface's default value
/// limit is 256 KiB, and a chunk may grow when its VMs change.
pub const CHUNK_TARGET_BYTES: usize = 160 << 10;

/// Which API a cache was filled through (the changes are read the same way).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheApi {
    V3,
    V4,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The guest version that wrote the cache (normalization may differ).
    pub guest: String,
    /// [`fingerprint`] of what else shapes the records.
    pub fingerprint: String,
    pub api: CacheApi,
    /// The newest `last_update_time` among the cached VMs.
    pub watermark: String,
    pub chunks: u32,
    /// Incremental runs since the last full one.
    pub runs_since_full: u32,
    /// VMs that failed to normalize: (id, error message), re-reported by
    /// incremental runs until they change.
    #[serde(default)]
    pub failed: Vec<(String, String)>,
}

/// State keys of one Prism endpoint's cache.
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(base_url: &str) -> Keys {
        Keys { prefix: format!("vms/{:016x}", fnv1a(base_url.as_bytes())) }
    }
    pub fn manifest(&self) -> String {
        format!("{}/manifest", self.prefix)
    }
    pub fn chunk(&self, i: u32) -> String {
        format!("{}/chunk/{i}", self.prefix)
    }
}

pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100000001b3))
}

/// What besides the guest version shapes cached records: the account,
/// the endpoint (external links), cluster names, the `api_version` option.
pub fn fingerprint(ctx: &Context, api_option: ApiChoice) -> String {
    let canonical = json!({
        "account": ctx.account,
        "base_url": ctx.base_url,
        "clusters": ctx.cluster_names,
        "api_version": format!("{api_option:?}"),
    });
    format!("{:016x}", fnv1a(canonical.to_string().as_bytes()))
}

/// Whether this run may be incremental, or why it must be full.
pub fn plan(manifest: Option<Manifest>, fingerprint: &str, inc: &Incremental) -> Result<Manifest, String> {
    let Some(m) = manifest else { return Err("no cache of a previous run".into()) };
    if m.format != FORMAT || m.guest != env!("CARGO_PKG_VERSION") {
        return Err(format!("the cache was written by guest {} (format {})", m.guest, m.format));
    }
    if m.fingerprint != fingerprint {
        return Err("the account, endpoint, cluster names or api_version option changed".into());
    }
    if m.runs_since_full + 1 >= inc.full_every {
        return Err(format!("a full collection is due every {} runs", inc.full_every));
    }
    if parse_time(&m.watermark).is_none() {
        return Err(format!("the cached watermark '{}' is not a time", m.watermark));
    }
    Ok(m)
}

/// One cache line: `id TAB record-json`.
pub fn encode(cs: &CloudService) -> String {
    // A CloudService always serializes (plain strings, numbers, JSON values).
    let json = serde_json::to_string(cs).unwrap_or_default();
    format!("{}\t{json}", cs.resource_id)
}

pub fn line_id(line: &str) -> Option<&str> {
    line.split_once('\t').map(|(id, _)| id)
}

pub fn decode(line: &str) -> Result<CloudService, String> {
    let (_, json) = line.split_once('\t').ok_or("a cache line without an id")?;
    serde_json::from_str(json).map_err(|e| format!("a cache line is not a record: {e}"))
}

/// Fills chunks line by line; a chunk is handed out once it reaches
/// [`CHUNK_TARGET_BYTES`].
#[derive(Default)]
pub struct ChunkWriter {
    buf: String,
}

impl ChunkWriter {
    pub fn push(&mut self, line: &str) -> Option<String> {
        if !self.buf.is_empty() {
            self.buf.push('\n');
        }
        self.buf.push_str(line);
        (self.buf.len() >= CHUNK_TARGET_BYTES).then(|| std::mem::take(&mut self.buf))
    }
    /// The last, partly filled chunk.
    pub fn finish(self) -> Option<String> {
        (!self.buf.is_empty()).then_some(self.buf)
    }
}

/// The newer of two times (unparsable ones lose).
pub fn newest(a: Option<String>, b: Option<&str>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => match (parse_time(&a), parse_time(b)) {
            (Some(ta), Some(tb)) if tb > ta => Some(b.to_string()),
            (None, Some(_)) => Some(b.to_string()),
            _ => Some(a),
        },
        (None, Some(b)) => parse_time(b).map(|_| b.to_string()),
        (a, None) => a,
    }
}

/// Where the change filter starts: `overlap_s` before the watermark.
pub fn since(watermark: &str, overlap_s: u32) -> Option<String> {
    parse_time(watermark).map(|t| format_time(t - i64::from(overlap_s)))
}

/// The v3 list body's `filter`.
pub fn v3_filter(since: &str) -> String {
    format!("last_update_time=ge={since}")
}

/// The v4 list's `$filter` (not yet URL-encoded).
pub fn v4_filter(since: &str) -> String {
    format!("updateTime ge {since}")
}

pub use crate::time::{format_time, parse_time};

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn ctx() -> Context {
        Context { account: Some("pc".into()), base_url: "https://pc:9440".into(), cluster_names: BTreeMap::from([("c1".into(), "one".into())]), ..Context::default() }
    }

    fn manifest() -> Manifest {
        Manifest {
            format: FORMAT,
            guest: env!("CARGO_PKG_VERSION").into(),
            fingerprint: fingerprint(&ctx(), ApiChoice::Auto),
            api: CacheApi::V3,
            watermark: "2026-11-23T10:00:00Z".into(),
            chunks: 1,
            runs_since_full: 0,
            failed: Vec::new(),
        }
    }

    #[test]
    fn times_parse_in_every_rfc3339_form_and_round_trip() {
        let t = parse_time("2026-11-23T10:00:00Z").unwrap();
        assert_eq!(format_time(t), "2026-11-23T10:00:00Z");
        assert_eq!(parse_time("2026-11-23T11:30:00+01:30"), Some(t));
        assert_eq!(parse_time("2026-11-23T10:00:00.123456Z"), Some(t));
        assert_eq!(parse_time("2026-11-23T09:00:00-01:00"), Some(t));
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        for bad in ["", "2026-11-23", "2026-13-01T00:00:00Z", "2026-11-23T10:00:00", "2026-11-23T10:00:00.Z", "2026-11-23T10:00:00+0100", "２026-11-23T10:00:00Z"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        assert_eq!(since("2026-03-01T00:30:00Z", 3_600).as_deref(), Some("2026-02-28T23:30:00Z"));
        assert_eq!(since("yesterday", 0), None);
    }

    #[test]
    fn newest_keeps_the_later_parsable_time() {
        assert_eq!(newest(None, Some("2026-01-01T00:00:00Z")).as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(newest(Some("2026-01-02T00:00:00Z".into()), Some("2026-01-01T00:00:00Z")).as_deref(), Some("2026-01-02T00:00:00Z"));
        assert_eq!(newest(Some("2026-01-01T00:00:00Z".into()), Some("2026-01-01T00:00:00.5+00:00")).as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(newest(Some("2026-01-01T00:00:00Z".into()), Some("2026-01-01T01:00:00+00:30")).as_deref(), Some("2026-01-01T01:00:00+00:30"));
        assert_eq!(newest(None, Some("never")), None);
        assert_eq!(newest(Some("2026-01-01T00:00:00Z".into()), None).as_deref(), Some("2026-01-01T00:00:00Z"));
    }

    #[test]
    fn plan_refuses_every_cache_it_cannot_trust() {
        let inc = Incremental { full_every: 3, overlap_s: 60 };
        let fp = fingerprint(&ctx(), ApiChoice::Auto);
        assert_eq!(plan(Some(manifest()), &fp, &inc), Ok(manifest()));
        assert!(plan(None, &fp, &inc).unwrap_err().contains("no cache"));
        let other_guest = Manifest { guest: "0.0.0-old".into(), ..manifest() };
        assert!(plan(Some(other_guest), &fp, &inc).unwrap_err().contains("0.0.0-old"));
        let other_format = Manifest { format: FORMAT + 1, ..manifest() };
        assert!(plan(Some(other_format), &fp, &inc).is_err());
        let mut renamed = ctx();
        renamed.cluster_names.insert("c1".into(), "renamed".into());
        assert!(plan(Some(manifest()), &fingerprint(&renamed, ApiChoice::Auto), &inc).unwrap_err().contains("cluster names"));
        assert!(plan(Some(manifest()), &fingerprint(&ctx(), ApiChoice::V4), &inc).is_err());
        // full_every 3: runs 0 (full), 1, 2 incremental, then full.
        assert!(plan(Some(Manifest { runs_since_full: 1, ..manifest() }), &fp, &inc).is_ok());
        assert!(plan(Some(Manifest { runs_since_full: 2, ..manifest() }), &fp, &inc).unwrap_err().contains("every 3 runs"));
        assert!(plan(Some(manifest()), &fp, &Incremental { full_every: 1, overlap_s: 0 }).is_err());
        assert!(plan(Some(Manifest { watermark: "".into(), ..manifest() }), &fp, &inc).is_err());
    }

    #[test]
    fn cache_lines_round_trip_and_chunks_close_at_the_target() {
        let cs = CloudService {
            name: "vm\twith tab".into(),
            provider: "nutanix".into(),
            cloud_service_group: "Compute".into(),
            cloud_service_type: "VirtualMachine".into(),
            account: Some("pc".into()),
            region_code: None,
            instance_type: Some("2vCPU".into()),
            instance_size: Some(2.0),
            ip_addresses: vec!["10.0.0.1".into()],
            tags: vec![("k".into(), "v".into())],
            resource_id: "uuid-1".into(),
            external_link: None,
            launched_at: None,
            data: json!({"a": [1, "x\ny"]}),
            metadata: json!({}),
        };
        let line = encode(&cs);
        assert!(!line.contains('\n'), "one record is one line");
        assert_eq!(line_id(&line), Some("uuid-1"));
        assert_eq!(decode(&line), Ok(cs));
        assert!(decode("no tab").is_err() && decode("id\t{").is_err());

        let mut w = ChunkWriter::default();
        let line = "x".repeat(1_000);
        let mut chunks = Vec::new();
        for _ in 0..400 {
            chunks.extend(w.push(&line));
        }
        chunks.extend(w.finish());
        assert_eq!(chunks.iter().map(|c| c.lines().count()).sum::<usize>(), 400);
        assert!(chunks.len() >= 2 && chunks.iter().all(|c| c.len() < CHUNK_TARGET_BYTES + 1_001));
        assert!(ChunkWriter::default().finish().is_none());
    }

    #[test]
    fn keys_are_per_endpoint_and_short() {
        let a = Keys::new("https://pc-a:9440");
        let b = Keys::new("https://pc-b:9440");
        assert_ne!(a.manifest(), b.manifest());
        assert_eq!(a.chunk(7), format!("{}/chunk/7", a.prefix));
        assert!(a.chunk(u32::MAX).len() < 64);
    }
}
