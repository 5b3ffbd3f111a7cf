//! The collection: `init`, `verify`, `get_tasks`, `collect` over a
//! [`Transport`] and a [`Sink`].
//!
//! Order of work in `collect`: the cluster list first (it names the Prism
//! Central instance, which is the CloudForet `account`, and maps cluster
//! uuids to names) and the Regions it yields (in every task), then per
//! requested kind its CloudServiceType and its entities, page by page
//! (`offset`/`length`, until `total_matches`).
//!
//! API versions (option `api_version`): `auto` asks for the v4 cluster list
//! first; a 404 means a Prism Central without v4, and everything uses v3.
//! With v4, each kind uses its v4 endpoint, falling back to v3 for a kind
//! whose v4 endpoint answers 404 (the matrix is decided per kind, per run).
//! v4 entities go through [`v4::to_v3`] so normalization is one code path;
//! VMs need the v4 category, host and subnet lists for names.
//!
//! Failure policy:
//! - 401/403 or an egress denial: the whole call fails (typed error); what was
//!   already emitted stays emitted.
//! - 429 (honouring `Retry-After`), 5xx, timeouts, connection errors and
//!   unparsable (e.g. truncated) bodies: retried with exponential back-off;
//!   when retries run out the page becomes an ErrorResource and the next page
//!   is tried.
//! - A malformed entity becomes an ErrorResource; the rest of its page is kept.
//!
//! With option `incremental`, VMs are collected as [`incremental`] describes
//! (changes, all ids, the rest from the cache in `state`).

use crate::config::{self, ApiChoice, Options, Secret};
use crate::costs;
use crate::incremental::{self, CacheApi, ChunkWriter, Keys, Manifest};
use crate::record::CloudService;
use crate::usage;
use crate::normalize::{self, ClusterScan, Context};
use crate::record::{ErrorResource, Record};
use crate::v3::{self, Item, Kind, ListPage};
use crate::v4;
use crate::{Error, Flow, HttpRequest, Level, Method, Sink, State, Transport, TransportError, PROVIDER};
use serde_json::{json, Value};

/// Records per `emit` call.
pub const BATCH_SIZE: usize = 100;

/// Answer of `init`.
#[derive(Clone, Debug, PartialEq)]
pub struct Metadata {
    pub supported_resource_types: Vec<String>,
    pub supported_schedules: Vec<String>,
    pub supported_features: Vec<String>,
    pub options_schema: Value,
}

/// The guest's account of a collection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub emitted: u64,
    pub errors: u64,
}

pub fn init(options: &str) -> Result<Metadata, Error> {
    Options::parse(options)?;
    Ok(Metadata {
        supported_resource_types: vec![
            "inventory.CloudService".into(),
            "inventory.CloudServiceType".into(),
            "inventory.Region".into(),
        ],
        supported_schedules: vec!["hours".into()],
        supported_features: vec!["garbage_collection".into()],
        options_schema: config::options_schema(),
    })
}

/// One task per resource kind, so CloudForet can run them in parallel (VM
/// disks share the VMs' task, as they come from the same list); kinds the
/// `task_filter` excludes get no task, and its region codes limit every
/// task.
pub fn get_tasks(options: &str, secret: &str) -> Result<Vec<Value>, Error> {
    let opts = Options::parse(options)?;
    Secret::parse(secret)?;
    let filter = &opts.task_filter;
    let admitted: Vec<Kind> = opts
        .kinds
        .iter()
        .copied()
        .filter(|k| {
            let (group, ty) = normalize::group_and_type(*k);
            filter.admits(PROVIDER, group, ty)
        })
        .collect();
    // VM disks come from the VM list: with VMs, one task reads it once.
    let with_vms = admitted.contains(&Kind::Vm) && admitted.contains(&Kind::VmDisk);
    Ok(admitted
        .iter()
        .filter(|k| !(with_vms && **k == Kind::VmDisk))
        .map(|k| {
            let kinds: Vec<&str> = if with_vms && *k == Kind::Vm { vec!["vms", "vm_disks"] } else { vec![k.plural()] };
            let mut task = json!({"resource_type": "inventory.CloudService", "resource_kinds": kinds});
            if !filter.region_codes.is_empty() {
                task["region_codes"] = json!(filter.region_codes);
            }
            task
        })
        .collect())
}

/// Checks that Prism answers and accepts the credentials (one small list call).
pub fn verify<T: Transport, S: Sink>(t: &mut T, s: &mut S, options: &str, secret: &str) -> Result<(), Error> {
    let opts = Options::parse(options)?;
    let secret = Secret::parse(secret)?;
    let api = match opts.api_version {
        ApiChoice::V4 => Api::V4,
        ApiChoice::V3 | ApiChoice::Auto => Api::V3,
    };
    let mut c = Collector::new(t, s, opts, secret);
    match c.fetch_page(Kind::Cluster, api, None, &Query::All, 0, 1) {
        Ok(_) => Ok(()),
        Err(PageError::NotOffered) => Err(Error::NotFound("this Prism Central does not offer the v4 APIs (option api_version=v4)".into())),
        Err(PageError::Fatal(e) | PageError::Failed(e)) => Err(e),
    }
}

/// The REST API a list is read through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Api {
    V3,
    V4,
}

impl From<CacheApi> for Api {
    fn from(a: CacheApi) -> Api {
        match a {
            CacheApi::V3 => Api::V3,
            CacheApi::V4 => Api::V4,
        }
    }
}

/// What a list call asks for beyond a page.
enum Query {
    All,
    /// Entities changed at or after this time (incremental collection).
    ChangedSince(String),
    /// Only ids (v4 `$select=extId`).
    IdsOnly,
}

/// Why an incremental VM collection did not go on.
enum Abort {
    /// Collect fully instead, for this reason.
    Full(String),
    /// The call fails (credentials, permissions).
    Fatal(Error),
}

/// The cache being filled by a full VM collection.
#[derive(Default)]
struct Capture {
    writer: ChunkWriter,
    chunks: u32,
    watermark: Option<String>,
    failed: Vec<(String, String)>,
    /// Why the cache cannot be kept (a state write failed).
    broken: Option<String>,
}

/// One page, whichever API.
struct Page {
    total: Option<u64>,
    entities: Vec<Item>,
}

/// How a listing ended.
#[derive(Debug, PartialEq, Eq)]
enum Listed {
    Done,
    /// The v4 endpoint answered 404 on its first page: not offered.
    NotOffered,
}

pub fn collect<T: Transport, S: Sink>(
    t: &mut T,
    s: &mut S,
    st: &mut dyn State,
    options: &str,
    secret: &str,
    task_options: &str,
) -> Result<Summary, Error> {
    let opts = Options::parse(options)?;
    let secret = Secret::parse(secret)?;
    let kinds = config::parse_task_kinds(task_options)?.unwrap_or_else(|| opts.kinds.clone());
    let regions = config::parse_task_regions(task_options)?;
    let mut c = Collector::new(t, s, opts, secret);
    c.regions = regions;
    c.state = Some(st);
    let result = c.run(&kinds);
    // Whatever happened, what was collected is handed over.
    c.flush();
    result.map(|()| c.summary)
}

/// `cost-source.get-data`: the task day's cost lines of every VM (see
/// [`costs`]); a lost page becomes an error resource as in `collect`.
pub fn cost_data<T: Transport, S: Sink>(t: &mut T, s: &mut S, options: &str, secret: &str, task_options: &str) -> Result<Summary, Error> {
    let card = costs::RateCard::parse(options)?;
    let opts = Options::parse(options)?;
    let secret = Secret::parse(secret)?;
    let task = costs::CostTask::parse(task_options)?;
    let mut c = Collector::new(t, s, opts, secret);
    let result = c.run_costs(&card, &task.billed_date);
    c.flush();
    result.map(|()| c.summary)
}

enum PageError {
    /// The whole call must fail (credentials, permissions, policy).
    Fatal(Error),
    /// This page is lost; the collection goes on.
    Failed(Error),
    /// A v4 endpoint answered 404: this Prism Central does not offer it.
    NotOffered,
}

struct Collector<'a, T, S> {
    transport: &'a mut T,
    sink: &'a mut S,
    opts: Options,
    secret: Secret,
    buffer: Vec<Record>,
    summary: Summary,
    stopped: bool,
    /// Region codes (cluster names) this task is limited to.
    regions: Option<Vec<String>>,
    /// Whether Prism offers v4 at all (decided by the first list).
    v4_offered: bool,
    /// Names v4 references lack (filled before v4 VMs are listed).
    lookups: v4::Lookups,
    lookups_filled: bool,
    /// v4 lists already read this run (see `v4_list_once`).
    v4_read: std::collections::BTreeMap<Kind, Vec<Value>>,
    /// Entity uuid → `data.usage` (option `usage`).
    usage: std::collections::BTreeMap<String, Value>,
    /// The collector's state (incremental collection); `None` outside `collect`.
    state: Option<&'a mut dyn State>,
    /// A list lost a page (or more) since this was last reset.
    listing_incomplete: bool,
    /// The API the VM list was last read through.
    vm_api: Option<Api>,
    /// Set while a full VM collection fills the incremental cache.
    capture: Option<Capture>,
    /// Emit each VM's disks as their own resources (kind `vm_disks`).
    disks: bool,
    /// Emit the VMs themselves (off when only their disks were asked for).
    vms_out: bool,
}

impl<'a, T: Transport, S: Sink> Collector<'a, T, S> {
    fn new(transport: &'a mut T, sink: &'a mut S, opts: Options, secret: Secret) -> Self {
        Collector {
            transport,
            sink,
            opts,
            secret,
            buffer: Vec::with_capacity(BATCH_SIZE),
            summary: Summary::default(),
            stopped: false,
            regions: None,
            v4_offered: true,
            lookups: v4::Lookups::default(),
            lookups_filled: false,
            v4_read: std::collections::BTreeMap::new(),
            usage: std::collections::BTreeMap::new(),
            state: None,
            listing_incomplete: false,
            vm_api: None,
            capture: None,
            disks: false,
            vms_out: true,
        }
    }

    /// Lists `kind` through v4 or v3 as the option and the endpoint allow,
    /// handing every entity (v3-shaped) to `each`.
    fn list_kind(&mut self, kind: Kind, first_page_fatal: bool, mut each: impl FnMut(&mut Self, Item)) -> Result<(), Error> {
        if kind == Kind::VolumeGroup {
            return self.list_volume_groups(first_page_fatal, each);
        }
        let try_v4 = v4::list_path(kind).is_some()
            && match self.opts.api_version {
                ApiChoice::V3 => false,
                ApiChoice::V4 => true,
                ApiChoice::Auto => self.v4_offered,
            };
        if try_v4 {
            if kind == Kind::Vm && !self.lookups_filled {
                self.fill_lookups()?;
            }
            let listed = if matches!(kind, Kind::Host | Kind::Subnet) {
                // Read once: VMs need their names too.
                match self.v4_list_once(kind, first_page_fatal)? {
                    Some(raws) => {
                        for raw in raws {
                            match v4::to_v3(kind, &raw, &self.lookups) {
                                Ok(v3) => each(self, v3.into()),
                                Err(msg) => self.push_error(kind, msg),
                            }
                        }
                        Listed::Done
                    }
                    None => Listed::NotOffered,
                }
            } else {
                let lookups = std::mem::take(&mut self.lookups);
                let listed = self.list_all(kind, Api::V4, None, first_page_fatal, |c, raw| match v4::to_v3(kind, &raw.into_value(), &lookups) {
                    Ok(v3) => each(c, v3.into()),
                    Err(msg) => c.push_error(kind, msg),
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
                Listed::NotOffered if self.opts.api_version == ApiChoice::V4 => {
                    let msg = format!("option api_version=v4, but this Prism Central does not offer {}", v4::list_path(kind).unwrap_or_default());
                    if first_page_fatal {
                        return Err(Error::NotFound(msg));
                    }
                    self.push_error(kind, msg);
                    return Ok(());
                }
                Listed::NotOffered => {
                    if kind == Kind::Cluster {
                        self.v4_offered = false;
                    }
                    self.sink.log(Level::Info, "v4 API not offered: using v3", &[("kind", kind.plural()), ("path", v4::list_path(kind).unwrap_or_default())]);
                }
            }
        }
        if !kind.has_v3() {
            let msg = match self.opts.api_version {
                ApiChoice::V3 => format!("{} have no v3 API (option api_version=v3)", kind.plural()),
                _ => format!("{} need the v4 API {}, which this Prism Central does not offer", kind.plural(), v4::list_path(kind).unwrap_or_default()),
            };
            if first_page_fatal {
                return Err(Error::NotFound(msg));
            }
            self.push_error(kind, msg);
            return Ok(());
        }
        if kind == Kind::Category {
            return self.list_v3_categories(each);
        }
        if kind == Kind::Vm {
            self.vm_api = Some(Api::V3);
        }
        self.list_all(kind, Api::V3, None, first_page_fatal, each).map(|_| ())
    }

    /// Volume groups: through v3, whose list carries their disks and
    /// attachments, unless `api_version=v4` or (with `auto`) this Prism
    /// Central no longer offers the v3 list (a 404 to a one-entity probe);
    /// then through v4, where each volume group's disks and attachments are
    /// three more calls. `api_version=v3` never reads v4.
    fn list_volume_groups(&mut self, first_page_fatal: bool, mut each: impl FnMut(&mut Self, Item)) -> Result<(), Error> {
        let kind = Kind::VolumeGroup;
        let v3 = match self.opts.api_version {
            ApiChoice::V3 => true,
            ApiChoice::V4 => false,
            ApiChoice::Auto => !matches!(self.fetch_page(kind, Api::V3, None, &Query::All, 0, 1), Err(PageError::Failed(Error::NotFound(_)))),
        };
        if v3 {
            return self.list_all(kind, Api::V3, None, first_page_fatal, each).map(|_| ());
        }
        if self.opts.api_version != ApiChoice::V4 {
            self.sink.log(Level::Info, "v3 volume group list not offered: using v4", &[("path", v4::VOLUME_GROUPS_PATH)]);
        }
        let base = self.secret.endpoint.base_url();
        let listed = self.list_all(kind, Api::V4, Some(v4::VOLUME_GROUPS_PATH), first_page_fatal, |c, item| {
            let mut raw = item.into_value();
            let Some(id) = raw.get("extId").and_then(Value::as_str).map(str::to_string) else {
                c.push_error(kind, "malformed volume_group entity: missing extId".into());
                return;
            };
            for (part, key) in v4::VOLUME_GROUP_PARTS {
                let url = format!("{base}{}/{}/{part}", v4::VOLUME_GROUPS_PATH, percent_encode(&id));
                match crate::metrics::get_all(c.transport, &c.opts, &c.secret, &url) {
                    Ok(items) => raw[key] = Value::Array(items),
                    Err(e) => {
                        c.push_error(kind, format!("volume group {id}: its {part} were not read: {}", error_text(&e)));
                        return;
                    }
                }
            }
            match v4::to_v3(kind, &raw, &c.lookups) {
                Ok(v3) => each(c, v3.into()),
                Err(msg) => c.push_error(kind, msg),
            }
        })?;
        if listed == Listed::NotOffered {
            let msg = "this Prism Central offers neither the v3 nor the v4 volume group list".to_string();
            if first_page_fatal {
                return Err(Error::NotFound(msg));
            }
            self.push_error(kind, msg);
        }
        Ok(())
    }

    /// v3 lists category keys; each key's values come from its own list.
    fn list_v3_categories(&mut self, mut each: impl FnMut(&mut Self, Item)) -> Result<(), Error> {
        let mut keys = Vec::new();
        self.list_all(Kind::Category, Api::V3, None, false, |_, raw| {
            if let Some(k) = raw.into_value().get("name").and_then(Value::as_str) {
                keys.push(k.to_string());
            }
        })?;
        for key in keys {
            let path = format!("/api/nutanix/v3/categories/{}/list", percent_encode(&key));
            self.list_all(Kind::Category, Api::V3, Some(&path), false, &mut each)?;
        }
        Ok(())
    }

    /// Category, host and subnet names for v4 VMs (best effort: a list that
    /// fails leaves those names out, with an error resource saying so).
    fn fill_lookups(&mut self) -> Result<(), Error> {
        let mut lk = v4::Lookups::default();
        self.list_all(Kind::Vm, Api::V4, Some(v4::CATEGORIES_PATH), false, |_, raw| lk.add_category(&raw.into_value()))?;
        for raw in self.v4_list_once(Kind::Host, false)?.unwrap_or_default() {
            lk.add_host(&raw);
        }
        for raw in self.v4_list_once(Kind::Subnet, false)?.unwrap_or_default() {
            lk.add_subnet(&raw);
        }
        self.lookups = lk;
        self.lookups_filled = true;
        Ok(())
    }

    /// The raw v4 list of `kind`, fetched at most once per run (hosts and
    /// subnets serve both as kinds and as names for VMs); `None` when the
    /// endpoint is not offered.
    fn v4_list_once(&mut self, kind: Kind, first_page_fatal: bool) -> Result<Option<Vec<Value>>, Error> {
        if let Some(raws) = self.v4_read.get(&kind) {
            return Ok(Some(raws.clone()));
        }
        let mut raws = Vec::new();
        match self.list_all(kind, Api::V4, None, first_page_fatal, |_, raw| raws.push(raw.into_value()))? {
            Listed::Done => {
                self.v4_read.insert(kind, raws.clone());
                Ok(Some(raws))
            }
            Listed::NotOffered => Ok(None),
        }
    }

    fn run_costs(&mut self, card: &costs::RateCard, billed_date: &str) -> Result<(), Error> {
        let (ctx, _) = self.cluster_context()?;
        self.list_kind(Kind::Vm, false, |c, raw| match normalize::service_of(Kind::Vm, &ctx, raw) {
            Ok(vm) => {
                for cost in costs::vm_costs(&vm, card, billed_date) {
                    c.push(Record::Cost(cost));
                }
            }
            Err(msg) => c.push_error(Kind::Vm, msg),
        })
    }

    /// The cluster list: account and cluster names for every other kind.
    fn cluster_context(&mut self) -> Result<(Context, Vec<Value>), Error> {
        let mut clusters = Vec::new();
        self.list_kind(Kind::Cluster, true, |_, raw| clusters.push(raw.into_value()))?;
        let mut scan = ClusterScan::default();
        for raw in &clusters {
            scan.observe(raw);
        }
        let ctx = Context {
            account: Some(scan.prism_central_uuid.clone().unwrap_or_else(|| self.secret.endpoint.host.clone())),
            base_url: self.secret.endpoint.base_url(),
            cluster_names: scan.names,
        };
        self.sink.log(
            Level::Info,
            "cluster list read",
            &[("clusters", &ctx.cluster_names.len().to_string()), ("account", ctx.account.as_deref().unwrap_or(""))],
        );
        Ok((ctx, clusters))
    }

    fn run(&mut self, kinds: &[Kind]) -> Result<(), Error> {
        self.disks = kinds.contains(&Kind::VmDisk);
        let (ctx, mut clusters) = self.cluster_context()?;

        // Regions (one per Prism Element cluster) come with every task, so
        // a task for one kind still creates the regions its services name.
        let mut cluster_services = Vec::new();
        for raw in std::mem::take(&mut clusters) {
            match normalize::cluster(&ctx, raw) {
                Ok(Some((cs, region))) => {
                    self.push(Record::Region(region));
                    cluster_services.push(Ok(cs));
                }
                Ok(None) => {}
                Err(msg) => cluster_services.push(Err(msg)),
            }
        }

        if self.opts.usage {
            for kind in usage::KINDS.into_iter().filter(|k| kinds.contains(k)) {
                match self.read_usage(kind) {
                    Ok(u) => self.usage.extend(u),
                    Err(e) => self.push_error(kind, format!("{} usage (groups API) not read: {}", kind.api_kind(), error_text(&e))),
                }
                let (ns, metrics) = usage::definitions(kind);
                self.push(Record::Namespace(ns));
                for m in metrics {
                    self.push(Record::Metric(m));
                }
            }
        }
        for &kind in kinds {
            if self.stopped {
                break;
            }
            self.push(Record::CloudServiceType(normalize::cloud_service_type(kind)));
            if kind == Kind::Cluster {
                for cs in std::mem::take(&mut cluster_services) {
                    match cs {
                        Ok(cs) => self.push_service(cs),
                        Err(msg) => self.push_error(kind, msg),
                    }
                }
            } else if kind == Kind::VmDisk {
                // Disks come with the VM list: read here only when VMs
                // themselves were not asked for.
                if !kinds.contains(&Kind::Vm) {
                    self.vms_out = false;
                    let listed = if self.opts.incremental.is_some() { self.collect_vms(&ctx) } else { self.list_services(Kind::Vm, &ctx) };
                    self.vms_out = true;
                    listed?;
                }
            } else if kind == Kind::Vm && self.opts.incremental.is_some() {
                self.collect_vms(&ctx)?;
            } else {
                self.list_services(kind, &ctx)?;
            }
        }
        Ok(())
    }

    /// Lists `kind` and emits its CloudServices (filling the incremental
    /// cache when a full VM collection captures).
    fn list_services(&mut self, kind: Kind, ctx: &Context) -> Result<(), Error> {
        self.list_kind(kind, false, |c, raw| {
            let id = if c.capture.is_some() { raw.uuid() } else { None };
            match normalize::service_of(kind, ctx, raw) {
                Ok(cs) => {
                    c.capture_vm(&cs);
                    c.push_service(cs)
                }
                Err(msg) => {
                    if let (Some(cap), Some(id)) = (c.capture.as_mut(), id) {
                        cap.failed.push((id, msg.clone()));
                    }
                    c.push_error(kind, msg)
                }
            }
        })
    }

    /// Emits a CloudService, with its usage when option `usage` read one,
    /// and a VM's disks when kind `vm_disks` was asked for.
    fn push_service(&mut self, mut cs: CloudService) {
        let is_vm = cs.cloud_service_type == normalize::group_and_type(Kind::Vm).1;
        let disks = if self.disks && is_vm { normalize::disks_of(&cs) } else { Vec::new() };
        if let (Some(u), Value::Object(data)) = (self.usage.get(&cs.resource_id), &mut cs.data) {
            data.insert("usage".into(), u.clone());
        }
        if self.vms_out || !is_vm {
            self.push(Record::CloudService(cs));
        }
        for d in disks {
            self.push(Record::CloudService(d));
        }
    }

    /// Adds a VM to the cache a full collection is filling.
    fn capture_vm(&mut self, cs: &CloudService) {
        let Some(cap) = self.capture.as_mut() else { return };
        cap.watermark = incremental::newest(cap.watermark.take(), cs.data.get("updated_at").and_then(Value::as_str));
        if cap.broken.is_some() {
            return;
        }
        if let Some(chunk) = cap.writer.push(&incremental::encode(cs)) {
            let key = Keys::new(&self.secret.endpoint.base_url()).chunk(cap.chunks);
            cap.chunks += 1;
            if let Err(e) = state_set(&mut self.state, &key, &chunk)
                && let Some(cap) = self.capture.as_mut()
            {
                cap.broken = Some(e);
            }
        }
    }

    fn cache_keys(&self) -> Keys {
        Keys::new(&self.secret.endpoint.base_url())
    }

    /// VMs with option `incremental`: from the cache and the changes when
    /// it can be trusted, fully (refilling the cache) otherwise.
    fn collect_vms(&mut self, ctx: &Context) -> Result<(), Error> {
        let inc = self.opts.incremental.unwrap_or_default();
        let keys = self.cache_keys();
        let fingerprint = incremental::fingerprint(ctx, self.opts.api_version);
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
            Ok(m) => match self.vms_incremental(ctx, &keys, m, &inc) {
                Ok(()) => return Ok(()),
                Err(Abort::Fatal(e)) => return Err(e),
                Err(Abort::Full(reason)) => reason,
            },
            Err(reason) => reason,
        };
        self.sink.log(Level::Info, "incremental: collecting all VMs", &[("reason", &reason)]);
        self.vms_full(ctx, &keys, fingerprint, old_chunks)
    }

    /// A full VM collection that refills the cache.
    fn vms_full(&mut self, ctx: &Context, keys: &Keys, fingerprint: String, old_chunks: u32) -> Result<(), Error> {
        // No cache while it is rewritten.
        let _ = state_delete(&mut self.state, &keys.manifest());
        self.listing_incomplete = false;
        self.vm_api = None;
        self.capture = Some(Capture::default());
        let listed = self.list_services(Kind::Vm, ctx);
        let Some(mut cap) = self.capture.take() else { return listed };
        listed?;
        if cap.broken.is_none()
            && let Some(chunk) = std::mem::take(&mut cap.writer).finish()
        {
            if let Err(e) = state_set(&mut self.state, &keys.chunk(cap.chunks), &chunk) {
                cap.broken = Some(e);
            }
            cap.chunks += 1;
        }
        for i in cap.chunks..old_chunks {
            let _ = state_delete(&mut self.state, &keys.chunk(i));
        }
        let not_kept = if let Some(e) = cap.broken {
            Some(format!("a state write failed: {e}"))
        } else if self.listing_incomplete {
            Some("the VM list lost pages".to_string())
        } else if self.stopped {
            Some("the host stopped the collection".to_string())
        } else {
            None
        };
        if let Some(why) = not_kept {
            self.sink.log(Level::Warn, "incremental: cache not kept, the next run is full as well", &[("reason", &why)]);
            return Ok(());
        }
        let manifest = Manifest {
            format: incremental::FORMAT,
            guest: env!("CARGO_PKG_VERSION").into(),
            fingerprint,
            api: if self.vm_api == Some(Api::V4) { CacheApi::V4 } else { CacheApi::V3 },
            watermark: cap.watermark.unwrap_or_else(|| incremental::format_time(0)),
            chunks: cap.chunks,
            runs_since_full: 0,
            failed: cap.failed,
        };
        self.write_manifest(keys, &manifest);
        Ok(())
    }

    fn write_manifest(&mut self, keys: &Keys, m: &Manifest) {
        let text = serde_json::to_string(m).unwrap_or_default();
        if let Err(e) = state_set(&mut self.state, &keys.manifest(), &text) {
            self.sink.log(Level::Warn, "incremental: cache not kept, the next run is full as well", &[("reason", &format!("a state write failed: {e}"))]);
        }
    }

    /// The incremental run proper; `Abort::Full` before anything was
    /// emitted or changed.
    fn vms_incremental(&mut self, ctx: &Context, keys: &Keys, m: Manifest, inc: &config::Incremental) -> Result<(), Abort> {
        let api = Api::from(m.api);
        let since = incremental::since(&m.watermark, inc.overlap_s).ok_or_else(|| Abort::Full("the cached watermark is not a time".into()))?;
        if api == Api::V4 && !self.lookups_filled {
            self.fill_lookups().map_err(Abort::Fatal)?;
        }
        // All ids first, then the changes: a VM created in between is a
        // change, not a VM missing from the cache.
        let ids = self.list_vm_ids(api)?;
        let mut changed: std::collections::BTreeMap<String, CloudService> = std::collections::BTreeMap::new();
        let mut failed: Vec<(String, String)> = Vec::new();
        let lookups = std::mem::take(&mut self.lookups);
        let listed = self.list_strict(api, &Query::ChangedSince(since.clone()), |_, raw| {
            let raw = match api {
                Api::V3 => Ok(raw),
                Api::V4 => v4::to_v3(Kind::Vm, &raw.into_value(), &lookups).map(Item::from),
            };
            let id = raw.as_ref().ok().and_then(Item::uuid);
            match raw.and_then(|r| normalize::service_of(Kind::Vm, ctx, r)) {
                Ok(cs) => {
                    changed.insert(cs.resource_id.clone(), cs);
                }
                Err(msg) => failed.push((id.unwrap_or_default(), msg)),
            }
        });
        self.lookups = lookups;
        listed?;

        // Pass 1: which listed VMs the cache holds.
        let mut cached = std::collections::HashSet::new();
        for i in 0..m.chunks {
            let chunk = match state_get(&mut self.state, &keys.chunk(i)) {
                Ok(Some(c)) => c,
                Ok(None) => return Err(Abort::Full(format!("cache chunk {i} is missing"))),
                Err(e) => return Err(Abort::Full(format!("state unavailable: {e}"))),
            };
            cached.extend(chunk.lines().filter_map(incremental::line_id).filter(|id| ids.contains(*id)).map(str::to_string));
        }
        let failed_now: std::collections::HashSet<&str> = failed.iter().map(|(id, _)| id.as_str()).collect();
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
        self.sink.log(
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
                    self.push_service(cs);
                } else if !ids.contains(id) {
                    modified = true;
                } else {
                    match incremental::decode(line) {
                        Ok(cs) => {
                            kept.push(line.to_string());
                            self.push_service(cs);
                        }
                        Err(e) => {
                            // Unreadable cache: report it; the next run is full.
                            broken.get_or_insert_with(|| e.clone());
                            self.push_error(Kind::Vm, format!("VM {id} could not be read from the incremental cache: {e}"));
                        }
                    }
                }
            }
            if modified
                && broken.is_none()
                && let Err(e) = state_set(&mut self.state, &keys.chunk(i), &kept.join("
"))
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
            self.push_service(cs);
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
            self.push_error(Kind::Vm, msg.clone());
        }
        if let Some(why) = broken.or_else(|| self.stopped.then(|| "the host stopped the collection".to_string())) {
            self.sink.log(Level::Warn, "incremental: cache not kept, the next run is full", &[("reason", &why)]);
            return Ok(());
        }
        let manifest = Manifest {
            watermark: watermark.unwrap_or(m.watermark.clone()),
            chunks,
            runs_since_full: m.runs_since_full + 1,
            failed: still_failed.into_iter().chain(failed.into_iter().filter(|(id, _)| !id.is_empty())).collect(),
            ..m
        };
        self.write_manifest(keys, &manifest);
        Ok(())
    }

    /// The ids of all VMs: v3 groups API, v4 `$select=extId`.
    fn list_vm_ids(&mut self, api: Api) -> Result<std::collections::HashSet<String>, Abort> {
        let mut ids = std::collections::HashSet::new();
        match api {
            Api::V4 => {
                self.list_strict(api, &Query::IdsOnly, |_, raw| {
                    if let Some(id) = raw.into_value().get("extId").and_then(Value::as_str) {
                        ids.insert(id.to_string());
                    }
                })?;
            }
            Api::V3 => {
                let all = self
                    .read_groups(Kind::Vm, |offset, length| usage::groups_request(Kind::Vm, ["vm_name"], offset, length))
                    .map_err(|e| Abort::Full(format!("VM ids (groups API) not read: {}", error_text(&e))))?;
                ids.extend(all.into_keys());
            }
        }
        Ok(ids)
    }

    /// Pages through the VM list without error resources: a lost page
    /// aborts (incremental collection then collects fully).
    fn list_strict(&mut self, api: Api, q: &Query, mut each: impl FnMut(&mut Self, Item)) -> Result<(), Abort> {
        let limit = match api {
            Api::V3 => self.opts.page_size,
            Api::V4 => self.opts.page_size.min(v4::MAX_LIMIT),
        };
        let mut offset = 0u64;
        let mut pages = 0u64;
        loop {
            let page = match self.fetch_page(Kind::Vm, api, None, q, offset, limit) {
                Ok(p) => p,
                Err(PageError::Fatal(e)) => return Err(Abort::Fatal(e)),
                Err(PageError::Failed(e)) => return Err(Abort::Full(format!("a VM list page at offset {offset} failed: {}", error_text(&e)))),
                Err(PageError::NotOffered) => return Err(Abort::Full("the VM list API is no longer offered".into())),
            };
            pages += 1;
            let n = page.entities.len() as u64;
            if let Some(t) = page.total.filter(|t| n == 0 && offset < *t) {
                // A silently lost page: the list would come up short.
                return Err(Abort::Full(format!("the VM list returned no entities at offset {offset} although its total is {t}")));
            }
            let total = page.total.unwrap_or(if n >= u64::from(limit) { offset + n + 1 } else { offset + n });
            for raw in page.entities {
                each(self, raw);
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

    /// The usage of every entity of `kind` through the groups API.
    fn read_usage(&mut self, kind: Kind) -> Result<std::collections::BTreeMap<String, Value>, Error> {
        self.read_groups(kind, |offset, length| usage::request(kind, offset, length))
    }

    /// Every entity of `kind` through the groups API, page by page (`body`
    /// builds a page's request): uuid → the usage values it carries.
    fn read_groups(&mut self, kind: Kind, body: impl Fn(u64, u32) -> Value) -> Result<std::collections::BTreeMap<String, Value>, Error> {
        let url = format!("{}{}", self.secret.endpoint.base_url(), usage::GROUPS_PATH);
        let length = self.opts.page_size;
        let mut all = std::collections::BTreeMap::new();
        let mut offset = 0u64;
        let mut pages = 0u64;
        loop {
            let body = body(offset, length).to_string().into_bytes();
            let page = crate::metrics::call_json(self.transport, &self.opts, &self.secret, Method::Post, &url, Some(body))?;
            let (total, got) = usage::parse_page(kind, &page).map_err(Error::Unavailable)?;
            pages += 1;
            let n = got.len() as u64;
            if n == 0 && offset < total {
                // A silently lost page: never a short list.
                return Err(Error::Unavailable(format!(
                    "the groups API returned no {} at offset {offset} although total_entity_count is {total}",
                    kind.plural()
                )));
            }
            all.extend(got);
            offset += n;
            if n == 0 || offset >= total {
                return Ok(all);
            }
            if total_keeps_changing(pages, total, length) {
                return Err(Error::Unavailable(format!("the groups API's total_entity_count for {} keeps changing", kind.plural())));
            }
        }
    }

    /// Pages through a list endpoint, handing every raw entity to `each`.
    /// `first_page_fatal`: a lost first page fails the call (used for the
    /// cluster list, which everything else depends on).
    fn list_all(
        &mut self,
        kind: Kind,
        api: Api,
        path: Option<&str>,
        first_page_fatal: bool,
        mut each: impl FnMut(&mut Self, Item),
    ) -> Result<Listed, Error> {
        let limit = match api {
            Api::V3 => self.opts.page_size,
            Api::V4 => self.opts.page_size.min(v4::MAX_LIMIT),
        };
        let page_size = u64::from(limit);
        let mut offset: u64 = 0;
        let mut total: Option<u64> = None;
        let mut pages: u64 = 0;
        loop {
            if self.stopped {
                return Ok(Listed::Done);
            }
            pages += 1;
            match self.fetch_page(kind, api, path, &Query::All, offset, limit) {
                Ok(page) => {
                    let n = page.entities.len() as u64;
                    // Without a total (v4 may omit it), a full page means
                    // there may be more.
                    let known = page.total;
                    let t = known.unwrap_or(if n >= page_size { offset + n + 1 } else { offset + n });
                    total = Some(t);
                    for raw in page.entities {
                        each(self, raw);
                    }
                    if n == 0 {
                        // An empty page ends the list; it is an error only
                        // when the server said there was more.
                        if known.is_some_and(|k| offset < k) {
                            self.listing_incomplete = true;
                            self.push_error(
                                kind,
                                format!("{} list returned no entities at offset {offset} although total_matches is {t}", kind.plural()),
                            );
                        }
                        return Ok(Listed::Done);
                    }
                    offset += n;
                }
                Err(PageError::NotOffered) if total.is_none() => return Ok(Listed::NotOffered),
                Err(PageError::NotOffered) => {
                    self.listing_incomplete = true;
                    self.push_error(kind, format!("{} list page at offset {offset}: HTTP 404", kind.plural()));
                    offset += page_size;
                }
                Err(PageError::Fatal(e)) => return Err(e),
                Err(PageError::Failed(e)) => {
                    if total.is_none() && first_page_fatal {
                        return Err(e);
                    }
                    let what = match total {
                        Some(t) => format!("{} list page at offset {offset} (of {t})", kind.plural()),
                        None => format!("{} list", kind.plural()),
                    };
                    self.listing_incomplete = true;
                    self.push_error(kind, format!("{what} failed: {}", error_text(&e)));
                    if total.is_none() {
                        // Without a first page the size of the list is unknown.
                        return Ok(Listed::Done);
                    }
                    offset += page_size;
                }
            }
            let t = total.unwrap_or(0);
            if offset >= t {
                return Ok(Listed::Done);
            }
            // A server whose total keeps growing cannot keep us forever.
            if total_keeps_changing(pages, t, limit) {
                self.listing_incomplete = true;
                self.push_error(kind, format!("{} list stopped after {pages} pages: total_matches keeps changing", kind.plural()));
                return Ok(Listed::Done);
            }
        }
    }

    /// One list call, with retries.
    fn fetch_page(&mut self, kind: Kind, api: Api, path: Option<&str>, q: &Query, offset: u64, length: u32) -> Result<Page, PageError> {
        let base = self.secret.endpoint.base_url();
        let (method, url, body) = match api {
            Api::V3 => {
                let mut body = json!({"kind": kind.api_kind(), "offset": offset, "length": length});
                if let Query::ChangedSince(since) = q {
                    body["filter"] = json!(incremental::v3_filter(since));
                }
                (Method::Post, format!("{base}{}", path.unwrap_or(kind.list_path())), Some(body.to_string().into_bytes()))
            }
            Api::V4 => {
                let path = path.or(v4::list_path(kind)).unwrap_or_default();
                let extra = match q {
                    Query::All => String::new(),
                    Query::ChangedSince(since) => format!("&$filter={}", percent_encode(&incremental::v4_filter(since))),
                    Query::IdsOnly => "&$select=extId".to_string(),
                };
                (Method::Get, format!("{base}{path}?$page={}&$limit={length}{extra}", offset / u64::from(length.max(1))), None)
            }
        };
        let describe = |body: &[u8]| match api {
            Api::V3 => v3::describe_error_body(body),
            Api::V4 => v4::describe_error_body(body),
        };
        let mut attempt: u32 = 0;
        loop {
            let mut headers = vec![("Accept".to_string(), "application/json".to_string())];
            if body.is_some() {
                headers.insert(0, ("Content-Type".into(), "application/json".into()));
            }
            let req = HttpRequest {
                method,
                url: url.clone(),
                headers,
                body: body.clone(),
                timeout_ms: Some(self.opts.request_timeout_ms),
                auth: Some(self.secret.auth),
            };
            let (err, wait_ms) = match self.transport.send(req) {
                Err(TransportError::Denied(m)) => {
                    return Err(PageError::Fatal(Error::PermissionDenied(format!("egress denied by host policy: {m}"))));
                }
                Err(TransportError::InvalidRequest(m)) => {
                    return Err(PageError::Fatal(Error::Internal(format!("host rejected the request: {m}"))));
                }
                Err(TransportError::Tls(m)) => {
                    return Err(PageError::Fatal(Error::Unavailable(format!(
                        "TLS to {} failed: {m} (for a self-signed Prism certificate set option verify_ssl=false or ca_bundle)",
                        self.secret.endpoint.base_url()
                    ))));
                }
                Err(TransportError::TooLarge(n)) => {
                    return Err(PageError::Failed(Error::ResourceExhausted(format!(
                        "response larger than the host limit of {n} bytes (lower option page_size)"
                    ))));
                }
                Err(TransportError::Timeout) => (
                    Error::Timeout(format!("{} did not answer within {} ms", self.secret.endpoint.base_url(), self.opts.request_timeout_ms)),
                    None,
                ),
                Err(TransportError::Connection(m)) => {
                    (Error::Unavailable(format!("cannot reach {}: {m}", self.secret.endpoint.base_url())), None)
                }
                Ok(resp) => match resp.status {
                    200..=299 => match parse_page(api, &resp.body) {
                        Ok(page) => return Ok(page),
                        Err(e) => (Error::Unavailable(format!("invalid answer to the {} list: {e}", kind.plural())), None),
                    },
                    404 if api == Api::V4 => return Err(PageError::NotOffered),
                    401 => {
                        return Err(PageError::Fatal(Error::Unauthenticated(format!(
                            "Prism rejected the credentials of user '{}': {}",
                            self.secret.username,
                            describe(&resp.body)
                        ))));
                    }
                    403 => {
                        return Err(PageError::Fatal(Error::PermissionDenied(format!(
                            "user '{}' may not list {}: {}",
                            self.secret.username,
                            kind.plural(),
                            describe(&resp.body)
                        ))));
                    }
                    429 => (
                        Error::Unavailable(format!("rate limited (HTTP 429): {}", describe(&resp.body))),
                        Some(retry_after_ms(resp.header("retry-after"))),
                    ),
                    404 => {
                        return Err(PageError::Failed(Error::NotFound(format!(
                            "HTTP 404 for {}: {}",
                            kind.list_path(),
                            describe(&resp.body)
                        ))));
                    }
                    s if s >= 500 => (Error::Unavailable(format!("HTTP {s}: {}", describe(&resp.body))), None),
                    s => {
                        return Err(PageError::Failed(Error::Internal(format!("HTTP {s}: {}", describe(&resp.body)))));
                    }
                },
            };
            if attempt >= self.opts.max_retries {
                let n = attempt + 1;
                return Err(PageError::Failed(match err {
                    Error::Unavailable(m) => Error::Unavailable(format!("{m} (after {n} attempts)")),
                    Error::Timeout(m) => Error::Timeout(format!("{m} (after {n} attempts)")),
                    other => other,
                }));
            }
            let wait = wait_ms.unwrap_or_else(|| backoff_ms(attempt));
            attempt += 1;
            self.sink.log(
                Level::Warn,
                "retrying list call",
                &[
                    ("kind", kind.plural()),
                    ("offset", &offset.to_string()),
                    ("attempt", &attempt.to_string()),
                    ("wait_ms", &wait.to_string()),
                    ("reason", &error_text(&err)),
                ],
            );
            self.transport.sleep_ms(wait);
        }
    }

    fn push(&mut self, r: Record) {
        if self.stopped || !self.in_regions(&r) {
            return;
        }
        if r.is_error() {
            self.summary.errors += 1;
        }
        self.summary.emitted += 1;
        self.buffer.push(r);
        if self.buffer.len() >= BATCH_SIZE {
            self.flush();
        }
    }

    /// Whether a record lies in the task's regions (errors and types always do).
    fn in_regions(&self, r: &Record) -> bool {
        let Some(regions) = &self.regions else { return true };
        let code = match r {
            Record::CloudService(cs) => cs.region_code.as_deref(),
            Record::Region(reg) => Some(reg.region_code.as_str()),
            _ => return true,
        };
        code.is_some_and(|c| regions.iter().any(|x| x == c))
    }

    fn push_error(&mut self, kind: Kind, message: String) {
        let (group, ty) = normalize::group_and_type(kind);
        self.sink.log(Level::Warn, &message, &[("kind", kind.plural())]);
        self.push(Record::Error(ErrorResource {
            message,
            provider: PROVIDER.to_string(),
            cloud_service_group: group.to_string(),
            cloud_service_type: ty.to_string(),
            resource_type: "inventory.CloudService".to_string(),
        }));
    }

    fn flush(&mut self) {
        if self.buffer.is_empty() || self.stopped {
            return;
        }
        let batch = std::mem::replace(&mut self.buffer, Vec::with_capacity(BATCH_SIZE));
        if self.sink.emit(batch) == Flow::Stop {
            self.stopped = true;
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

/// A path segment: unreserved characters as they are, the rest as `%XX`.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

fn parse_page(api: Api, body: &[u8]) -> Result<Page, String> {
    match api {
        Api::V3 => serde_json::from_slice::<ListPage>(body)
            .map(|p| Page { total: p.metadata.total_matches, entities: p.entities.into_iter().map(Item::Raw).collect() })
            .map_err(|e| format!("invalid or truncated JSON: {e}")),
        Api::V4 => v4::parse_page(body).map(|p| Page { total: p.total, entities: p.entities.into_iter().map(Item::Value).collect() }),
    }
}

/// A list whose total keeps growing cannot keep the collector forever:
/// `pages` read so far against what `total` needs at `page_size`, with two
/// pages of slack.
fn total_keeps_changing(pages: u64, total: u64, page_size: u32) -> bool {
    pages > total / u64::from(page_size.max(1)) + 2
}

fn error_text(e: &Error) -> String {
    match e {
        Error::InvalidArgument(m)
        | Error::Unauthenticated(m)
        | Error::PermissionDenied(m)
        | Error::NotFound(m)
        | Error::Unavailable(m)
        | Error::Timeout(m)
        | Error::ResourceExhausted(m)
        | Error::Internal(m) => m.clone(),
    }
}

/// 250 ms, 500 ms, 1 s, 2 s ... capped at 8 s.
pub fn backoff_ms(attempt: u32) -> u64 {
    250u64.saturating_mul(1u64 << attempt.min(5)).min(8_000)
}

/// `Retry-After` in seconds (HTTP dates are not used by Prism; they fall
/// back to 1 s), capped at [`config::MAX_RETRY_AFTER_MS`].
pub fn retry_after_ms(header: Option<&str>) -> u64 {
    header
        .and_then(|h| h.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| (s * 1000.0) as u64)
        .unwrap_or(1_000)
        .min(config::MAX_RETRY_AFTER_MS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HttpResponse;
    use std::collections::VecDeque;

    /// 1,000 entities at 100 per page take 10 pages; two more are slack,
    /// the 13th page means the total keeps moving.
    #[test]
    fn a_total_that_keeps_changing_is_bounded() {
        assert!(!total_keeps_changing(12, 1000, 100));
        assert!(total_keeps_changing(13, 1000, 100));
        assert!(!total_keeps_changing(2, 0, 100));
        assert!(total_keeps_changing(3, 0, 0), "a zero page size cannot divide by zero");
    }

    type Answer = Result<HttpResponse, TransportError>;
    /// (path, offset) → answers in order.
    type Script = Vec<((String, u64), VecDeque<Answer>)>;
    /// (path, body, headers) of each request.
    type Sent = (String, Value, Vec<(String, String)>, Option<crate::config::Auth>);

    /// Answers list calls from a script keyed by (path, offset); records requests.
    #[derive(Default)]
    struct Scripted {
        answers: Script,
        requests: Vec<Sent>,
        slept: Vec<u64>,
        /// v4 requests answered 404 because nothing was scripted for them.
        v4_probes: Vec<String>,
    }

    impl Scripted {
        fn on(mut self, path: &str, offset: u64, r: Result<HttpResponse, TransportError>) -> Self {
            let key = (path.to_string(), offset);
            match self.answers.iter_mut().find(|(k, _)| *k == key) {
                Some((_, q)) => q.push_back(r),
                None => self.answers.push((key, VecDeque::from([r]))),
            }
            self
        }
    }

    impl Transport for Scripted {
        fn send(&mut self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
            let full = req.url.split_once("9440").unwrap().1.to_string();
            let (path, query) = full.split_once('?').map_or((full.clone(), String::new()), |(p, q)| (p.to_string(), q.to_string()));
            // v3: POST with offset in the body; v4: GET with `$page`.
            let (body, offset) = match req.body.as_deref() {
                Some(b) => {
                    let body: Value = serde_json::from_slice(b).unwrap();
                    let offset = body["offset"].as_u64().unwrap();
                    (body, offset)
                }
                None => {
                    let page = query.split('&').find_map(|kv| kv.strip_prefix("$page=")).and_then(|p| p.parse().ok()).unwrap_or(0);
                    (Value::Null, page)
                }
            };
            let found = self.answers.iter_mut().find(|(k, _)| k.0 == path && k.1 == offset).map(|(_, q)| q);
            let q = match found {
                Some(q) => q,
                // Unscripted v4 paths: a Prism Central without v4 (kept apart
                // from `requests`, which the v3 tests count).
                None if req.body.is_none() => {
                    self.v4_probes.push(full);
                    return Ok(HttpResponse { status: 404, headers: vec![], body: b"{}".to_vec() });
                }
                None => panic!("unscripted request {path} offset {offset}"),
            };
            self.requests.push((path.clone(), body, req.headers.clone(), req.auth));
            // The last answer repeats.
            if q.len() > 1 { q.pop_front().unwrap() } else { q.front().unwrap().clone() }
        }
        fn sleep_ms(&mut self, ms: u64) {
            self.slept.push(ms);
        }
    }

    #[derive(Default)]
    struct Collected {
        records: Vec<Record>,
        batches: usize,
        logs: Vec<(Level, String)>,
        stop_after: Option<usize>,
    }

    impl Sink for Collected {
        fn emit(&mut self, batch: Vec<Record>) -> Flow {
            self.batches += 1;
            self.records.extend(batch);
            match self.stop_after {
                Some(n) if self.batches >= n => Flow::Stop,
                _ => Flow::Proceed,
            }
        }
        fn log(&mut self, level: Level, message: &str, _fields: &[(&str, &str)]) {
            self.logs.push((level, message.to_string()));
        }
    }

    fn ok(body: Value) -> Result<HttpResponse, TransportError> {
        Ok(HttpResponse { status: 200, headers: vec![], body: body.to_string().into_bytes() })
    }

    fn status(code: u16, headers: &[(&str, &str)], body: &str) -> Result<HttpResponse, TransportError> {
        Ok(HttpResponse {
            status: code,
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: body.as_bytes().to_vec(),
        })
    }

    const SECRET: &str = r#"{"host":"pc.example","username":"admin","password":"s3cret"}"#;
    const CLUSTERS: &str = "/api/nutanix/v3/clusters/list";
    const VMS: &str = "/api/nutanix/v3/vms/list";

    fn clusters_fixture() -> Value {
        serde_json::from_str(include_str!("../tests/fixtures/v3_clusters.json")).unwrap()
    }

    fn vm_entity(i: u64) -> Value {
        json!({"status": {"name": format!("vm-{i}"), "cluster_reference": {"uuid": "c1-uuid"},
                "resources": {"num_sockets": 1, "num_vcpus_per_socket": 2, "memory_size_mib": 2048, "power_state": "ON"}},
               "metadata": {"uuid": format!("vm-uuid-{i}")}})
    }

    fn vm_page(offset: u64, n: u64, total: u64) -> Value {
        json!({"metadata": {"total_matches": total, "offset": offset, "length": n},
               "entities": (offset..offset + n).map(vm_entity).collect::<Vec<_>>()})
    }

    fn services(c: &Collected, ty: &str) -> Vec<String> {
        c.records
            .iter()
            .filter_map(|r| match r {
                Record::CloudService(cs) if cs.cloud_service_type == ty => Some(cs.resource_id.clone()),
                _ => None,
            })
            .collect()
    }

    fn errors(c: &Collected) -> Vec<String> {
        c.records
            .iter()
            .filter_map(|r| match r {
                Record::Error(e) => Some(e.message.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn paginates_until_total_matches() {
        let mut t = Scripted::default()
            .on(CLUSTERS, 0, ok(clusters_fixture()))
            .on(VMS, 0, ok(vm_page(0, 2, 5)))
            .on(VMS, 2, ok(vm_page(2, 2, 5)))
            .on(VMS, 4, ok(vm_page(4, 1, 5)));
        let mut s = Collected::default();
        let sum = collect(&mut t, &mut s, &mut crate::NoState, r#"{"page_size":2}"#, SECRET, r#"{"resource_kinds":["vms"]}"#).unwrap();
        assert_eq!(services(&s, "VirtualMachine").len(), 5);
        assert_eq!(sum, Summary { emitted: 8, errors: 0 }); // 5 VMs + their type + 2 regions
        let offsets: Vec<u64> = t.requests.iter().filter(|r| r.0 == VMS).map(|r| r.1["offset"].as_u64().unwrap()).collect();
        assert_eq!(offsets, vec![0, 2, 4]);
        let r = &t.requests[1];
        assert_eq!(r.1, json!({"kind": "vm", "offset": 0, "length": 2}));
        assert_eq!(r.3, Some(crate::config::Auth::Basic), "the host adds the credential");
        assert!(!r.2.iter().any(|(k, _)| k.eq_ignore_ascii_case("authorization")), "the guest never builds it");
        let vm = s.records.iter().find_map(|r| match r { Record::CloudService(c) => Some(c), _ => None }).unwrap();
        assert_eq!(vm.account.as_deref(), Some("pc-uuid-0000"));
        assert_eq!(vm.region_code.as_deref(), Some("cluster-a"));
    }

    #[test]
    fn v4_pages_without_totals_are_followed_until_a_short_page() {
        const V4_CLUSTERS: &str = "/api/clustermgmt/v4.0/config/clusters";
        const V4_VMS: &str = "/api/vmm/v4.0/ahv/config/vms";
        let clusters = json!({"data": [
            {"$objectType": "clustermgmt.v4.config.Cluster", "extId": "pc-uuid", "name": "pc", "config": {"clusterFunction": ["PRISM_CENTRAL"], "hypervisorTypes": ["$UNKNOWN"]}},
            {"extId": "c1-uuid", "name": "cluster-a", "config": {"clusterFunction": ["AOS"], "hypervisorTypes": ["AHV"]}}
        ]});
        let vm = |i: u64| json!({"extId": format!("vm-{i}"), "name": format!("vm-{i}"), "cluster": {"extId": "c1-uuid"}, "powerState": "OFF"});
        let mut t = Scripted::default()
            .on(V4_CLUSTERS, 0, ok(clusters))
            .on(V4_CLUSTERS, 1, ok(json!({"data": []})))
            .on(V4_VMS, 0, ok(json!({"data": [vm(0), vm(1)]})))
            .on(V4_VMS, 1, ok(json!({"data": [vm(2)]})));
        let mut s = Collected::default();
        let sum = collect(&mut t, &mut s, &mut crate::NoState, r#"{"page_size":2}"#, SECRET, r#"{"resource_kinds":["vms"]}"#).unwrap();
        assert_eq!(services(&s, "VirtualMachine").len(), 3, "no totals: pages followed until a short one");
        let errors: Vec<&str> = s.records.iter().filter_map(|r| match r { Record::Error(e) => Some(e.message.as_str()), _ => None }).collect();
        assert_eq!(sum.errors, 0, "{errors:?}");
        let vm = s.records.iter().find_map(|r| match r { Record::CloudService(c) => Some(c), _ => None }).unwrap();
        assert_eq!((vm.account.as_deref(), vm.region_code.as_deref()), (Some("pc-uuid"), Some("cluster-a")));
        // The name lookups were asked for and not offered (404): names are left out, nothing fails.
        assert!(t.v4_probes.iter().any(|p| p.starts_with("/api/prism/v4.0/config/categories")), "{:?}", t.v4_probes);
        assert!(t.requests.iter().all(|r| r.0.starts_with("/api/") && r.1.is_null()), "only v4 GETs");
    }

    #[test]
    fn task_region_codes_limit_services_and_regions() {
        let mut page = vm_page(0, 3, 3);
        page["entities"][1]["status"]["cluster_reference"]["uuid"] = json!("c2-uuid");
        let script = || Scripted::default().on(CLUSTERS, 0, ok(clusters_fixture())).on(VMS, 0, ok(page.clone()));
        let regions = |c: &Collected| -> Vec<String> {
            c.records.iter().filter_map(|r| match r { Record::Region(g) => Some(g.region_code.clone()), _ => None }).collect()
        };
        let mut s = Collected::default();
        collect(&mut script(), &mut s, &mut crate::NoState, "{}", SECRET, r#"{"resource_kinds":["vms"],"region_codes":["cluster-b"]}"#).unwrap();
        assert_eq!(services(&s, "VirtualMachine"), vec!["vm-uuid-1"]);
        assert_eq!(regions(&s), vec!["cluster-b"]);
        let mut all = Collected::default();
        collect(&mut script(), &mut all, &mut crate::NoState, "{}", SECRET, r#"{"resource_kinds":["vms"]}"#).unwrap();
        assert_eq!(services(&all, "VirtualMachine").len(), 3);
        assert_eq!(regions(&all).len(), 2);
    }

    /// Cost data: the clusters, then every VM page; each running VM's
    /// vCPU and memory lines (no disks in these fixtures), a lost page as an
    /// error resource, no inventory records.
    #[test]
    fn cost_data_charges_every_listed_vm_and_reports_lost_pages() {
        let mut t = Scripted::default()
            .on(CLUSTERS, 0, ok(clusters_fixture()))
            .on(VMS, 0, ok(vm_page(0, 2, 6)))
            .on(VMS, 2, status(503, &[], "{}"))
            .on(VMS, 4, ok(vm_page(4, 2, 6)));
        let mut s = Collected::default();
        let options = r#"{"page_size":2,"max_retries":0,"rate_card":{"vcpu_hour":0.5,"memory_gib_hour":0.25}}"#;
        let sum = cost_data(&mut t, &mut s, options, SECRET, r#"{"billed_date":"2026-11-20"}"#).unwrap();
        let lines: Vec<(String, String, f64)> = s
            .records
            .iter()
            .filter_map(|r| match r {
                Record::Cost(c) => Some((c.resource.clone(), c.usage_type.clone(), c.cost)),
                _ => None,
            })
            .collect();
        assert_eq!(lines.len(), 8, "{lines:?}");
        assert_eq!(lines[0], ("vm-uuid-0".to_string(), "vCPU".to_string(), 2.0 * 24.0 * 0.5));
        assert_eq!(lines[1], ("vm-uuid-0".to_string(), "Memory".to_string(), 2.0 * 24.0 * 0.25));
        assert_eq!(lines[7].0, "vm-uuid-5");
        assert!(s.records.iter().all(|r| matches!(r, Record::Cost(_) | Record::Error(_))), "no inventory records");
        assert_eq!(errors(&s).len(), 1);
        assert_eq!((sum.emitted, sum.errors), (9, 1));
        let e = cost_data(&mut Scripted::default(), &mut Collected::default(), "{}", SECRET, r#"{"billed_date":"2026-11-20"}"#);
        assert!(matches!(e, Err(Error::InvalidArgument(m)) if m.contains("rate_card")));
    }

    #[test]
    fn failed_page_becomes_error_resource_and_rest_is_kept() {
        let mut t = Scripted::default()
            .on(CLUSTERS, 0, ok(clusters_fixture()))
            .on(VMS, 0, ok(vm_page(0, 2, 6)))
            .on(VMS, 2, status(500, &[], r#"{"state":"ERROR","code":500,"message_list":[{"message":"boom","reason":"INTERNAL_ERROR"}]}"#))
            .on(VMS, 4, ok(vm_page(4, 2, 6)));
        let mut s = Collected::default();
        let sum = collect(&mut t, &mut s, &mut crate::NoState, r#"{"page_size":2,"max_retries":2}"#, SECRET, r#"{"resource_kinds":["vms"]}"#).unwrap();
        assert_eq!(services(&s, "VirtualMachine"), vec!["vm-uuid-0", "vm-uuid-1", "vm-uuid-4", "vm-uuid-5"]);
        assert_eq!(
            errors(&s),
            vec!["vms list page at offset 2 (of 6) failed: HTTP 500: INTERNAL_ERROR: boom (after 3 attempts)"]
        );
        assert_eq!(sum.errors, 1);
        // Exponential back-off between the three attempts.
        assert_eq!(t.slept, vec![250, 500]);
    }

    #[test]
    fn rate_limit_honours_retry_after_then_succeeds() {
        let mut t = Scripted::default()
            .on(CLUSTERS, 0, ok(clusters_fixture()))
            .on(VMS, 0, status(429, &[("Retry-After", "2")], ""))
            .on(VMS, 0, ok(vm_page(0, 1, 1)));
        let mut s = Collected::default();
        collect(&mut t, &mut s, &mut crate::NoState, "{}", SECRET, r#"{"resource_kinds":["vms"]}"#).unwrap();
        assert_eq!(services(&s, "VirtualMachine").len(), 1);
        assert_eq!(t.slept, vec![2000]);
        assert!(errors(&s).is_empty());
    }

    #[test]
    fn truncated_body_is_retried() {
        let mut t = Scripted::default()
            .on(CLUSTERS, 0, ok(clusters_fixture()))
            .on(VMS, 0, status(200, &[], r#"{"metadata":{"total_matches":1},"entities":[{"sta"#))
            .on(VMS, 0, ok(vm_page(0, 1, 1)));
        let mut s = Collected::default();
        collect(&mut t, &mut s, &mut crate::NoState, "{}", SECRET, r#"{"resource_kinds":["vms"]}"#).unwrap();
        assert_eq!(services(&s, "VirtualMachine").len(), 1);
        assert_eq!(t.slept.len(), 1);
    }

    #[test]
    fn unauthenticated_fails_the_call_without_leaking_the_password() {
        let body = r#"{"state":"ERROR","code":401,"message_list":[{"message":"Authentication required.","reason":"AUTHENTICATION_REQUIRED"}]}"#;
        let mut t = Scripted::default().on(CLUSTERS, 0, status(401, &[], body));
        let mut s = Collected::default();
        let e = collect(&mut t, &mut s, &mut crate::NoState, "{}", SECRET, "{}").unwrap_err();
        let Error::Unauthenticated(m) = &e else { panic!("{e:?}") };
        assert_eq!(m, "Prism rejected the credentials of user 'admin': AUTHENTICATION_REQUIRED: Authentication required.");
        assert!(!format!("{e:?}").contains("s3cret"));
        assert_eq!(t.requests.len(), 1, "401 is not retried");
        let mut t = Scripted::default().on(CLUSTERS, 0, status(401, &[], body));
        assert!(matches!(verify(&mut t, &mut s, "{}", SECRET), Err(Error::Unauthenticated(_))));
    }

    #[test]
    fn unreachable_cluster_list_fails_with_unavailable() {
        let mut t = Scripted::default().on(CLUSTERS, 0, Err(TransportError::Connection("refused".into())));
        let mut s = Collected::default();
        let e = collect(&mut t, &mut s, &mut crate::NoState, r#"{"max_retries":1}"#, SECRET, "{}").unwrap_err();
        assert_eq!(e, Error::Unavailable("cannot reach https://pc.example:9440: refused (after 2 attempts)".into()));
        let mut t = Scripted::default().on(CLUSTERS, 0, Err(TransportError::Denied("host not granted".into())));
        let e = collect(&mut t, &mut s, &mut crate::NoState, "{}", SECRET, "{}").unwrap_err();
        assert!(matches!(e, Error::PermissionDenied(_)));
        assert_eq!(t.requests.len(), 1, "a denial is not retried");
    }

    #[test]
    fn malformed_entity_is_an_error_resource_among_good_ones() {
        let mut page = vm_page(0, 3, 3);
        page["entities"][1]["status"]["resources"]["num_sockets"] = json!("two");
        let mut t = Scripted::default().on(CLUSTERS, 0, ok(clusters_fixture())).on(VMS, 0, ok(page));
        let mut s = Collected::default();
        let sum = collect(&mut t, &mut s, &mut crate::NoState, "{}", SECRET, r#"{"resource_kinds":["vms"]}"#).unwrap();
        assert_eq!(services(&s, "VirtualMachine"), vec!["vm-uuid-0", "vm-uuid-2"]);
        let errs = errors(&s);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("malformed vm entity vm-uuid-1: "), "{}", errs[0]);
        assert_eq!(sum.errors, 1);
    }

    #[test]
    fn clusters_emit_regions_and_skip_prism_central() {
        let mut t = Scripted::default().on(CLUSTERS, 0, ok(clusters_fixture()));
        let mut s = Collected::default();
        collect(&mut t, &mut s, &mut crate::NoState, "{}", SECRET, r#"{"resource_kinds":["clusters"]}"#).unwrap();
        let regions: Vec<_> = s.records.iter().filter_map(|r| match r { Record::Region(r) => Some(r.region_code.clone()), _ => None }).collect();
        assert_eq!(regions, vec!["cluster-a", "cluster-b"]);
        assert_eq!(services(&s, "Cluster"), vec!["c1-uuid", "c2-uuid"]);
        let types = s.records.iter().filter(|r| matches!(r, Record::CloudServiceType(_))).count();
        assert_eq!(types, 1);
        assert_eq!(t.requests.len(), 1, "the cluster list is read once");
    }

    #[test]
    fn stop_flow_ends_collection_early() {
        let mut t = Scripted::default()
            .on(CLUSTERS, 0, ok(clusters_fixture()))
            .on(VMS, 0, ok(vm_page(0, 250, 1000)))
            .on(VMS, 250, ok(vm_page(250, 250, 1000)));
        let mut s = Collected { stop_after: Some(1), ..Default::default() };
        collect(&mut t, &mut s, &mut crate::NoState, r#"{"page_size":250}"#, SECRET, r#"{"resource_kinds":["vms"]}"#).unwrap();
        assert_eq!(s.batches, 1);
        assert_eq!(s.records.len(), BATCH_SIZE);
        let vm_calls = t.requests.iter().filter(|r| r.0 == VMS).count();
        assert_eq!(vm_calls, 1, "no more pages after the host said stop");
    }

    #[test]
    fn empty_page_before_total_is_reported_not_looped() {
        let mut t = Scripted::default()
            .on(CLUSTERS, 0, ok(clusters_fixture()))
            .on(VMS, 0, ok(vm_page(0, 2, 10)))
            .on(VMS, 2, ok(json!({"metadata": {"total_matches": 10}, "entities": []})));
        let mut s = Collected::default();
        collect(&mut t, &mut s, &mut crate::NoState, r#"{"page_size":2}"#, SECRET, r#"{"resource_kinds":["vms"]}"#).unwrap();
        assert_eq!(services(&s, "VirtualMachine").len(), 2);
        assert_eq!(errors(&s), vec!["vms list returned no entities at offset 2 although total_matches is 10"]);
    }

    #[test]
    fn tasks_and_init() {
        let tasks = get_tasks(r#"{"resource_kinds":["vms","hosts"]}"#, SECRET).unwrap();
        assert_eq!(tasks, vec![
            json!({"resource_type": "inventory.CloudService", "resource_kinds": ["hosts"]}),
            json!({"resource_type": "inventory.CloudService", "resource_kinds": ["vms"]}),
        ]);
        assert!(matches!(get_tasks("{}", "{}"), Err(Error::InvalidArgument(_))));
        let filtered = r#"{"task_filter": {"cloud_service_types": ["VirtualMachine", "Image"], "region_codes": ["c1"]}}"#;
        assert_eq!(get_tasks(filtered, SECRET).unwrap(), vec![
            json!({"resource_type": "inventory.CloudService", "resource_kinds": ["vms"], "region_codes": ["c1"]}),
            json!({"resource_type": "inventory.CloudService", "resource_kinds": ["images"], "region_codes": ["c1"]}),
        ]);
        // VM disks come from the VM list: one task with VMs, their own without.
        assert_eq!(get_tasks(r#"{"resource_kinds":["vm_disks","vms"]}"#, SECRET).unwrap(), vec![
            json!({"resource_type": "inventory.CloudService", "resource_kinds": ["vms", "vm_disks"]}),
        ]);
        assert_eq!(get_tasks(r#"{"resource_kinds":["vm_disks"]}"#, SECRET).unwrap(), vec![
            json!({"resource_type": "inventory.CloudService", "resource_kinds": ["vm_disks"]}),
        ]);
        let other_provider = r#"{"task_filter": {"providers": ["aws"]}}"#;
        assert_eq!(get_tasks(other_provider, SECRET).unwrap(), Vec::<Value>::new());
        let m = init("{}").unwrap();
        assert_eq!(m.supported_schedules, vec!["hours"]);
        assert_eq!(m.options_schema["type"], "object");
    }

    #[test]
    fn backoff_and_retry_after() {
        assert_eq!((0..7).map(backoff_ms).collect::<Vec<_>>(), vec![250, 500, 1000, 2000, 4000, 8000, 8000]);
        assert_eq!(retry_after_ms(Some("3")), 3000);
        assert_eq!(retry_after_ms(Some("0.5")), 500);
        assert_eq!(retry_after_ms(Some("86400")), config::MAX_RETRY_AFTER_MS);
        assert_eq!(retry_after_ms(Some("Wed, 21 Oct 2015 07:28:00 GMT")), 1000);
        assert_eq!(retry_after_ms(Some("-1")), 1000);
        assert_eq!(retry_after_ms(None), 1000);
    }
}
