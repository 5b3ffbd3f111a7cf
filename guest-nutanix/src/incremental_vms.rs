//! The VM collection of option `incremental`, as [`crate::incremental`]
//! decides it: from the cache in the collector's `state` and the changes
//! when the cache can be trusted, fully (refilling the cache) otherwise.

use crate::emission::Emitter;
use crate::incremental::{self, CacheApi, ChunkWriter, Keys, Manifest};
use crate::listing::{Lister, Observer};
use crate::normalize::{self, Context};
use crate::prism::{total_keeps_changing, Api, CallError, Client, Log, Query};
use crate::record::CloudService;
use crate::usage;
use crate::v3::{Item, Kind};
use crate::v4;
use crate::{Error, Level, Sink, State, Transport};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};

/// (The cache is never filled from a Prism Element's v2.0 list: option
/// `incremental` is set aside there, so `Api::V2` never reaches this
/// module.)
impl From<CacheApi> for Api {
    fn from(a: CacheApi) -> Api {
        match a {
            CacheApi::V3 => Api::V3,
            CacheApi::V4 => Api::V4,
        }
    }
}

/// Why an incremental VM collection did not go on.
enum Abort {
    /// Collect fully instead, for this reason.
    Full(String),
    /// The call fails (credentials, permissions).
    Fatal(Error),
}

/// The cache being filled by a full VM collection.
struct Capture<'c, 's> {
    state: &'c mut Option<&'s mut dyn State>,
    keys: Keys,
    writer: ChunkWriter,
    chunks: u32,
    watermark: Option<String>,
    failed: Vec<(String, String)>,
    /// Why the cache cannot be kept (a state write failed).
    broken: Option<String>,
}

impl Observer for Capture<'_, '_> {
    /// Adds a VM to the cache.
    fn normalized(&mut self, cs: &CloudService) {
        self.watermark = incremental::newest(self.watermark.take(), cs.data.get("updated_at").and_then(Value::as_str));
        if self.broken.is_some() {
            return;
        }
        if let Some(chunk) = self.writer.push(&incremental::encode(cs)) {
            let key = self.keys.chunk(self.chunks);
            self.chunks += 1;
            if let Err(e) = state_set(self.state, &key, &chunk) {
                self.broken = Some(e);
            }
        }
    }

    fn failed(&mut self, id: String, message: &str) {
        self.failed.push((id, message.to_string()));
    }
}

/// The collector's state, where the cache lives (`None` outside `collect`).
pub struct VmCache<'s> {
    state: Option<&'s mut dyn State>,
    /// The state keys of the endpoint's cache (set by `collect_vms`).
    keys: Keys,
}

impl<'s> VmCache<'s> {
    pub fn new(state: Option<&'s mut dyn State>) -> Self {
        VmCache { state, keys: Keys::new("") }
    }

    /// The collector's state (the deletion guard keeps its counts there too).
    pub fn state(&mut self) -> Option<&mut dyn State> {
        match &mut self.state {
            Some(s) => Some(&mut **s),
            None => None,
        }
    }

    /// VMs with option `incremental`: from the cache and the changes when
    /// it can be trusted, fully (refilling the cache) otherwise.
    pub fn collect_vms<T: Transport, S: Sink>(&mut self, c: &mut Client<'_, T>, lister: &mut Lister, out: &mut Emitter<'_, S>, ctx: &Context) -> Result<(), Error> {
        let inc = c.opts.incremental.unwrap_or_default();
        self.keys = Keys::new(&c.base_url());
        let keys = self.keys.clone();
        let fingerprint = incremental::fingerprint(ctx, c.opts.api_version);
        let (old, unreadable) = match state_get(&mut self.state, &keys.manifest()) {
            Ok(Some(text)) => match serde_json::from_str::<Manifest>(&text) {
                Ok(m) => (Some(m), None),
                Err(e) => (None, Some(format!("the cached manifest is unreadable: {e}"))),
            },
            Ok(None) => (None, None),
            Err(e) => (None, Some(format!("state unavailable: {e}"))),
        };
        let old_chunks = old.as_ref().map_or(0, |m| m.chunks);
        let reason = match unreadable.map(Err).unwrap_or_else(|| incremental::plan(old, &fingerprint, &inc)) {
            Ok(m) => match self.vms_incremental(c, lister, out, ctx, m) {
                Ok(()) => return Ok(()),
                Err(Abort::Fatal(e)) => return Err(e),
                Err(Abort::Full(reason)) => reason,
            },
            Err(reason) => reason,
        };
        out.log(Level::Info, "incremental: collecting all VMs", &[("reason", &reason)]);
        self.vms_full(c, lister, out, ctx, fingerprint, old_chunks)
    }

    /// A full VM collection that refills the cache.
    fn vms_full<T: Transport, S: Sink>(&mut self, c: &mut Client<'_, T>, lister: &mut Lister, out: &mut Emitter<'_, S>, ctx: &Context, fingerprint: String, old_chunks: u32) -> Result<(), Error> {
        let keys = &self.keys.clone();
        // No cache while it is rewritten.
        let _ = state_delete(&mut self.state, &keys.manifest());
        lister.listing_incomplete = false;
        lister.vm_api = None;
        let mut cap = Capture { state: &mut self.state, keys: keys.clone(), writer: ChunkWriter::default(), chunks: 0, watermark: None, failed: Vec::new(), broken: None };
        lister.list_services(c, out, Kind::Vm, ctx, Some(&mut cap))?;
        if cap.broken.is_none()
            && let Some(chunk) = std::mem::take(&mut cap.writer).finish()
        {
            if let Err(e) = state_set(cap.state, &keys.chunk(cap.chunks), &chunk) {
                cap.broken = Some(e);
            }
            cap.chunks += 1;
        }
        let Capture { chunks, watermark, failed, broken, .. } = cap;
        for i in chunks..old_chunks {
            let _ = state_delete(&mut self.state, &keys.chunk(i));
        }
        let not_kept = if let Some(e) = broken {
            Some(format!("a state write failed: {e}"))
        } else if lister.listing_incomplete {
            Some("the VM list lost pages".to_string())
        } else if out.stopped {
            Some("the host stopped the collection".to_string())
        } else {
            None
        };
        if let Some(why) = not_kept {
            out.log(Level::Warn, "incremental: cache not kept, the next run is full as well", &[("reason", &why)]);
            return Ok(());
        }
        let manifest = Manifest {
            format: incremental::FORMAT,
            guest: env!("CARGO_PKG_VERSION").into(),
            fingerprint,
            api: if lister.vm_api == Some(Api::V4) { CacheApi::V4 } else { CacheApi::V3 },
            watermark: watermark.unwrap_or_else(|| incremental::format_time(0)),
            chunks,
            runs_since_full: 0,
            failed,
        };
        self.write_manifest(out, &manifest);
        Ok(())
    }

    fn write_manifest(&mut self, log: &mut dyn Log, m: &Manifest) {
        let text = serde_json::to_string(m).unwrap_or_default();
        if let Err(e) = state_set(&mut self.state, &self.keys.manifest(), &text) {
            log.log(Level::Warn, "incremental: cache not kept, the next run is full as well", &[("reason", &format!("a state write failed: {e}"))]);
        }
    }

    /// The incremental run proper; `Abort::Full` before anything was
    /// emitted or changed.
    fn vms_incremental<T: Transport, S: Sink>(&mut self, c: &mut Client<'_, T>, lister: &mut Lister, out: &mut Emitter<'_, S>, ctx: &Context, m: Manifest) -> Result<(), Abort> {
        let keys = &self.keys.clone();
        let inc = c.opts.incremental.unwrap_or_default();
        let api = Api::from(m.api);
        let since = incremental::since(&m.watermark, inc.overlap_s).ok_or_else(|| Abort::Full("the cached watermark is not a time".into()))?;
        let lookups = match api {
            Api::V4 => lister.lookups(c, out).map_err(Abort::Fatal)?.clone(),
            Api::V3 | Api::V2 => v4::Lookups::default(),
        };
        // All ids first, then the changes: a VM created in between is a
        // change, not a VM missing from the cache.
        let ids = list_vm_ids(c, lister, out, api)?;
        let mut changed: BTreeMap<String, CloudService> = BTreeMap::new();
        let mut failed: Vec<(String, String)> = Vec::new();
        list_strict(c, lister, out, api, &Query::ChangedSince(since.clone()), |raw| {
            let raw = match api {
                Api::V3 | Api::V2 => Ok(raw),
                Api::V4 => v4::to_v3(Kind::Vm, &raw.into_value(), &lookups).map(Item::from),
            };
            let id = raw.as_ref().ok().and_then(Item::uuid);
            match raw.and_then(|r| normalize::service_of(Kind::Vm, ctx, r)) {
                Ok(cs) => {
                    changed.insert(cs.resource_id.clone(), cs);
                }
                Err(msg) => failed.push((id.unwrap_or_default(), msg)),
            }
        })?;

        // Pass 1: which listed VMs the cache holds.
        let mut cached = HashSet::new();
        for i in 0..m.chunks {
            let chunk = match state_get(&mut self.state, &keys.chunk(i)) {
                Ok(Some(c)) => c,
                Ok(None) => return Err(Abort::Full(format!("cache chunk {i} is missing"))),
                Err(e) => return Err(Abort::Full(format!("state unavailable: {e}"))),
            };
            cached.extend(chunk.lines().filter_map(incremental::line_id).filter(|id| ids.contains(*id)).map(str::to_string));
        }
        let failed_now: HashSet<&str> = failed.iter().map(|(id, _)| id.as_str()).collect();
        let still_failed: Vec<(String, String)> = m
            .failed
            .iter()
            .filter(|(id, _)| ids.contains(id) && !changed.contains_key(id) && !failed_now.contains(id.as_str()))
            .cloned()
            .collect();
        let missing = ids
            .iter()
            .filter(|id| !cached.contains(*id) && !changed.contains_key(*id) && !failed_now.contains(id.as_str()) && !still_failed.iter().any(|(f, _)| f == *id))
            .count();
        if missing > 0 {
            return Err(Abort::Full(format!("{missing} listed VMs are neither cached nor changed since {since}")));
        }
        out.log(
            Level::Info,
            "incremental: VMs from the cache and the changes",
            &[("listed", &ids.len().to_string()), ("changed", &changed.len().to_string()), ("since", &since)],
        );

        // Pass 2: emit, and rewrite the chunks that change. The manifest
        // goes first, so an interrupted run leaves no half cache.
        let _ = state_delete(&mut self.state, &keys.manifest());
        let mut watermark = Some(m.watermark.clone());
        for cs in changed.values() {
            watermark = incremental::newest(watermark, cs.data.get("updated_at").and_then(Value::as_str));
        }
        let mut broken: Option<String> = None;
        let mut chunks = m.chunks;
        for i in 0..m.chunks {
            let chunk = match state_get(&mut self.state, &keys.chunk(i)) {
                Ok(Some(c)) => c,
                Ok(None) | Err(_) => {
                    broken.get_or_insert_with(|| format!("cache chunk {i} vanished during the run"));
                    String::new()
                }
            };
            let mut kept: Vec<String> = Vec::new();
            let mut modified = false;
            for line in chunk.lines() {
                let Some(id) = incremental::line_id(line) else {
                    modified = true;
                    continue;
                };
                if let Some(cs) = changed.remove(id) {
                    kept.push(incremental::encode(&cs));
                    modified = true;
                    out.push_service(cs);
                } else if !ids.contains(id) {
                    modified = true;
                } else {
                    match incremental::decode(line) {
                        Ok(cs) => {
                            kept.push(line.to_string());
                            out.push_service(cs);
                        }
                        Err(e) => {
                            // Unreadable cache: report it; the next run is full.
                            broken.get_or_insert_with(|| e.clone());
                            out.push_error(Kind::Vm, format!("VM {id} could not be read from the incremental cache: {e}"));
                        }
                    }
                }
            }
            if modified
                && broken.is_none()
                && let Err(e) = state_set(&mut self.state, &keys.chunk(i), &kept.join("\n"))
            {
                broken = Some(e);
            }
        }
        // New VMs (and changed ones the cache did not hold) go to new chunks.
        let mut writer = ChunkWriter::default();
        for (_, cs) in std::mem::take(&mut changed) {
            if let Some(chunk) = writer.push(&incremental::encode(&cs))
                && broken.is_none()
            {
                if let Err(e) = state_set(&mut self.state, &keys.chunk(chunks), &chunk) {
                    broken = Some(e);
                }
                chunks += 1;
            }
            out.push_service(cs);
        }
        if let Some(chunk) = writer.finish()
            && broken.is_none()
        {
            if let Err(e) = state_set(&mut self.state, &keys.chunk(chunks), &chunk) {
                broken = Some(e);
            }
            chunks += 1;
        }
        for (_, msg) in still_failed.iter().chain(failed.iter()) {
            out.push_error(Kind::Vm, msg.clone());
        }
        if let Some(why) = broken.or_else(|| out.stopped.then(|| "the host stopped the collection".to_string())) {
            out.log(Level::Warn, "incremental: cache not kept, the next run is full", &[("reason", &why)]);
            return Ok(());
        }
        let manifest = Manifest {
            watermark: watermark.unwrap_or(m.watermark.clone()),
            chunks,
            runs_since_full: m.runs_since_full + 1,
            failed: still_failed.into_iter().chain(failed.into_iter().filter(|(id, _)| !id.is_empty())).collect(),
            ..m
        };
        self.write_manifest(out, &manifest);
        Ok(())
    }
}

/// The ids of all VMs: v3 groups API, v4 `$select=extId`.
fn list_vm_ids<T: Transport, S: Sink>(c: &mut Client<'_, T>, lister: &mut Lister, out: &mut Emitter<'_, S>, api: Api) -> Result<HashSet<String>, Abort> {
    let mut ids = HashSet::new();
    match api {
        Api::V4 => {
            list_strict(c, lister, out, api, &Query::IdsOnly, |raw| {
                if let Some(id) = raw.into_value().get("extId").and_then(Value::as_str) {
                    ids.insert(id.to_string());
                }
            })?;
        }
        Api::V3 | Api::V2 => {
            let all = c
                .groups(out, Kind::Vm, |offset, length| usage::groups_request(Kind::Vm, ["vm_name"], offset, length), |page| usage::parse_page(Kind::Vm, page))
                .map_err(|e| Abort::Full(format!("VM ids (groups API) not read: {}", e.message())))?;
            ids.extend(all.into_keys());
        }
    }
    Ok(ids)
}

/// Pages through the VM list without error resources: a lost page
/// aborts (incremental collection then collects fully). A v4 list's first
/// page finds the `vmm` namespace's revision, as any v4 list's does.
fn list_strict<T: Transport, S: Sink>(c: &mut Client<'_, T>, lister: &mut Lister, out: &mut Emitter<'_, S>, api: Api, q: &Query, mut each: impl FnMut(Item)) -> Result<(), Abort> {
    let limit = match api {
        Api::V3 | Api::V2 => c.opts.page_size,
        Api::V4 => c.opts.page_size.min(v4::MAX_LIMIT),
    };
    let mut offset = 0u64;
    let mut pages = 0u64;
    let mut v4_path: Option<String> = None;
    loop {
        let fetched = match api {
            Api::V4 if v4_path.is_none() => match lister.v4_first_page(c, out, Kind::Vm, v4::list_path(Kind::Vm).unwrap_or_default(), q, limit) {
                Ok(Some((at, page))) => {
                    v4_path = Some(at);
                    Ok(page)
                }
                Ok(None) => return Err(Abort::Full("the VM list API is no longer offered".into())),
                Err(e) => Err(e),
            },
            _ => c.page(out, Kind::Vm, api, v4_path.as_deref(), q, offset, limit),
        };
        let page = match fetched {
            Ok(p) => p,
            Err(CallError::Fatal(e)) => return Err(Abort::Fatal(e.context("vms list"))),
            Err(CallError::NotFound { gateway: true, .. }) => return Err(Abort::Full("the VM list API is no longer offered".into())),
            Err(e) => return Err(Abort::Full(format!("a VM list page at offset {offset} failed: {}", e.into_error().message()))),
        };
        pages += 1;
        let n = page.entities.len() as u64;
        if let Some(t) = page.total.filter(|t| n == 0 && offset < *t) {
            // A silently lost page: the list would come up short.
            return Err(Abort::Full(format!("the VM list returned no entities at offset {offset} although its total is {t}")));
        }
        let total = page.total.unwrap_or(if n >= u64::from(limit) { offset + n + 1 } else { offset + n });
        for raw in page.entities {
            each(raw);
        }
        offset += n;
        if n == 0 || offset >= total {
            return Ok(());
        }
        if total_keeps_changing(pages, total, limit) {
            return Err(Abort::Full("the VM list's total keeps changing".into()));
        }
    }
}

fn state_get(state: &mut Option<&mut dyn State>, key: &str) -> Result<Option<String>, String> {
    match state {
        Some(s) => s.get(key),
        None => Ok(None),
    }
}

fn state_set(state: &mut Option<&mut dyn State>, key: &str, value: &str) -> Result<(), String> {
    match state {
        Some(s) => s.set(key, value),
        None => Err("no state".into()),
    }
}

fn state_delete(state: &mut Option<&mut dyn State>, key: &str) -> Result<(), String> {
    match state {
        Some(s) => s.delete(key),
        None => Ok(()),
    }
}
