//! Listing the kinds: which API each kind is read through (option
//! `api_version`), page by page, with lost pages as error resources.
//!
//! `auto` asks for the v4 cluster list first; the gateway's 404 at every
//! revision means a Prism Central without v4, and everything uses v3. With
//! v4, each kind uses its v4 endpoint, falling back to v3 for a kind whose
//! v4 endpoint the gateway answers 404 (the matrix is decided per kind, per
//! run). A 404 in the service's own error shape is the service refusing
//! the list, not an API missing: an error like any other, never a silent
//! fallback. Each namespace's revision is negotiated on its first list
//! ([`v4::REVISIONS`], newest first: all asked at once, the newest that
//! answers used) and kept for the run (logged, and listed by
//! [`Lister::revisions`]). Once the cluster list is read, the first page
//! of every list the run will read is read ahead, all at once
//! ([`Lister::read_ahead`]); the lists are still handed on one after
//! another, in the same order. A list's windows of pages are pipelined:
//! the next window is started ([`Client::start_ahead`], the host's
//! `start-many`) before one is handed on, so Prism is read while the
//! guest parses and emits; what a reading that ends early read ahead is
//! dropped (a second reading reads afresh). v4 entities go through [`v4::to_v3`]
//! so normalization is one code path; VMs need the v4 category, host and
//! subnet lists for names, and those lists are read at most once a run for
//! both uses (an answer of "not offered" too). Volume groups go through v3 while it
//! is offered (its list carries their disks and attachments), categories
//! through v4's one list or v3's keys and each key's values.
//!
//! A lost page becomes an error resource and the next page is tried; a lost
//! first page of a list that must not fail (the cluster list) fails the call.

use crate::config::ApiChoice;
use crate::emission::Emitter;
use crate::normalize::Context;
use crate::prism::{page_request, percent_encode, total_keeps_changing, Api, CallError, Client, Page, Query, Request};
use crate::record::CloudService;
use crate::v3::{Item, Kind};
use crate::v2;
use crate::v4;
use crate::prism::Log;
use crate::{Error, Level, Sink, Transport};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// How a listing ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Listed {
    Done,
    /// The v4 endpoint answered 404 on its first page: not offered.
    NotOffered,
}

/// What a listing that fills the incremental cache wants to know of each
/// VM (see `incremental_vms`).
pub trait Observer {
    fn normalized(&mut self, cs: &CloudService);
    fn failed(&mut self, id: String, message: &str);
}

/// What the run has learned about the lists so far.
pub struct Lister {
    /// Whether Prism offers v4 at all (decided by the first list).
    v4_offered: bool,
    /// Names v4 references lack (filled before v4 VMs are listed).
    lookups: v4::Lookups,
    lookups_filled: bool,
    /// v4 lists already read this run, by path (`None`: not offered; see
    /// `v4_list_once`).
    v4_read: BTreeMap<String, Option<Vec<Value>>>,
    /// The revision each v4 namespace is read at (`None`: the namespace is
    /// not offered at any).
    revisions: BTreeMap<String, Option<&'static str>>,
    /// A list lost a page (or more) since this was last reset.
    pub listing_incomplete: bool,
    /// The API the VM list was last read through.
    pub vm_api: Option<Api>,
    /// v4 lists read ahead once their namespace's revision is found (on
    /// an earlier list of the namespace): (namespace, kind, path).
    waiting: Vec<(String, Kind, &'static str)>,
    /// The endpoint is a Prism Element (its cluster's uuid): every list
    /// goes through v2.0 ([`crate::v2`]).
    pub prism_element: Option<String>,
}

impl Default for Lister {
    fn default() -> Self {
        Lister {
            v4_offered: true,
            lookups: v4::Lookups::default(),
            lookups_filled: false,
            v4_read: BTreeMap::new(),
            revisions: BTreeMap::new(),
            listing_incomplete: false,
            vm_api: None,
            waiting: Vec::new(),
            prism_element: None,
        }
    }
}

impl Lister {
    /// The v4 revision each namespace read this run was read at (`None`:
    /// not offered).
    pub fn revisions(&self) -> &BTreeMap<String, Option<&'static str>> {
        &self.revisions
    }

    /// Whether v4 may be offered (`false` once the gateway answered 404 to
    /// the v4 cluster list at every revision).
    pub fn v4_offered(&self) -> bool {
        self.v4_offered
    }

    /// The names v4 VMs need, filled once.
    pub fn lookups<T: Transport, S: Sink>(&mut self, c: &mut Client<'_, T>, out: &mut Emitter<'_, S>) -> Result<&v4::Lookups, Error> {
        if !self.lookups_filled {
            self.fill_lookups(c, out)?;
        }
        Ok(&self.lookups)
    }

    /// Lists `kind` and emits its CloudServices; `observer` (a full VM
    /// collection filling the incremental cache) sees each VM.
    pub fn list_services<'e, T: Transport, S: Sink>(
        &mut self,
        c: &mut Client<'_, T>,
        out: &mut Emitter<'e, S>,
        kind: Kind,
        ctx: &Context,
        mut observer: Option<&mut dyn Observer>,
    ) -> Result<(), Error> {
        let v2 = self.prism_element.is_some();
        self.list_kind(c, out, kind, false, |out, raw| {
            let id = if observer.is_some() { raw.uuid() } else { None };
            match crate::operations::service_of(kind, ctx, raw) {
                Ok(mut cs) => {
                    if v2 {
                        v2::unknown_fields(kind, &mut cs.data);
                    }
                    if let Some(o) = observer.as_deref_mut() {
                        o.normalized(&cs);
                    }
                    out.push_service(cs)
                }
                Err(msg) => {
                    if let (Some(o), Some(id)) = (observer.as_deref_mut(), id) {
                        o.failed(id, &msg);
                    }
                    out.push_error(kind, msg)
                }
            }
        })
    }

    /// Lists `kind` through v4 or v3 as the option and the endpoint allow,
    /// handing every entity (v3-shaped) to `each`.
    pub fn list_kind<'e, T: Transport, S: Sink>(
        &mut self,
        c: &mut Client<'_, T>,
        out: &mut Emitter<'e, S>,
        kind: Kind,
        first_page_fatal: bool,
        mut each: impl FnMut(&mut Emitter<'e, S>, Item),
    ) -> Result<(), Error> {
        if let Some(pe) = self.prism_element.clone() {
            return self.list_v2(c, out, kind, &pe, first_page_fatal, each);
        }
        if kind == Kind::VolumeGroup {
            return self.list_volume_groups(c, out, first_page_fatal, each);
        }
        let api_version = c.opts.api_version;
        if self.tries_v4(api_version, kind) {
            // VMs need names from these lists; protection policies the
            // category names (their categories are references).
            if matches!(kind, Kind::Vm | Kind::ProtectionPolicy) && !self.lookups_filled {
                self.fill_lookups(c, out)?;
            }
            let listed = if matches!(kind, Kind::Host | Kind::Subnet | Kind::Category) {
                // Read once: VMs need their names too.
                match self.v4_list_once(c, out, kind, None, first_page_fatal)? {
                    Some(raws) => {
                        for raw in raws {
                            match v4::to_v3(kind, &raw, &self.lookups) {
                                Ok(v3) => each(out, v3.into()),
                                Err(msg) => out.push_error(kind, msg),
                            }
                        }
                        Listed::Done
                    }
                    None => Listed::NotOffered,
                }
            } else {
                let lookups = std::mem::take(&mut self.lookups);
                let listed = self.list_all(c, out, kind, Api::V4, None, first_page_fatal, |out, raw| match v4::to_v3(kind, &raw.into_value(), &lookups) {
                    Ok(v3) => each(out, v3.into()),
                    Err(msg) => out.push_error(kind, msg),
                });
                self.lookups = lookups;
                listed?
            };
            match listed {
                Listed::Done => {
                    if kind == Kind::Vm {
                        self.vm_api = Some(Api::V4);
                    }
                    return Ok(());
                }
                Listed::NotOffered if api_version == ApiChoice::V4 => {
                    let msg = format!(
                        "{} list: option api_version=v4, but this Prism Central does not offer {} (its gateway answers 404 at {})",
                        kind.plural(),
                        v4::list_path(kind).unwrap_or_default(),
                        self.tried(v4::list_path(kind).unwrap_or_default())
                    );
                    if first_page_fatal {
                        return Err(Error::NotFound(msg));
                    }
                    out.push_error(kind, msg);
                    return Ok(());
                }
                Listed::NotOffered => {
                    if kind == Kind::Cluster {
                        self.v4_offered = false;
                    }
                    out.log(Level::Info, "v4 API not offered: using v3", &[("kind", kind.plural()), ("path", v4::list_path(kind).unwrap_or_default())]);
                }
            }
        }
        if !kind.has_v3() {
            let msg = match api_version {
                ApiChoice::V3 => format!("{} have no v3 API (option api_version=v3)", kind.plural()),
                _ => format!("{} need the v4 API {}, which this Prism Central does not offer", kind.plural(), v4::list_path(kind).unwrap_or_default()),
            };
            if first_page_fatal {
                return Err(Error::NotFound(msg));
            }
            out.push_error(kind, msg);
            return Ok(());
        }
        if kind == Kind::Category {
            return self.list_v3_categories(c, out, each);
        }
        if kind == Kind::Vm {
            self.vm_api = Some(Api::V3);
        }
        self.list_all(c, out, kind, Api::V3, None, first_page_fatal, each).map(|_| ())
    }

    /// A Prism Element's list of `kind` through v2.0 (`pe`: its cluster's
    /// uuid), each entity adapted ([`v2::adapt`]); a kind v2.0 does not
    /// serve is an error resource, as a v4-only kind on a Prism Central
    /// without v4.
    fn list_v2<'e, T: Transport, S: Sink>(
        &mut self,
        c: &mut Client<'_, T>,
        out: &mut Emitter<'e, S>,
        kind: Kind,
        pe: &str,
        first_page_fatal: bool,
        mut each: impl FnMut(&mut Emitter<'e, S>, Item),
    ) -> Result<(), Error> {
        if v2::list_path(kind).is_none() {
            let msg = v2::not_served(kind);
            if first_page_fatal {
                return Err(Error::NotFound(msg));
            }
            out.push_error(kind, msg);
            return Ok(());
        }
        self.list_all(c, out, kind, Api::V2, None, first_page_fatal, |out, raw| match v2::adapt(kind, &raw.into_value(), pe) {
            Ok(v) => each(out, v.into()),
            Err(msg) => out.push_error(kind, msg),
        })
        .map(|_| ())
    }

    /// Whether the endpoint is a Prism Element: `GET` [`v2::CLUSTER_PATH`]
    /// (see [`crate::v2`]). `Ok(Ok(cluster))`: it is (the v2.0 cluster,
    /// and every list goes through v2.0 from now on); `Ok(Err(why))`: it is
    /// not; `Err`: the call must fail (credentials, host policy).
    pub fn detect_prism_element<T: Transport, S: Sink>(&mut self, c: &mut Client<'_, T>, out: &mut Emitter<'_, S>) -> Result<Result<Value, String>, Error> {
        let answer = c.call(out, &crate::prism::Request::get(v2::CLUSTER_PATH.to_string()), crate::prism::json_body);
        let body = match answer {
            Ok(body) => body,
            Err(CallError::Fatal(e)) => return Err(e.context("Prism Element v2.0 cluster")),
            Err(e) => return Ok(Err(e.into_error().message().to_string())),
        };
        if let Err(why) = v2::is_prism_element(&body) {
            return Ok(Err(why));
        }
        self.prism_element = body.get("uuid").and_then(Value::as_str).map(str::to_string);
        Ok(Ok(body))
    }

    /// Whether `kind` is read through v4 first (option `api_version`,
    /// and with `auto` whether this Prism Central offers v4 at all).
    fn tries_v4(&self, api_version: ApiChoice, kind: Kind) -> bool {
        v4::list_path(kind).is_some()
            && match api_version {
                ApiChoice::V3 => false,
                ApiChoice::V4 => true,
                ApiChoice::Auto => self.v4_offered,
            }
    }

    /// Reads ahead, all at once, the first page of every list `kinds`
    /// will read after the cluster list (called once that is read: it
    /// tells whether v4 is offered), in the order they will be read: each
    /// list's first page then comes from what was read ahead
    /// ([`Client::read_ahead`]), and the records still go out kind after
    /// kind. A v4 namespace whose revision is not known yet is probed at
    /// every revision at once on its first list; its other lists are read
    /// ahead once that one has found the revision. With `incremental`, the
    /// VMs' lists are left to the incremental collection (whether it reads
    /// them depends on its cache).
    pub fn read_ahead<T: Transport>(&mut self, c: &mut Client<'_, T>, kinds: &[Kind], incremental: bool) {
        if self.prism_element.is_some() {
            // A Prism Element: the v2.0 lists' first pages (VM disks come
            // with the VM list).
            let mut lists: Vec<Kind> = Vec::new();
            for &k in kinds {
                let k = if k == Kind::VmDisk { Kind::Vm } else { k };
                if v2::list_path(k).is_some() && !lists.contains(&k) {
                    lists.push(k);
                }
            }
            let reqs: Vec<Request> = lists.into_iter().map(|k| page_request(k, Api::V2, None, &Query::All, 0, c.opts.page_size)).collect();
            c.read_ahead(&reqs);
            c.fetch_ahead();
            return;
        }
        let api_version = c.opts.api_version;
        let v3_limit = c.opts.page_size;
        let v4_limit = v3_limit.min(v4::MAX_LIMIT);
        // The lists in the order they will be read: a v3 first page, or a
        // v4 list (kind, path).
        let mut lists: Vec<Result<Request, (Kind, &'static str)>> = Vec::new();
        for &kind in kinds {
            let kind = match kind {
                Kind::Cluster => continue,
                // Disks come with the VM list.
                Kind::VmDisk if kinds.contains(&Kind::Vm) => continue,
                Kind::VmDisk => Kind::Vm,
                // And guest tools too.
                Kind::GuestTools if kinds.contains(&Kind::Vm) || kinds.contains(&Kind::VmDisk) => continue,
                Kind::GuestTools => Kind::Vm,
                k => k,
            };
            if incremental && kind == Kind::Vm {
                continue;
            }
            if kind == Kind::VolumeGroup {
                lists.push(match api_version {
                    ApiChoice::V3 => Ok(page_request(kind, Api::V3, None, &Query::All, 0, v3_limit)),
                    ApiChoice::V4 => Err((kind, v4::VOLUME_GROUPS_PATH)),
                    // Whether v3 still lists them: a one-entity probe.
                    ApiChoice::Auto => Ok(page_request(kind, Api::V3, None, &Query::All, 0, 1)),
                });
            } else if self.tries_v4(api_version, kind) {
                // VMs need the names in these lists first.
                let mut v4_kinds = if matches!(kind, Kind::Vm | Kind::ProtectionPolicy) && !self.lookups_filled { vec![Kind::Category, Kind::Host, Kind::Subnet] } else { vec![] };
                v4_kinds.push(kind);
                for k in v4_kinds {
                    let path = v4::list_path(k).unwrap_or_default();
                    if !self.v4_read.contains_key(path) && !lists.iter().any(|l| matches!(l, Err((_, p)) if *p == path)) {
                        lists.push(Err((k, path)));
                    }
                }
            } else if kind.has_v3() {
                lists.push(Ok(page_request(kind, Api::V3, None, &Query::All, 0, v3_limit)));
            }
        }
        let mut reqs = Vec::new();
        let mut probing: Vec<&str> = Vec::new();
        for list in lists {
            let (kind, path) = match list {
                Ok(req) => {
                    reqs.push(req);
                    continue;
                }
                Err(v4_list) => v4_list,
            };
            let at = |r: &str| page_request(kind, Api::V4, Some(&v4::at_revision(path, r)), &Query::All, 0, v4_limit);
            let ns = v4::namespace(path);
            match self.revisions.get(ns) {
                Some(Some(r)) => reqs.push(at(r)),
                Some(None) => {}
                None if probing.contains(&ns) => self.waiting.push((ns.to_string(), kind, path)),
                None => {
                    // The namespace's first list: every revision at once.
                    probing.push(ns);
                    reqs.extend(v4::REVISIONS.iter().map(|r| at(r)));
                }
            }
        }
        c.read_ahead(&reqs);
        c.fetch_ahead();
    }

    /// Volume groups: through v3, whose list carries their disks and
    /// attachments, unless `api_version=v4` or (with `auto`) this Prism
    /// Central no longer offers the v3 list (a 404 to a one-entity probe);
    /// then through v4, where each volume group's disks and attachments are
    /// three more calls. `api_version=v3` never reads v4.
    fn list_volume_groups<'e, T: Transport, S: Sink>(
        &mut self,
        c: &mut Client<'_, T>,
        out: &mut Emitter<'e, S>,
        first_page_fatal: bool,
        mut each: impl FnMut(&mut Emitter<'e, S>, Item),
    ) -> Result<(), Error> {
        let kind = Kind::VolumeGroup;
        let v3 = match c.opts.api_version {
            ApiChoice::V3 => true,
            ApiChoice::V4 => false,
            ApiChoice::Auto => !matches!(c.page(out, kind, Api::V3, None, &Query::All, 0, 1), Err(CallError::Failed(Error::NotFound(_)))),
        };
        if v3 {
            return self.list_all(c, out, kind, Api::V3, None, first_page_fatal, each).map(|_| ());
        }
        if c.opts.api_version != ApiChoice::V4 {
            out.log(Level::Info, "v3 volume group list not offered: using v4", &[("path", v4::VOLUME_GROUPS_PATH)]);
        }
        let mut raws = Vec::new();
        let listed = self.list_all(c, out, kind, Api::V4, Some(v4::VOLUME_GROUPS_PATH), first_page_fatal, |_, item| raws.push(item.into_value()))?;
        let revision = self.revisions.get("volumes").copied().flatten().unwrap_or("v4.0");
        // Their external attachments name iSCSI clients: one list names them all.
        if !raws.is_empty() && self.lookups.iscsi_clients.is_empty() {
            match c.get_all(out, &v4::at_revision(v4::ISCSI_CLIENTS_PATH, revision)).map_err(CallError::into_error) {
                Ok(clients) => clients.iter().for_each(|cl| self.lookups.add_iscsi_client(cl)),
                Err(e) => out.push_error(kind, format!("the iSCSI client list was not read (external attachments stay unnamed): {}", e.message())),
            }
        }
        'groups: for mut raw in raws {
            if out.stopped {
                break;
            }
            let Some(id) = raw.get("extId").and_then(Value::as_str).map(str::to_string) else {
                out.push_error(kind, "malformed volume_group entity: missing extId".into());
                continue;
            };
            for (part, key) in v4::VOLUME_GROUP_PARTS {
                let path = format!("{}/{}/{part}", v4::at_revision(v4::VOLUME_GROUPS_PATH, revision), percent_encode(&id));
                match c.get_all(out, &path).map_err(CallError::into_error) {
                    Ok(items) => raw[key] = Value::Array(items),
                    Err(e) => {
                        out.push_error(kind, format!("volume group {id}: its {part} were not read: {}", e.message()));
                        continue 'groups;
                    }
                }
            }
            match v4::to_v3(kind, &raw, &self.lookups) {
                Ok(v3) => each(out, v3.into()),
                Err(msg) => out.push_error(kind, msg),
            }
        }
        if listed == Listed::NotOffered {
            let msg = "this Prism Central offers neither the v3 nor the v4 volume group list".to_string();
            if first_page_fatal {
                return Err(Error::NotFound(msg));
            }
            out.push_error(kind, msg);
        }
        Ok(())
    }

    /// v3 lists category keys; each key's values come from its own list.
    fn list_v3_categories<'e, T: Transport, S: Sink>(
        &mut self,
        c: &mut Client<'_, T>,
        out: &mut Emitter<'e, S>,
        mut each: impl FnMut(&mut Emitter<'e, S>, Item),
    ) -> Result<(), Error> {
        let mut keys = Vec::new();
        self.list_all(c, out, Kind::Category, Api::V3, None, false, |_, raw| {
            if let Some(k) = raw.into_value().get("name").and_then(Value::as_str) {
                keys.push(k.to_string());
            }
        })?;
        for key in keys {
            let path = format!("/api/nutanix/v3/categories/{}/list", percent_encode(&key));
            self.list_all(c, out, Kind::Category, Api::V3, Some(&path), false, &mut each)?;
        }
        Ok(())
    }

    /// Category, host and subnet names for v4 VMs (best effort: a list that
    /// fails leaves those names out, with an error resource saying so).
    fn fill_lookups<T: Transport, S: Sink>(&mut self, c: &mut Client<'_, T>, out: &mut Emitter<'_, S>) -> Result<(), Error> {
        let mut lk = v4::Lookups::default();
        for raw in self.v4_list_once(c, out, Kind::Category, None, false)?.unwrap_or_default() {
            lk.add_category(&raw);
        }
        for raw in self.v4_list_once(c, out, Kind::Host, None, false)?.unwrap_or_default() {
            lk.add_host(&raw);
        }
        for raw in self.v4_list_once(c, out, Kind::Subnet, None, false)?.unwrap_or_default() {
            lk.add_subnet(&raw);
        }
        self.lookups = lk;
        self.lookups_filled = true;
        Ok(())
    }

    /// The raw v4 list of `kind` (at `path`, else its list path), fetched
    /// at most once per run (hosts, subnets and categories serve both as
    /// kinds and as names for VMs); `None` when the endpoint is not
    /// offered, which is kept as well.
    fn v4_list_once<T: Transport, S: Sink>(
        &mut self,
        c: &mut Client<'_, T>,
        out: &mut Emitter<'_, S>,
        kind: Kind,
        path: Option<&str>,
        first_page_fatal: bool,
    ) -> Result<Option<Vec<Value>>, Error> {
        let key = path.or(v4::list_path(kind)).unwrap_or_default().to_string();
        if let Some(read) = self.v4_read.get(&key) {
            return Ok(read.clone());
        }
        let mut raws = Vec::new();
        let read = match self.list_all(c, out, kind, Api::V4, path, first_page_fatal, |_, raw| raws.push(raw.into_value()))? {
            Listed::Done => Some(raws),
            Listed::NotOffered => None,
        };
        self.v4_read.insert(key, read.clone());
        Ok(read)
    }

    /// The revisions tried for a v4 path, for messages.
    fn tried(&self, path: &str) -> String {
        match self.revisions.get(v4::namespace(path)) {
            Some(Some(r)) => r.to_string(),
            _ => v4::REVISIONS.join(", "),
        }
    }

    /// The first page of a v4 list at the namespace's revision, negotiated
    /// on the namespace's first list (newest first: the gateway's 404 moves
    /// on to the next). `Ok(None)`: the gateway answers 404 at every
    /// revision tried (the endpoint is not offered).
    pub fn v4_first_page<T: Transport, S: Sink>(
        &mut self,
        c: &mut Client<'_, T>,
        out: &mut Emitter<'_, S>,
        kind: Kind,
        path: &str,
        q: &Query,
        limit: u32,
    ) -> Result<Option<(String, Page)>, CallError> {
        let ns = v4::namespace(path).to_string();
        let known = self.revisions.get(&ns).copied();
        // This list's turn has come: not read ahead any more.
        self.waiting.retain(|(_, _, p)| *p != path);
        let candidates: Vec<&'static str> = match known {
            Some(Some(r)) => vec![r],
            Some(None) => return Ok(None),
            None => v4::REVISIONS.to_vec(),
        };
        let at = |revision: &str| v4::at_revision(path, revision);
        let probes: Vec<Request> = candidates.iter().map(|r| page_request(kind, Api::V4, Some(&at(r)), q, 0, limit)).collect();
        // Every revision at once (those read ahead already are not sent
        // again); the newest that answers is used, as one after another.
        c.read_ahead(&probes[1..]);
        let mut found = Ok(None);
        let mut chosen = None;
        for revision in candidates {
            match c.page(out, kind, Api::V4, Some(&at(revision)), q, 0, limit) {
                Ok(page) => {
                    chosen = Some(revision);
                    found = Ok(Some((at(revision), page)));
                    break;
                }
                Err(CallError::NotFound { gateway: true, .. }) => continue,
                Err(e) => {
                    found = Err(e);
                    break;
                }
            }
        }
        // The older revisions' answers are not needed.
        c.forget_ahead(&probes);
        if known.is_none() {
            let revision = match &found {
                Ok(Some(_)) => chosen,
                Ok(None) => None,
                Err(_) => return found,
            };
            self.revisions.insert(ns.clone(), revision);
            if let Some(revision) = revision {
                out.log(Level::Info, "v4 API revision in use", &[("namespace", &ns), ("revision", revision)]);
            }
            // The namespace's other lists can be read ahead now.
            let (later, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting).into_iter().partition(|(n, ..)| *n == ns);
            self.waiting = rest;
            if let Some(revision) = revision {
                let limit = c.opts.page_size.min(v4::MAX_LIMIT);
                let reqs: Vec<Request> = later.iter().map(|(_, k, p)| page_request(*k, Api::V4, Some(&v4::at_revision(p, revision)), &Query::All, 0, limit)).collect();
                c.read_ahead(&reqs);
            }
        }
        found
    }

    /// Pages through a list endpoint, handing every raw entity to `each`,
    /// each once. `first_page_fatal`: a lost first page fails the call
    /// (used for the cluster list, which everything else depends on).
    ///
    /// The first page comes first (it settles a v4 revision, the list's
    /// total and the page size the server keeps to; read ahead with the
    /// other kinds' first pages, [`Lister::read_ahead`]); then windows of
    /// pages read at once, handed on in order. A list that
    /// changes while it is read (its total moves, an entity comes twice, a
    /// page comes short) is read once more, handing on only the entities not
    /// seen yet; should it change again, an error resource says entities may
    /// be missing until the next run. With each window goes a read of the
    /// one entity before it: another entity there than the one read last
    /// means the list shifted (deletions and creations that leave the
    /// total as it was); a window and its check are option
    /// `page_concurrency` requests (7 pages and the check by default), one
    /// round trip under the host's per-origin cap. `page_concurrency: 1`
    /// reads one request at a time, without that check.
    #[expect(clippy::too_many_arguments, reason = "the list, its API and path, and where its entities go")]
    pub fn list_all<'e, T: Transport, S: Sink>(
        &mut self,
        c: &mut Client<'_, T>,
        out: &mut Emitter<'e, S>,
        kind: Kind,
        api: Api,
        path: Option<&str>,
        first_page_fatal: bool,
        mut each: impl FnMut(&mut Emitter<'e, S>, Item),
    ) -> Result<Listed, Error> {
        let mut seen = Seen::default();
        let why = match self.list_pass(c, out, (kind, api, path), first_page_fatal, false, &mut seen, &mut each)? {
            Pass::Listed(listed) => return Ok(listed),
            Pass::Changed(why) => why,
        };
        out.log(Level::Info, "list changed while it was read: reading it again", &[("kind", kind.plural()), ("why", &why)]);
        match self.list_pass(c, out, (kind, api, path), false, true, &mut seen, &mut each)? {
            Pass::Listed(listed) => Ok(listed),
            Pass::Changed(again) => {
                self.listing_incomplete = true;
                out.push_error(
                    kind,
                    format!(
                        "{} list changed while it was read, and again while it was read again ({why}; then {again}): entities created or deleted meanwhile may be missing until the next run",
                        kind.plural()
                    ),
                );
                Ok(Listed::Done)
            }
        }
    }

    /// One reading of a list (see [`Lister::list_all`]); `rereading`: the
    /// second, after which an entity seen before is no news. What it read
    /// ahead and did not use is forgotten when it ends, however it ends
    /// (a later reading reads afresh).
    #[expect(clippy::too_many_arguments, reason = "the list, how to read it, and where its entities go")]
    fn list_pass<'e, T: Transport, S: Sink>(
        &mut self,
        c: &mut Client<'_, T>,
        out: &mut Emitter<'e, S>,
        list: (Kind, Api, Option<&str>),
        first_page_fatal: bool,
        rereading: bool,
        seen: &mut Seen,
        each: &mut impl FnMut(&mut Emitter<'e, S>, Item),
    ) -> Result<Pass, Error> {
        let mut next = Vec::new();
        let pass = self.read_pass(c, out, list, first_page_fatal, rereading, seen, each, &mut next);
        c.forget_ahead(&next);
        pass
    }

    /// [`Lister::list_pass`]; `next`: the next window's requests, started
    /// while a window is handed on (the host reads them meanwhile).
    #[expect(clippy::too_many_arguments, reason = "the list, how to read it, and where its entities go")]
    fn read_pass<'e, T: Transport, S: Sink>(
        &mut self,
        c: &mut Client<'_, T>,
        out: &mut Emitter<'e, S>,
        (kind, api, path): (Kind, Api, Option<&str>),
        first_page_fatal: bool,
        rereading: bool,
        seen: &mut Seen,
        each: &mut impl FnMut(&mut Emitter<'e, S>, Item),
        next: &mut Vec<Request>,
    ) -> Result<Pass, Error> {
        let limit = match api {
            Api::V3 | Api::V2 => c.opts.page_size,
            Api::V4 => c.opts.page_size.min(v4::MAX_LIMIT),
        };
        let mut step = u64::from(limit);
        let mut offset: u64 = 0;
        // The list's size as known so far, and whether the server said it.
        let mut total: Option<u64> = None;
        let mut told = false;
        let mut first_total: Option<u64> = None;
        let mut changed: Option<String> = None;
        // The key of the last entity of the last page read.
        let mut last_key: Option<u128> = None;
        let mut pages: u64 = 0;
        // A v4 list's path at the revision its first page found.
        let mut v4_path: Option<String> = None;
        let what = format!("{} list", kind.plural());
        let end = |changed: Option<String>| Ok(changed.map_or(Pass::Listed(Listed::Done), Pass::Changed));
        loop {
            if out.stopped {
                return Ok(Pass::Listed(Listed::Done));
            }
            // With a window of pages, the entity just before it, to compare
            // with the last one read: another one there means the list
            // shifted. Not when asked for one request at a time
            // (page_concurrency 1).
            let probing = told && offset > 0 && c.opts.page_concurrency > 1;
            let probe = match last_key {
                Some(k) if probing => Some((offset - 1, k)),
                _ => None,
            };
            // The window and its check together are `page_concurrency`
            // requests: one round trip under the host's per-origin cap.
            let width = u64::from(c.opts.page_concurrency.max(1)) - u64::from(probe.is_some());
            let offsets: Vec<u64> = match total {
                Some(t) if told => (0..width.max(1)).map(|k| offset + k * step).take_while(|o| *o < t).collect(),
                _ => vec![offset],
            };
            let mut batch: Vec<(u64, u32)> = offsets.iter().map(|&o| (o, step as u32)).collect();
            batch.extend(probe.map(|(at, _)| (at, 1)));
            // The next window and its check, as this window would leave
            // the list: started before this one is handed on, so the host
            // reads it meanwhile. Its requests are this window's read ahead
            // next time round; what the list's turns make unused is
            // forgotten once that window is done.
            let this_window = std::mem::take(next);
            let list_path = if api == Api::V4 { v4_path.as_deref() } else { path };
            if let Some(t) = total
                && told
                && c.opts.page_concurrency > 1
                && (api != Api::V4 || list_path.is_some())
            {
                let at = offset + offsets.len() as u64 * step;
                let width = u64::from(c.opts.page_concurrency) - 1;
                if at < t {
                    *next = (0..width).map(|k| at + k * step).take_while(|o| *o < t).map(|o| page_request(kind, api, list_path, &Query::All, o, step as u32)).collect();
                    next.push(page_request(kind, api, list_path, &Query::All, at - 1, 1));
                    c.start_ahead(next);
                }
            }
            let mut fetched = match api {
                Api::V4 if v4_path.is_none() => {
                    let base = path.or(v4::list_path(kind)).unwrap_or_default().to_string();
                    match self.v4_first_page(c, out, kind, &base, &Query::All, limit) {
                        Ok(Some((at, page))) => {
                            v4_path = Some(at);
                            vec![Ok(page)]
                        }
                        Ok(None) => return Ok(Pass::Listed(Listed::NotOffered)),
                        Err(e) => vec![Err(e)],
                    }
                }
                Api::V4 => c.pages(out, kind, api, v4_path.as_deref(), &Query::All, &batch),
                Api::V3 | Api::V2 => c.pages(out, kind, api, path, &Query::All, &batch),
            };
            let unused: Vec<Request> = this_window.into_iter().filter(|r| !next.iter().any(|n| n.same_as(r))).collect();
            c.forget_ahead(&unused);
            if let Some((at, expected)) = probe
                && fetched.len() > offsets.len()
                && let Some(Ok(p)) = fetched.pop()
                && p.entities.first().and_then(entity_key) != Some(expected)
            {
                changed.get_or_insert_with(|| format!("another entity is at offset {at} than when it was read"));
            }
            for (o, fetched) in offsets.iter().copied().zip(fetched) {
                pages += 1;
                match fetched {
                    Ok(page) => {
                        let n = page.entities.len() as u64;
                        let known = page.total;
                        if let Some(k) = known {
                            match first_total {
                                None => first_total = Some(k),
                                Some(f) if f != k => {
                                    changed.get_or_insert_with(|| format!("its total went from {f} to {k}"));
                                }
                                Some(_) => {}
                            }
                        }
                        if pages == 1 && ((n > 0 && n < step && known.is_some_and(|k| k > n)) || n > step) {
                            // The server keeps its pages shorter (or longer)
                            // than asked: its size is the step.
                            step = n;
                        }
                        told = known.is_some();
                        // Without a total (v4 may omit it), a full page
                        // means there may be more.
                        let t = known.unwrap_or(if n >= step { o + n + 1 } else { o + n });
                        total = Some(t);
                        seen.page += 1;
                        last_key = page.entities.last().and_then(entity_key);
                        for raw in page.entities {
                            // An entity on an earlier page came again: the
                            // list shifted. Twice on one page is Prism's
                            // data, for normalization to report.
                            if let Some(key) = entity_key(&raw) {
                                let first_on = *seen.keys.entry(key).or_insert(seen.page);
                                if first_on != seen.page {
                                    if !rereading {
                                        changed.get_or_insert_with(|| "an entity came on two pages".to_string());
                                    }
                                    continue;
                                }
                            }
                            each(out, raw);
                        }
                        if n == 0 {
                            // An empty page ends the list; it is an error only
                            // when the server said there was more.
                            if known.is_some_and(|k| o < k) {
                                self.listing_incomplete = true;
                                out.push_error(kind, format!("{} list returned no entities at offset {o} although total_matches is {t}", kind.plural()));
                            }
                            return end(changed);
                        }
                        if n < step && o + n < t {
                            changed.get_or_insert_with(|| format!("the page at offset {o} came with {n} of {step} entities"));
                        }
                    }
                    Err(CallError::Fatal(e)) => return Err(e.context(&what)),
                    Err(e) => {
                        // A 404 after the first page, or in the service's own
                        // shape, is a list that failed.
                        let e = e.into_error();
                        if total.is_none() && first_page_fatal {
                            return Err(e.context(&format!("{what} failed")));
                        }
                        let at = match total {
                            Some(t) => format!("{} list page at offset {o} (of {t})", kind.plural()),
                            None => format!("{} list", kind.plural()),
                        };
                        self.listing_incomplete = true;
                        last_key = None;
                        out.push_error(kind, format!("{at} failed: {}", e.message()));
                        if total.is_none() {
                            // Without a first page the size of the list is unknown.
                            return end(changed);
                        }
                    }
                }
                offset = o + step;
            }
            let t = total.unwrap_or(0);
            if offset >= t {
                return end(changed);
            }
            // A server whose total keeps growing cannot keep us forever.
            if total_keeps_changing(pages, t, step as u32) {
                self.listing_incomplete = true;
                out.push_error(kind, format!("{} list stopped after {pages} pages: total_matches keeps changing", kind.plural()));
                return Ok(Pass::Listed(Listed::Done));
            }
        }
    }
}

/// How one reading of a list ended.
enum Pass {
    Listed(Listed),
    /// The list changed while it was read (why).
    Changed(String),
}

/// The entities a listing has handed on, by [`entity_key`], with the page
/// (counted across readings) each came on first.
#[derive(Default)]
struct Seen {
    keys: HashMap<u128, u64>,
    page: u64,
}

/// An entity's identity: its uuid (v3 `metadata.uuid`, v4 `extId`, v2.0
/// `uuid` or a storage container's `storage_container_uuid`) as a
/// number, or a 128-bit hash of an id that is not a uuid. `None`: no id.
fn entity_key(item: &Item) -> Option<u128> {
    let id = match item {
        Item::Value(v) => ["/extId", "/metadata/uuid", "/uuid", "/storage_container_uuid"].iter().find_map(|p| v.pointer(p).and_then(Value::as_str)).map(str::to_string),
        Item::Raw(_) => item.uuid(),
    }?;
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    if hex.len() == 32
        && let Ok(n) = u128::from_str_radix(&hex, 16)
    {
        return Some(n);
    }
    // FNV-1a, 128-bit.
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for b in id.bytes() {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000000001000000000000000000013B);
    }
    Some(h)
}
