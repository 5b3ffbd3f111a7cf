//! The collector's calls: `init`, `verify`, `get_tasks`, `collect` and the
//! cost source's `get_data`, over a [`Transport`] and a [`Sink`].
//!
//! Order of work in `collect`: the cluster list first (it names the Prism
//! Central instance, which is the CloudForet `account`, and maps cluster
//! uuids to names) and the Regions it yields (in every task), then, with
//! option `usage`, the usage of the kinds that have one, then per requested
//! kind its CloudServiceType and its entities ([`crate::listing`]; VMs with
//! option `incremental` through [`crate::incremental_vms`]). The kinds'
//! first pages are read ahead together once the cluster list is read
//! ([`Lister::read_ahead`]); what goes out keeps this order.
//!
//! Failure policy:
//! - 401/403 or an egress denial: the whole call fails (typed error); what was
//!   already emitted stays emitted.
//! - 429 (honouring `Retry-After`), 5xx, timeouts, connection errors and
//!   unparsable (e.g. truncated) bodies: retried with exponential back-off
//!   ([`crate::prism`]); when retries run out the page becomes an
//!   ErrorResource and the next page is tried.
//! - A malformed entity becomes an ErrorResource; the rest of its page is kept.

use crate::config::{self, ApiChoice, Options, Secret};
use crate::costs;
use crate::emission::Emitter;
use crate::guard;
use crate::incremental_vms::VmCache;
use crate::listing::Lister;
use crate::normalize::{self, ClusterScan, Context};
use crate::operations;
use crate::prism::{json_body, percent_encode, Api, CallError, Client, Log, Query, Request};
use crate::record::CloudService;
use crate::v4;
use crate::protection::{self, Facts};
use crate::record::Record;
use crate::usage;
use crate::v2;
use crate::v3::Kind;
use crate::{Error, Level, Sink, State, Transport, PROVIDER};
use serde_json::{json, Value};

pub use crate::emission::{Summary, BATCH_SIZE};

/// Answer of `init`.
pub use cloudforet_collector::Metadata;

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
    let opts_auto = opts.api_version == ApiChoice::Auto;
    let mut c = Client::new(t, opts, secret);
    let mut out = Emitter::new(s);
    match c.page(&mut out, Kind::Cluster, api, None, &Query::All, 0, 1) {
        Ok(_) => Ok(()),
        // No Prism Central cluster list: a Prism Element answers v2.0.
        Err(CallError::Failed(Error::NotFound(_))) if opts_auto => {
            let mut lister = crate::listing::Lister::default();
            match lister.detect_prism_element(&mut c, &mut out)? {
                Ok(_) => Ok(()),
                Err(why) => Err(Error::NotFound(format!("{} answers neither as a Prism Central nor as a Prism Element ({} {why})", c.base_url(), v2::CLUSTER_PATH))),
            }
        }
        Err(CallError::NotFound { gateway: true, message }) => {
            Err(Error::NotFound(format!("this Prism Central does not offer the v4 APIs (option api_version=v4): {message}")))
        }
        Err(e) => Err(e.into_error().context("clusters list")),
    }
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
    let mut c = Collector::new(t, s, Some(st), opts, secret);
    c.out.regions = regions;
    let result = c.run(&kinds);
    c.report_revisions();
    // Whatever happened, what was collected is handed over.
    c.out.flush();
    result.map(|()| c.out.summary)
}

/// `cost-source.get-data`: the task day's cost lines of every VM (see
/// [`costs`]); a lost page becomes an error resource as in `collect`.
pub fn cost_data<T: Transport, S: Sink>(t: &mut T, s: &mut S, options: &str, secret: &str, task_options: &str) -> Result<Summary, Error> {
    let card = costs::RateCard::parse(options)?;
    let opts = Options::parse(options)?;
    let secret = Secret::parse(secret)?;
    let task = costs::CostTask::parse(task_options)?;
    let mut c = Collector::new(t, s, None, opts, secret);
    let result = c.run_costs(&card, &task.billed_date);
    c.out.flush();
    result.map(|()| c.out.summary)
}

/// One call's parts: the client, what goes out, what the lists taught, the
/// incremental cache.
struct Collector<'a, 's, T, S> {
    client: Client<'a, T>,
    out: Emitter<'a, S>,
    lister: Lister,
    cache: VmCache<'s>,
    /// The run's clock (seconds since the epoch): recovery points' expiry,
    /// policies' RPO.
    now: i64,
    /// Whether the VMs and the recovery points were read this run (for the
    /// data protection flags).
    facts_read: (bool, bool),
}

/// Seconds since the epoch (the host's wall clock in the component).
fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl<'a, 's, T: Transport, S: Sink> Collector<'a, 's, T, S> {
    fn new(t: &'a mut T, s: &'a mut S, state: Option<&'s mut dyn State>, opts: Options, secret: Secret) -> Self {
        Collector {
            client: Client::new(t, opts, secret),
            out: Emitter::new(s),
            lister: Lister::default(),
            cache: VmCache::new(state),
            now: now_s(),
            facts_read: (false, false),
        }
    }

    /// Logs the v4 revision each namespace was read at (fields
    /// `namespace=revision`, `none` where a namespace is not offered).
    fn report_revisions(&mut self) {
        let revisions: Vec<(String, &str)> = self.lister.revisions().iter().map(|(ns, r)| (ns.clone(), r.unwrap_or("none"))).collect();
        if revisions.is_empty() {
            return;
        }
        let fields: Vec<(&str, &str)> = revisions.iter().map(|(ns, r)| (ns.as_str(), *r)).collect();
        self.out.log(Level::Info, "v4 API revisions used", &fields);
    }

    fn run_costs(&mut self, card: &costs::RateCard, billed_date: &str) -> Result<(), Error> {
        let (ctx, _) = self.cluster_context()?;
        self.lister.read_ahead(&mut self.client, &[Kind::Vm], false);
        self.lister.list_kind(&mut self.client, &mut self.out, Kind::Vm, false, |out, raw| match normalize::service_of(Kind::Vm, &ctx, raw) {
            Ok(vm) => {
                for cost in costs::vm_costs(&vm, card, billed_date) {
                    out.push(Record::Cost(cost));
                }
            }
            Err(msg) => out.push_error(Kind::Vm, msg),
        })
    }

    /// The cluster list: account and cluster names for every other kind.
    /// With option `api_version: auto`, a cluster list without the Prism
    /// Central pseudo-cluster (or no Prism Central cluster list at all)
    /// asks whether the endpoint is a Prism Element ([`crate::v2`]); when
    /// it is, its cluster is the list, the account its uuid, and every
    /// list goes through v2.0. When neither answers, the call fails naming
    /// the endpoint and both answers.
    fn cluster_context(&mut self) -> Result<(Context, Vec<Value>), Error> {
        let mut clusters = Vec::new();
        let listed = self.lister.list_kind(&mut self.client, &mut self.out, Kind::Cluster, true, |_, raw| clusters.push(raw.into_value()));
        let mut scan = ClusterScan::default();
        for raw in &clusters {
            scan.observe(raw);
        }
        let auto = self.client.opts.api_version == ApiChoice::Auto;
        let maybe_pe = match &listed {
            Ok(()) => auto && scan.prism_central_uuid.is_none() && scan.problems.is_empty(),
            // No Prism Central cluster list: the v4 gateway's 404 at every
            // revision (a v4 service's own 404 is a Prism Central's), then
            // a 404 to the v3 list (another refusal is Prism Central's v3
            // service speaking; credentials, an outage or the host's
            // refusal are no answer).
            Err(Error::NotFound(_)) => auto && !self.lister.v4_offered(),
            Err(_) => false,
        };
        if maybe_pe {
            match self.lister.detect_prism_element(&mut self.client, &mut self.out)? {
                Ok(cluster) => {
                    let uuid = self.lister.prism_element.clone().unwrap_or_default();
                    clusters = match v2::adapt(Kind::Cluster, &cluster, &uuid) {
                        Ok(v) => vec![v],
                        Err(msg) => return Err(Error::Unavailable(format!("Prism Element v2.0 cluster: {msg}"))),
                    };
                    scan = ClusterScan::default();
                    scan.observe(&clusters[0]);
                    self.out.log(Level::Info, "endpoint is a Prism Element: using its v2.0 API", &[("cluster", &uuid), ("path", v2::CLUSTER_PATH)]);
                }
                Err(why) => {
                    if let Err(e) = listed {
                        return Err(Error::NotFound(format!(
                            "{} answers neither as a Prism Central ({}) nor as a Prism Element ({} {why})",
                            self.client.base_url(),
                            e.message(),
                            v2::CLUSTER_PATH
                        )));
                    }
                }
            }
        } else {
            listed?;
        }
        for problem in std::mem::take(&mut scan.problems) {
            self.out.push_error(Kind::Cluster, problem);
        }
        let account = self.lister.prism_element.clone().or(scan.prism_central_uuid.clone()).unwrap_or_else(|| self.client.secret.endpoint.host.clone());
        let ctx = Context {
            account: Some(account),
            base_url: self.client.base_url(),
            cluster_names: scan.names,
            locations: self.client.opts.region_locations.clone(),
            guest_tools: self.out.guest_tools,
        };
        self.out.locations = ctx.locations.clone();
        self.out.log(
            Level::Info,
            "cluster list read",
            &[("clusters", &ctx.cluster_names.len().to_string()), ("account", ctx.account.as_deref().unwrap_or(""))],
        );
        Ok((ctx, clusters))
    }

    fn run(&mut self, kinds: &[Kind]) -> Result<(), Error> {
        self.out.disks = kinds.contains(&Kind::VmDisk);
        self.out.guest_tools = kinds.contains(&Kind::GuestTools);
        // Policies and plans are flagged from the VMs and recovery points
        // (listed before them: the order of `Kind`).
        if kinds.iter().any(|k| matches!(k, Kind::ProtectionPolicy | Kind::RecoveryPlan)) {
            self.out.facts = Some(Facts::new(self.now));
        }
        let (mut ctx, mut clusters) = self.cluster_context()?;
        let pe = self.lister.prism_element.is_some();
        if pe {
            // What a Prism Element does not serve has no part in the run.
            self.out.guest_tools = false;
            ctx.guest_tools = false;
            self.out.facts = None;
        }
        let mut incremental = self.client.opts.incremental.is_some();
        if incremental && pe {
            incremental = false;
            self.out.log(Level::Info, "option incremental is set aside: a Prism Element's v2.0 lists are read whole", &[]);
        }
        if incremental && self.out.guest_tools {
            // The cache keeps VMs without their guest tools: every VM is read.
            incremental = false;
            self.out.log(Level::Info, "option incremental is set aside: kind guest_tools reads every VM", &[]);
        }
        // Every kind's first page at once; the records still go out kind
        // after kind.
        self.lister.read_ahead(&mut self.client, kinds, incremental);

        // Regions (one per Prism Element cluster) come with every task, so
        // a task for one kind still creates the regions its services name.
        let mut cluster_services = Vec::new();
        for raw in std::mem::take(&mut clusters) {
            match normalize::cluster(&ctx, raw) {
                Ok(Some((cs, region))) => {
                    self.out.push(Record::Region(region));
                    cluster_services.push(Ok(cs));
                }
                Ok(None) => {}
                Err(msg) => cluster_services.push(Err(msg)),
            }
        }

        if self.client.opts.usage && pe {
            self.out.log(Level::Warn, "option usage is set aside: it reads Prism Central's groups API, and this endpoint is a Prism Element", &[]);
        } else if self.client.opts.usage {
            for kind in usage::KINDS.into_iter().filter(|k| kinds.contains(k)) {
                let read = self.client.groups(&mut self.out, kind, |offset, length| usage::request(kind, offset, length), |page| usage::parse_page(kind, page));
                match read {
                    Ok(u) => self.out.usage.extend(u),
                    Err(e) => self.out.push_error(kind, format!("{} usage (groups API) not read: {}", kind.api_kind(), e.message())),
                }
                let (ns, metrics) = usage::definitions(kind);
                self.out.push(Record::Namespace(ns));
                for m in metrics {
                    self.out.push(Record::Metric(m));
                }
            }
        }
        for &kind in kinds {
            if self.out.stopped {
                break;
            }
            self.out.push(Record::CloudServiceType(normalize::cloud_service_type(kind, self.client.opts.icon_base_url.as_deref())));
            if pe && !v2::KINDS.contains(&kind) {
                // As a v4-only kind on a Prism Central without v4: an
                // error resource naming why, no call.
                self.out.push_error(kind, v2::not_served(kind));
            } else if kind == Kind::Cluster {
                for cs in std::mem::take(&mut cluster_services) {
                    match cs {
                        Ok(cs) => self.out.push_service(cs),
                        Err(msg) => self.out.push_error(kind, msg),
                    }
                }
            } else if kind == Kind::VmDisk {
                // Disks come with the VM list: read here only when VMs
                // themselves were not asked for.
                if !kinds.contains(&Kind::Vm) {
                    self.out.vms_out = false;
                    let listed = self.vms_for_facts(&ctx, incremental, true);
                    self.out.vms_out = true;
                    listed?;
                }
            } else if kind == Kind::GuestTools {
                // Guest tools come with the VM list too: read here only
                // when neither VMs nor their disks read it already.
                if !kinds.contains(&Kind::Vm) && !kinds.contains(&Kind::VmDisk) {
                    self.out.vms_out = false;
                    let listed = self.vms_for_facts(&ctx, incremental, true);
                    self.out.vms_out = true;
                    listed?;
                }
            } else if kind == Kind::Gpu {
                // Each host of the v3 list gives its physical GPUs.
                self.lister.list_kind(&mut self.client, &mut self.out, kind, false, |out, raw| {
                    for gpu in operations::gpus_of_host(&ctx, raw) {
                        match gpu {
                            Ok(cs) => out.push_service(cs),
                            Err(msg) => out.push_error(kind, msg),
                        }
                    }
                })?;
            } else if kind == Kind::VmTemplate {
                self.vm_templates(&ctx)?;
            } else if kind == Kind::Vm {
                self.vms_for_facts(&ctx, incremental, true)?;
            } else if kind == Kind::RecoveryPoint {
                self.recovery_points(&ctx, true)?;
            } else if matches!(kind, Kind::ProtectionPolicy | Kind::RecoveryPlan) {
                self.data_protection(&ctx, kind, incremental)?;
            } else {
                self.lister.list_services(&mut self.client, &mut self.out, kind, &ctx, None)?;
            }
        }
        // Every kind listed: a kind that came back much smaller becomes an
        // error resource, so nothing is deleted this run.
        if let (Some(guard), Some(state)) = (self.client.opts.deletion_guard, self.cache.state()) {
            guard::check(state, &mut self.out, guard, &ctx.base_url, kinds);
        }
        Ok(())
    }

    /// VM templates, each with its versions: vmm v4.0 lists a template's
    /// versions only per template, one call each, so at most option
    /// `max_template_version_calls` templates a run have them read (the
    /// first listed; `page_concurrency` calls at once); the others go out
    /// at once with their active version only (`data.versions` null) and
    /// the run logs a warning. A template whose versions call fails keeps
    /// its active version too, beside an error resource naming it.
    fn vm_templates(&mut self, ctx: &Context) -> Result<(), Error> {
        let kind = Kind::VmTemplate;
        let cap = self.client.opts.max_template_version_calls as usize;
        // Only the templates waiting for their versions are held.
        let mut waiting = Vec::new();
        let mut over = 0usize;
        self.lister.list_kind(&mut self.client, &mut self.out, kind, false, |out, raw| match operations::vm_template(ctx, raw) {
            Ok(cs) if waiting.len() < cap => waiting.push(cs),
            Ok(cs) => {
                over += 1;
                out.push_service(cs);
            }
            Err(msg) => out.push_error(kind, msg),
        })?;
        if over > 0 {
            self.out.log(
                Level::Warn,
                "template versions not read for every template: option max_template_version_calls reached",
                &[("read", &waiting.len().to_string()), ("not_read", &over.to_string())],
            );
        }
        let revision = self.lister.revisions().get(v4::namespace(v4::TEMPLATES_PATH)).copied().flatten().unwrap_or("v4.0");
        let base = v4::at_revision(v4::TEMPLATES_PATH, revision);
        let at_once = (self.client.opts.page_concurrency as usize).max(1);
        let mut templates = waiting.into_iter().peekable();
        while templates.peek().is_some() {
            let mut batch: Vec<CloudService> = templates.by_ref().take(at_once).collect();
            if self.out.stopped {
                break;
            }
            let reqs: Vec<Request> = batch
                .iter()
                .map(|t| Request::get(format!("{base}/{}/versions?$page=0&$limit={}", percent_encode(&t.resource_id), v4::MAX_LIMIT)))
                .collect();
            let answers = self.client.call_many(&mut self.out, &reqs, json_body);
            for (t, answer) in batch.iter_mut().zip(answers) {
                match answer {
                    // No `data`: no versions (as v4 lists answer when empty).
                    Ok(body) => match body.get("data").unwrap_or(&Value::Null) {
                        Value::Null => operations::with_versions(t, &[], body.pointer("/metadata/totalAvailableResults").and_then(Value::as_u64)),
                        Value::Array(items) => operations::with_versions(t, items, body.pointer("/metadata/totalAvailableResults").and_then(Value::as_u64)),
                        _ => self.out.push_error(kind, format!("template {}: its versions answer's data is not a list", t.resource_id)),
                    },
                    Err(e) => self.out.push_error(kind, format!("template {}: its versions were not read: {}", t.resource_id, e.into_error().message())),
                }
            }
            for t in batch {
                self.out.push_service(t);
            }
        }
        Ok(())
    }

    /// The VMs (emitted when `emit`, else only learned from), noting in
    /// the data protection facts whether the list was read whole (no lost
    /// page, no malformed VM).
    fn vms_for_facts(&mut self, ctx: &Context, incremental: bool, emit: bool) -> Result<(), Error> {
        let (listed, complete) = self.tracked(Kind::Vm, |c| {
            if emit {
                c.vms(ctx, incremental)
            } else {
                c.learn(ctx, Kind::Vm)
            }
        });
        if let Some(facts) = self.out.facts.as_mut() {
            facts.vms_complete = complete;
            self.facts_read.0 = true;
        }
        listed
    }

    /// The recovery points (emitted when `emit`, else only learned from),
    /// each with `data.expired`.
    fn recovery_points(&mut self, ctx: &Context, emit: bool) -> Result<(), Error> {
        let (listed, complete) = self.tracked(Kind::RecoveryPoint, |c| {
            if !emit {
                return c.learn(ctx, Kind::RecoveryPoint);
            }
            let now = c.now;
            c.lister.list_kind(&mut c.client, &mut c.out, Kind::RecoveryPoint, false, |out, raw| match normalize::service_of(Kind::RecoveryPoint, ctx, raw) {
                Ok(mut cs) => {
                    protection::flag_recovery_point(&mut cs, now);
                    out.push_service(cs)
                }
                Err(msg) => out.push_error(Kind::RecoveryPoint, msg),
            })
        });
        if let Some(facts) = self.out.facts.as_mut() {
            facts.points_complete = complete;
            self.facts_read.1 = true;
        }
        listed
    }

    /// Runs a listing of `kind` and tells whether it was read whole: no
    /// lost page and no error resource of its type.
    fn tracked(&mut self, kind: Kind, list: impl FnOnce(&mut Self) -> Result<(), Error>) -> (Result<(), Error>, bool) {
        let ty = normalize::group_and_type(kind).1;
        let (lost_before, errors_before) = (std::mem::take(&mut self.lister.listing_incomplete), self.out.errors_of(ty));
        let listed = list(self);
        let complete = listed.is_ok() && !self.lister.listing_incomplete && self.out.errors_of(ty) == errors_before;
        self.lister.listing_incomplete |= lost_before;
        (listed, complete)
    }

    /// Lists `kind` only to learn the data protection facts from it (the
    /// kind was not asked for): nothing is emitted but lost pages, and a
    /// malformed entity is counted as one of its type's errors (logged,
    /// not emitted), so the list counts as not read whole.
    fn learn(&mut self, ctx: &Context, kind: Kind) -> Result<(), Error> {
        let now = self.now;
        let mut malformed = 0u64;
        let listed = self.lister.list_kind(&mut self.client, &mut self.out, kind, false, |out, raw| match normalize::service_of(kind, ctx, raw) {
            Ok(mut cs) => {
                if kind == Kind::RecoveryPoint {
                    protection::flag_recovery_point(&mut cs, now);
                }
                if let Some(facts) = out.facts.as_mut() {
                    facts.observe(&cs);
                }
            }
            Err(msg) => {
                malformed += 1;
                out.log(Level::Warn, "entity read for the data protection flags is malformed", &[("kind", kind.plural()), ("error", &msg)]);
            }
        });
        if malformed > 0 {
            self.lister.listing_incomplete = true;
        }
        listed
    }

    /// Protection policies (flagged against their RPO) or recovery plans
    /// (flagged for VMs that no longer exist); the VMs and, for policies,
    /// the recovery points are read first when this run has not read them.
    fn data_protection(&mut self, ctx: &Context, kind: Kind, incremental: bool) -> Result<(), Error> {
        if !self.facts_read.0 {
            self.vms_for_facts(ctx, incremental, false)?;
        }
        if kind == Kind::ProtectionPolicy && !self.facts_read.1 {
            self.recovery_points(ctx, false)?;
        }
        self.lister.list_kind(&mut self.client, &mut self.out, kind, false, |out, raw| match normalize::service_of(kind, ctx, raw) {
            Ok(mut cs) => {
                if let Some(facts) = out.facts.as_ref() {
                    if kind == Kind::ProtectionPolicy {
                        facts.flag_policy(&mut cs);
                    } else {
                        facts.flag_plan(&mut cs);
                    }
                }
                out.push_service(cs)
            }
            Err(msg) => out.push_error(kind, msg),
        })
    }

    /// The VMs, incrementally with option `incremental`.
    fn vms(&mut self, ctx: &Context, incremental: bool) -> Result<(), Error> {
        if incremental {
            self.cache.collect_vms(&mut self.client, &mut self.lister, &mut self.out, ctx)
        } else {
            self.lister.list_services(&mut self.client, &mut self.out, Kind::Vm, ctx, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Flow, HttpRequest, HttpResponse, TransportError};
    use crate::v4;
    use std::collections::{BTreeMap, VecDeque};

    type Answer = Result<HttpResponse, TransportError>;
    /// (path, offset) → answers in order.
    type Script = Vec<((String, u64), VecDeque<Answer>)>;
    /// (path, body, headers) of each request.
    type Sent = (String, Value, Vec<(String, String)>, Option<cloudforet_collector::Credential>);

    /// Answers list calls from a script keyed by (path, offset); records requests.
    #[derive(Default)]
    struct Scripted {
        answers: Script,
        requests: Vec<Sent>,
        slept: Vec<u64>,
        /// v4 requests answered 404 because nothing was scripted for them.
        v4_probes: Vec<String>,
        /// One-entity reads past a list's start (the shift checks between
        /// windows of pages), answered 404 unless scripted: the check is
        /// then skipped, as a lost check is in the real collector.
        shift_checks: Vec<(String, u64)>,
        /// The path and query of each request, per `send_many` batch.
        batches: Vec<Vec<String>>,
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
        fn send_many(&mut self, reqs: Vec<HttpRequest>) -> Vec<Result<HttpResponse, TransportError>> {
            self.batches.push(reqs.iter().map(|r| r.url.split_once("9440").unwrap().1.to_string()).collect());
            reqs.into_iter().map(|r| self.send(r)).collect()
        }
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
                    // v4: the `$page` index; v2.0: the offset (`offset=`,
                    // or `page` (1-based) times `count`).
                    let q = |k: &str| query.split('&').find_map(|kv| kv.strip_prefix(k)).and_then(|p| p.parse::<u64>().ok());
                    let at = q("$page=").or(q("offset=")).or_else(|| Some(q("page=")?.saturating_sub(1) * q("count=")?)).unwrap_or(0);
                    (Value::Null, at)
                }
            };
            let one = body.get("length").and_then(Value::as_u64) == Some(1) || query.split('&').any(|kv| ["$limit=1", "length=1", "count=1"].contains(&kv));
            if one && offset > 0 {
                self.shift_checks.push((path, offset));
                return Ok(HttpResponse { status: 404, headers: vec![], body: b"{}".to_vec() });
            }
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
        // Pages 2 and 4 went together, with a check of the entity before them.
        assert_eq!(t.shift_checks, vec![(VMS.to_string(), 1)]);
        let r = &t.requests[1];
        assert_eq!(r.1, json!({"kind": "vm", "offset": 0, "length": 2}));
        assert_eq!(r.3, Some(cloudforet_collector::Credential::Basic), "the host adds the credential");
        assert!(!r.2.iter().any(|(k, _)| k.eq_ignore_ascii_case("authorization")), "the guest never builds it");
        let vm = s.records.iter().find_map(|r| match r { Record::CloudService(c) => Some(c), _ => None }).unwrap();
        assert_eq!(vm.account.as_deref(), Some("pc-uuid-0000"));
        assert_eq!(vm.region_code.as_deref(), Some("c1-uuid"));
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
        assert_eq!((vm.account.as_deref(), vm.region_code.as_deref()), (Some("pc-uuid"), Some("c1-uuid")));
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
        collect(&mut script(), &mut s, &mut crate::NoState, "{}", SECRET, r#"{"resource_kinds":["vms"],"region_codes":["c2-uuid"]}"#).unwrap();
        assert_eq!(services(&s, "VirtualMachine"), vec!["vm-uuid-1"]);
        assert_eq!(regions(&s), vec!["c2-uuid"]);
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
            vec!["vms list page at offset 2 (of 6) failed: POST /api/nutanix/v3/vms/list: HTTP 500: INTERNAL_ERROR: boom (after 3 attempts)"]
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
        assert_eq!(m, "clusters list: Prism rejected the credentials of user 'admin': POST /api/nutanix/v3/clusters/list: HTTP 401: AUTHENTICATION_REQUIRED: Authentication required.");
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
        assert_eq!(e, Error::Unavailable("clusters list failed: POST /api/nutanix/v3/clusters/list: cannot reach https://pc.example:9440: refused (after 2 attempts)".into()));
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
        assert_eq!(regions, vec!["c1-uuid", "c2-uuid"]);
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
            .on(VMS, 2, ok(json!({"metadata": {"total_matches": 10}, "entities": []})))
            // Read in the same batch as offset 2; the empty page ends the list first.
            .on(VMS, 4, ok(vm_page(4, 2, 10)))
            .on(VMS, 6, ok(vm_page(6, 2, 10)))
            .on(VMS, 8, ok(vm_page(8, 2, 10)));
        let mut s = Collected::default();
        collect(&mut t, &mut s, &mut crate::NoState, r#"{"page_size":2}"#, SECRET, r#"{"resource_kinds":["vms"]}"#).unwrap();
        assert_eq!(services(&s, "VirtualMachine").len(), 2);
        assert_eq!(errors(&s), vec!["vms list returned no entities at offset 2 although total_matches is 10"]);
    }

    const V4_CLUSTERS: &str = "/api/clustermgmt/v4.0/config/clusters";

    fn v4_clusters() -> Value {
        json!({"data": [
            {"extId": "pc-uuid", "name": "pc", "config": {"clusterFunction": ["PRISM_CENTRAL"], "hypervisorTypes": ["$UNKNOWN"]}},
            {"extId": "c1-uuid", "name": "cluster-a", "config": {"clusterFunction": ["AOS"], "hypervisorTypes": ["AHV"]}}
        ], "metadata": {"totalAvailableResults": 2}})
    }

    fn requests_to(t: &Scripted, path: &str) -> usize {
        t.requests.iter().filter(|r| r.0 == path).count()
    }

    /// A v3 422's `details` (what is actually wrong) reaches the error
    /// resource, which names the list, the request, the status and the
    /// server's message; a 4xx is not retried.
    #[test]
    fn a_v3_422_names_the_list_request_status_and_details() {
        let body = r#"{"api_version": "3.1", "code": 422, "state": "ERROR", "message_list": [{"message": "Request could not be processed.", "reason": "INVALID_REQUEST", "details": {"length": ["must be at most 250"]}}]}"#;
        let mut t = Scripted::default().on(CLUSTERS, 0, ok(clusters_fixture())).on(VMS, 0, status(422, &[], body));
        let mut s = Collected::default();
        collect(&mut t, &mut s, &mut crate::NoState, "{}", SECRET, r#"{"resource_kinds":["vms"]}"#).unwrap();
        assert_eq!(
            errors(&s),
            [r#"vms list failed: POST /api/nutanix/v3/vms/list: HTTP 422: INVALID_REQUEST: Request could not be processed. (details: {"length":["must be at most 250"]})"#]
        );
        assert!(t.slept.is_empty(), "a 422 is not retried");
    }

    /// A cluster list Prism refuses ends the run with an error that names
    /// the list and maps the status (never `internal`).
    #[test]
    fn a_refused_cluster_list_names_the_list_and_maps_the_status() {
        for (code, want) in [(400, "invalid argument"), (422, "invalid argument"), (412, "unavailable"), (409, "unavailable"), (404, "not found"), (405, "invalid argument")] {
            let body = r#"{"state": "ERROR", "code": 0, "message_list": [{"message": "not now", "reason": "REFUSED"}]}"#;
            let mut t = Scripted::default().on(CLUSTERS, 0, status(code, &[], body));
            let e = collect(&mut t, &mut Collected::default(), &mut crate::NoState, r#"{"api_version": "v3"}"#, SECRET, "{}").unwrap_err();
            assert_eq!(e.to_string(), format!("{want}: clusters list failed: POST /api/nutanix/v3/clusters/list: HTTP {code}: REFUSED: not now"));
            assert_eq!(t.requests.len(), 1, "HTTP {code} is not retried");
        }
    }

    /// A v4 list the service answers 404 in its own error shape is a failed
    /// list, not a Prism without v4: with `auto` no silent fall back to v3.
    /// The gateway's 404 means the API is not there.
    #[test]
    fn a_services_404_is_an_error_and_the_gateways_404_means_not_offered() {
        let service_404 = r#"{"data": {"error": [{"code": "CLU-10404", "errorGroup": "CLUSTER_NOT_FOUND", "message": "Cluster entity not found", "severity": "ERROR"}], "$objectType": "clustermgmt.v4.error.ErrorResponse"}, "$dataItemDiscriminator": "clustermgmt.v4.error.ErrorResponse"}"#;
        let mut t = Scripted::default().on("/api/clustermgmt/v4.2/config/clusters", 0, status(404, &[], service_404)).on(CLUSTERS, 0, ok(clusters_fixture()));
        let e = collect(&mut t, &mut Collected::default(), &mut crate::NoState, "{}", SECRET, "{}").unwrap_err();
        let Error::NotFound(m) = &e else { panic!("{e:?}") };
        assert_eq!(m, "clusters list failed: GET /api/clustermgmt/v4.2/config/clusters: HTTP 404: CLU-10404: Cluster entity not found (group CLUSTER_NOT_FOUND)");
        assert_eq!(requests_to(&t, CLUSTERS), 0, "no fall back to v3");
        // The gateway's 404 at every revision: v3, and the log says so.
        let gateway = r#"{"message":"The requested URL was not found"}"#;
        let mut t = Scripted::default().on(CLUSTERS, 0, ok(clusters_fixture()));
        for rev in ["v4.2", "v4.1", "v4.0"] {
            t = t.on(&format!("/api/clustermgmt/{rev}/config/clusters"), 0, status(404, &[], gateway));
        }
        let mut s = Collected::default();
        collect(&mut t, &mut s, &mut crate::NoState, "{}", SECRET, r#"{"resource_kinds":["clusters"]}"#).unwrap();
        assert_eq!(services(&s, "Cluster").len(), 2);
        assert!(s.logs.iter().any(|(l, m)| *l == Level::Info && m == "v4 API not offered: using v3"), "{:?}", s.logs);
        // Forced v4 against the gateway's 404: says what was tried.
        let mut t = Scripted::default();
        for rev in ["v4.2", "v4.1", "v4.0"] {
            t = t.on(&format!("/api/clustermgmt/{rev}/config/clusters"), 0, status(404, &[], gateway));
        }
        let e = collect(&mut t, &mut Collected::default(), &mut crate::NoState, r#"{"api_version": "v4"}"#, SECRET, "{}").unwrap_err();
        assert_eq!(
            e,
            Error::NotFound("clusters list: option api_version=v4, but this Prism Central does not offer /api/clustermgmt/v4.0/config/clusters (its gateway answers 404 at v4.2, v4.1, v4.0)".into())
        );
    }

    /// Each v4 namespace's revision is found on its first list, newest
    /// first (every revision asked at once, the newest that answers used),
    /// kept for the run (one probe per namespace and revision), and logged.
    #[test]
    fn each_namespace_uses_the_newest_revision_it_serves() {
        let vms_41 = "/api/vmm/v4.1/ahv/config/vms";
        let vm = json!({"extId": "vm-1", "name": "vm-1", "cluster": {"extId": "c1-uuid"}});
        let mut t = Scripted::default()
            .on(V4_CLUSTERS, 0, ok(v4_clusters()))
            .on(vms_41, 0, ok(json!({"data": [vm], "metadata": {"totalAvailableResults": 1}})))
            .on("/api/clustermgmt/v4.0/config/hosts", 0, ok(json!({"data": [], "metadata": {"totalAvailableResults": 0}})));
        let mut s = Collected::default();
        collect(&mut t, &mut s, &mut crate::NoState, "{}", SECRET, r#"{"resource_kinds":["vms","hosts"]}"#).unwrap();
        assert_eq!(services(&s, "VirtualMachine"), ["vm-1"]);
        assert_eq!(errors(&s), Vec::<String>::new());
        let probes = |prefix: &str| t.v4_probes.iter().filter(|p| p.starts_with(prefix)).count();
        assert_eq!(probes("/api/clustermgmt/v4.2/"), 1, "clustermgmt probed once at v4.2: {:?}", t.v4_probes);
        assert_eq!(probes("/api/clustermgmt/v4.1/"), 1, "{:?}", t.v4_probes);
        assert_eq!(probes("/api/vmm/v4.2/"), 1, "{:?}", t.v4_probes);
        // v4.0 was asked with v4.2 and v4.1; vmm stays at v4.1.
        assert_eq!(probes("/api/vmm/v4.0/"), 1, "{:?}", t.v4_probes);
        assert_eq!(requests_to(&t, vms_41), 1, "{:?}", t.requests.iter().map(|r| &r.0).collect::<Vec<_>>());
        assert_eq!(requests_to(&t, "/api/clustermgmt/v4.0/config/hosts"), 1, "hosts at the namespace's revision, no new probe");
        let logged: Vec<&String> = s.logs.iter().filter(|(_, m)| m.starts_with("v4 API revision")).map(|(_, m)| m).collect();
        // clustermgmt and vmm found (prism and networking, for the VMs'
        // names, answer 404 at every revision here), and the run's summary.
        assert_eq!(logged, ["v4 API revision in use", "v4 API revision in use", "v4 API revisions used"]);
    }

    /// Once the cluster list is read, the first pages of every kind go out
    /// together (one batch; through v4 with each namespace's revisions at
    /// once), and the records still come kind after kind, as when they
    /// were read one after another (`page_concurrency: 1`).
    #[test]
    fn the_kinds_first_pages_are_read_together() {
        let v3_empty = || ok(json!({"metadata": {"total_matches": 0}, "entities": []}));
        let kinds_out = |s: &Collected| -> Vec<String> {
            s.records.iter().filter_map(|r| match r { Record::CloudServiceType(t) => Some(t.name.clone()), _ => None }).collect()
        };
        let v3 = |concurrency: u32| {
            let mut t = Scripted::default().on(CLUSTERS, 0, ok(clusters_fixture())).on(VMS, 0, ok(vm_page(0, 2, 2)));
            for kind in ["hosts", "subnets", "images"] {
                t = t.on(&format!("/api/nutanix/v3/{kind}/list"), 0, v3_empty());
            }
            let mut s = Collected::default();
            collect(&mut t, &mut s, &mut crate::NoState, &format!(r#"{{"api_version": "v3", "page_concurrency": {concurrency}}}"#), SECRET, "{}").unwrap();
            (t.batches, kinds_out(&s), services(&s, "VirtualMachine"))
        };
        let (together, kinds, vms) = v3(8);
        let lists = |kinds: &[&str]| -> Vec<String> { kinds.iter().map(|k| format!("/api/nutanix/v3/{k}/list")).collect() };
        assert_eq!(together, [lists(&["clusters"]), lists(&["hosts", "vms", "subnets", "images"])]);
        let (alone, kinds_alone, vms_alone) = v3(1);
        assert_eq!(alone, ["clusters", "hosts", "vms", "subnets", "images"].map(|k| lists(&[k])));
        assert_eq!((&kinds, &vms), (&kinds_alone, &vms_alone), "the same records in the same order");
        assert_eq!(kinds, ["Cluster", "Host", "VirtualMachine", "Subnet", "Image"]);

        // v4: the clusters' revisions, then the other lists' first
        // pages (VMs need the category, host and subnet lists first);
        // images, in the namespace the VM list settles, after it.
        let v4_empty = || ok(json!({"data": [], "metadata": {"totalAvailableResults": 0}}));
        let vm = json!({"extId": "vm-1", "name": "vm-1", "cluster": {"extId": "c1-uuid"}});
        let mut t = Scripted::default()
            .on(V4_CLUSTERS, 0, ok(v4_clusters()))
            .on("/api/vmm/v4.0/ahv/config/vms", 0, ok(json!({"data": [vm], "metadata": {"totalAvailableResults": 1}})));
        for path in ["/api/clustermgmt/v4.0/config/hosts", "/api/prism/v4.0/config/categories", "/api/networking/v4.0/config/subnets", "/api/vmm/v4.0/content/images"] {
            t = t.on(path, 0, v4_empty());
        }
        let mut s = Collected::default();
        collect(&mut t, &mut s, &mut crate::NoState, "{}", SECRET, "{}").unwrap();
        assert_eq!(services(&s, "VirtualMachine"), ["vm-1"]);
        assert_eq!(kinds_out(&s), ["Cluster", "Host", "VirtualMachine", "Subnet", "Image"]);
        let revisions = |path: &str| -> Vec<String> { v4::REVISIONS.iter().map(|r| format!("{}?$page=0&$limit=100", v4::at_revision(path, r))).collect() };
        let mut second = vec!["/api/clustermgmt/v4.0/config/hosts?$page=0&$limit=100".to_string()];
        for path in ["/api/prism/v4.0/config/categories", "/api/networking/v4.0/config/subnets", "/api/vmm/v4.0/ahv/config/vms"] {
            second.extend(revisions(path));
        }
        // The run's first request alone (after an outage, the host's
        // breaker lets one through), the other revisions together.
        let clusters = revisions(V4_CLUSTERS);
        assert_eq!(t.batches, [clusters[..1].to_vec(), clusters[1..].to_vec(), second, vec!["/api/vmm/v4.0/content/images?$page=0&$limit=100".to_string()]]);
    }

    /// A first page read ahead fails as it did when read in its turn: one
    /// lost (5xx after the retries, which go in its turn) is an error
    /// resource and the kinds before and after it are emitted; a 403 fails
    /// the whole call in that list's turn, after the kinds before it.
    #[test]
    fn a_first_page_read_ahead_fails_in_its_turn() {
        let v3_empty = || ok(json!({"metadata": {"total_matches": 0}, "entities": []}));
        let hosts = "/api/nutanix/v3/hosts/list";
        let script = |vms: Result<HttpResponse, TransportError>| {
            let mut t = Scripted::default().on(CLUSTERS, 0, ok(clusters_fixture())).on(VMS, 0, vms).on(hosts, 0, status(503, &[], "{}"));
            for kind in ["subnets", "images"] {
                t = t.on(&format!("/api/nutanix/v3/{kind}/list"), 0, v3_empty());
            }
            t
        };
        let mut t = script(ok(vm_page(0, 2, 2)));
        let mut s = Collected::default();
        collect(&mut t, &mut s, &mut crate::NoState, r#"{"api_version": "v3", "max_retries": 1}"#, SECRET, "{}").unwrap();
        assert_eq!(t.batches[1].len(), 4, "read ahead together: {:?}", t.batches);
        assert_eq!(requests_to(&t, hosts), 2, "one retry, in its turn");
        assert_eq!(t.slept, [250]);
        assert_eq!(errors(&s), ["hosts list failed: POST /api/nutanix/v3/hosts/list: HTTP 503: an error body without a message (2 bytes) (after 2 attempts)"]);
        assert_eq!(services(&s, "VirtualMachine").len(), 2);

        let denied = r#"{"state":"ERROR","code":403,"message_list":[{"message":"Access denied.","reason":"ACCESS_DENIED"}]}"#;
        let mut t = script(status(403, &[], denied));
        let mut s = Collected::default();
        let e = collect(&mut t, &mut s, &mut crate::NoState, r#"{"api_version": "v3", "max_retries": 0}"#, SECRET, "{}").unwrap_err();
        assert!(matches!(&e, Error::PermissionDenied(m) if m.starts_with("vms list: user 'admin' is not allowed")), "{e:?}");
        let types: Vec<&str> = s.records.iter().filter_map(|r| match r { Record::CloudServiceType(t) => Some(t.name.as_str()), _ => None }).collect();
        assert_eq!(types, ["Cluster", "Host", "VirtualMachine"], "the kinds before the VMs went out; none after");
    }

    /// No list is read twice in a run: v4 hosts, subnets and categories
    /// serve as names for VMs and as kinds, and a hosts list the gateway
    /// does not serve is asked for once (then read through v3).
    #[test]
    fn no_list_is_read_twice_in_a_run() {
        let empty = || ok(json!({"data": [], "metadata": {"totalAvailableResults": 0}}));
        let mut t = Scripted::default()
            .on(V4_CLUSTERS, 0, ok(v4_clusters()))
            .on("/api/vmm/v4.0/ahv/config/vms", 0, empty())
            .on("/api/networking/v4.0/config/subnets", 0, ok(json!({"data": [{"extId": "s-1", "name": "vlan-1", "clusterReference": "c1-uuid"}], "metadata": {"totalAvailableResults": 1}})))
            .on("/api/prism/v4.0/config/categories", 0, ok(json!({"data": [{"extId": "k-1", "key": "Env", "value": "Prod"}], "metadata": {"totalAvailableResults": 1}})))
            .on("/api/clustermgmt/v4.0/config/hosts", 0, status(404, &[], r#"{"message":"The requested URL was not found"}"#))
            .on("/api/nutanix/v3/hosts/list", 0, ok(json!({"metadata": {"total_matches": 0}, "entities": []})));
        let mut s = Collected::default();
        collect(&mut t, &mut s, &mut crate::NoState, "{}", SECRET, r#"{"resource_kinds":["vms","hosts","subnets","categories"]}"#).unwrap();
        assert_eq!(errors(&s), Vec::<String>::new());
        assert_eq!(services(&s, "Subnet"), ["s-1"]);
        assert_eq!(services(&s, "Category"), ["Env:Prod"]);
        let mut paths: Vec<&str> = t.requests.iter().map(|r| r.0.as_str()).collect();
        let all = paths.len();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), all, "each list once: {:?}", t.requests.iter().map(|r| &r.0).collect::<Vec<_>>());
        assert_eq!(requests_to(&t, "/api/nutanix/v3/hosts/list"), 1, "hosts through v3 after the gateway's 404");
    }

    /// An empty uuid is no uuid: the Prism Central pseudo-cluster with one
    /// gives no `account: ""` (the host instead, and an error resource
    /// naming it); an entity with one is an error resource naming it.
    #[test]
    fn an_empty_uuid_is_no_uuid() {
        let mut clusters = clusters_fixture();
        clusters["entities"][0]["metadata"]["uuid"] = json!("");
        let mut page = vm_page(0, 2, 2);
        page["entities"][1]["metadata"]["uuid"] = json!("");
        let mut t = Scripted::default().on(CLUSTERS, 0, ok(clusters)).on(VMS, 0, ok(page));
        let mut s = Collected::default();
        collect(&mut t, &mut s, &mut crate::NoState, r#"{"api_version": "v3"}"#, SECRET, r#"{"resource_kinds":["vms"]}"#).unwrap();
        let vm = s.records.iter().find_map(|r| match r { Record::CloudService(c) => Some(c), _ => None }).unwrap();
        assert_eq!(vm.account.as_deref(), Some("pc.example"));
        let errs = errors(&s);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].starts_with("the Prism Central pseudo-cluster '") && errs[0].contains("empty or missing uuid"), "{errs:?}");
        assert_eq!(errs[1], "malformed vm entity 'vm-1': empty or missing metadata.uuid");
    }

    /// Two entities with one uuid: the first is kept, the second is an
    /// error resource naming both; a region code the cluster list did not
    /// yield gets its Region.
    #[test]
    fn duplicate_uuids_are_reported_and_every_region_code_has_its_region() {
        let mut page = vm_page(0, 3, 3);
        page["entities"][2]["metadata"]["uuid"] = json!("vm-uuid-0");
        page["entities"][1]["status"]["cluster_reference"] = json!({"kind": "cluster", "uuid": "c9-uuid", "name": "cluster-gone"});
        let mut t = Scripted::default().on(CLUSTERS, 0, ok(clusters_fixture())).on(VMS, 0, ok(page));
        let mut s = Collected::default();
        collect(&mut t, &mut s, &mut crate::NoState, r#"{"api_version": "v3"}"#, SECRET, r#"{"resource_kinds":["vms"]}"#).unwrap();
        assert_eq!(services(&s, "VirtualMachine"), ["vm-uuid-0", "vm-uuid-1"]);
        assert_eq!(errors(&s), ["duplicate VirtualMachine uuid vm-uuid-0: 'vm-2' has the uuid of 'vm-0', emitted before; only the first is kept"]);
        let regions: Vec<(String, Vec<(String, String)>)> =
            s.records.iter().filter_map(|r| match r { Record::Region(g) => Some((g.region_code.clone(), g.tags.clone())), _ => None }).collect();
        let codes: Vec<&str> = regions.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(codes, ["c1-uuid", "c2-uuid", "c9-uuid"]);
        assert_eq!(regions[2].1, [("nutanix:cluster_uuid".to_string(), "c9-uuid".to_string())]);
        let names: Vec<&str> = s.records.iter().filter_map(|r| match r { Record::Region(g) => Some(g.name.as_str()), _ => None }).collect();
        assert_eq!(names, ["cluster-a", "cluster-b", "cluster-gone"]);
    }

    #[test]
    fn tasks_and_init() {
        let tasks = get_tasks(r#"{"resource_kinds":["vms","hosts"]}"#, SECRET).unwrap();
        assert_eq!(tasks, vec![
            json!({"resource_type": "inventory.CloudService", "resource_kinds": ["hosts"]}),
            json!({"resource_type": "inventory.CloudService", "resource_kinds": ["vms"]}),
        ]);
        assert!(matches!(get_tasks("{}", "{}"), Err(Error::MissingParameter(m)) if m == "secret field 'host' is required"));
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

    /// The collector's state in memory.
    use cloudforet_collector::testing::MemState;

    /// The deletion guard: the first run keeps its counts; a kind that
    /// comes back cut short by more than `max_drop` (or empty) is an error
    /// resource and keeps the old count; a shrink within the share is kept;
    /// a task of other kinds or regions judges only its own scope.
    #[test]
    fn the_deletion_guard_turns_a_short_list_into_an_error() {
        let mut st = MemState::default();
        let run = |st: &mut MemState, n: u64, options: &str, task: &str| {
            let mut t = Scripted::default().on(CLUSTERS, 0, ok(clusters_fixture())).on(VMS, 0, ok(vm_page(0, n, n)));
            let mut s = Collected::default();
            collect(&mut t, &mut s, st, options, SECRET, task).unwrap();
            (services(&s, "VirtualMachine").len(), errors(&s))
        };
        let v3 = r#"{"api_version": "v3"}"#;
        let vms = r#"{"resource_kinds":["vms"]}"#;
        assert_eq!(run(&mut st, 10, v3, vms), (10, vec![]), "the first run has nothing to compare with");
        assert_eq!(st.0.len(), 1, "{:?}", st.0);
        let (listed, errs) = run(&mut st, 4, v3, vms);
        assert_eq!(listed, 4, "what was listed is still emitted");
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("deletion guard: 4 vms listed, 10 after the last successful collection (60% fewer, more than the 50%"), "{}", errs[0]);
        assert_eq!(run(&mut st, 0, v3, vms).1.len(), 1, "to none");
        assert_eq!(run(&mut st, 6, v3, vms), (6, vec![]), "a drop of 40% (against the 10 kept) is allowed");
        assert_eq!(run(&mut st, 4, v3, vms).1, Vec::<String>::new(), "and becomes the new count: 6 → 4 is a third");
        assert_eq!(run(&mut st, 1, r#"{"api_version": "v3", "deletion_guard": {"max_drop": 0.8}}"#, vms).1, Vec::<String>::new(), "a larger max_drop confirms a real drop");
        assert_eq!(run(&mut st, 0, r#"{"api_version": "v3", "deletion_guard": false}"#, vms).1, Vec::<String>::new(), "off");
        // A task for one region has counts of its own; a task of hosts leaves the VMs' alone.
        let before = st.0.clone();
        assert_eq!(run(&mut st, 1, v3, r#"{"resource_kinds":["vms"],"region_codes":["c2-uuid"]}"#).1, Vec::<String>::new());
        assert_eq!(st.0.len(), before.len() + 1);
        assert!(before.iter().all(|(k, v)| st.0.get(k) == Some(v)), "the unlimited scope's count is untouched");
    }

    const RULES: &str = "/api/nutanix/v3/protection_rules/list";
    const POINTS: &str = "/api/nutanix/v3/vm_recovery_points/list";
    const PLANS: &str = "/api/nutanix/v3/recovery_plans/list";

    fn dp_script() -> Scripted {
        let mut vms = vm_page(0, 3, 3);
        for (i, env) in ["Production", "Production", "Test"].iter().enumerate() {
            vms["entities"][i]["metadata"]["categories"] = json!({"Environment": env});
        }
        let now = now_s();
        let point = |id: &str, vm: &str, age: i64| json!({"metadata": {"uuid": id, "creation_time": crate::time::format_time(now - age)},
            "status": {"name": id, "state": "COMPLETE", "resources": {"parent_vm_reference": {"kind": "vm", "uuid": vm}, "expiration_time_msecs": (now + 86_400) * 1000}}});
        let rule = json!({"metadata": {"uuid": "pp-1"}, "status": {"name": "gold", "resources": {
            "availability_zone_connectivity_list": [{"snapshot_schedule_list": [{"recovery_point_objective_secs": 3600}]}],
            "category_filter": {"type": "CATEGORIES_MATCH_ANY", "params": {"Environment": ["Production"]}}}}});
        let plan = json!({"metadata": {"uuid": "plan-1"}, "status": {"name": "dr", "resources": {"stage_list": [{"stage_work": {"recover_entities": {"entity_info_list": [
            {"any_entity_reference": {"kind": "vm", "uuid": "vm-uuid-0"}}, {"any_entity_reference": {"kind": "vm", "uuid": "vm-uuid-9", "name": "deleted"}}]}}}]}}});
        let page = |entities: Vec<Value>| json!({"metadata": {"total_matches": entities.len(), "offset": 0, "length": entities.len()}, "entities": entities});
        Scripted::default()
            .on(CLUSTERS, 0, ok(clusters_fixture()))
            .on(VMS, 0, ok(vms))
            .on(POINTS, 0, ok(page(vec![point("rp-0", "vm-uuid-0", 600), point("rp-1", "vm-uuid-1", 7_200)])))
            .on(RULES, 0, ok(page(vec![rule])))
            .on(PLANS, 0, ok(page(vec![plan])))
    }

    fn service<'c>(c: &'c Collected, ty: &str) -> &'c crate::record::CloudService {
        c.records.iter().find_map(|r| match r { Record::CloudService(cs) if cs.cloud_service_type == ty => Some(cs), _ => None }).unwrap()
    }

    /// Policies and plans asked for alone: the VMs and recovery points are
    /// read (once each, not emitted) for their flags.
    #[test]
    fn policies_and_plans_are_flagged_from_vms_and_recovery_points_read_once() {
        let mut t = dp_script();
        let mut s = Collected::default();
        collect(&mut t, &mut s, &mut crate::NoState, r#"{"api_version":"v3"}"#, SECRET, r#"{"resource_kinds":["protection_policies","recovery_plans"]}"#).unwrap();
        assert!(errors(&s).is_empty(), "{:?}", errors(&s));
        assert!(services(&s, "VirtualMachine").is_empty() && services(&s, "RecoveryPoint").is_empty(), "read, not emitted");
        let p = service(&s, "ProtectionPolicy");
        assert_eq!(p.data["rpo_violated"], true);
        assert_eq!(p.data["rpo_violated_vms"], json!([{"uuid": "vm-uuid-1", "name": "vm-1"}]));
        assert_eq!(p.data["protected_vm_count"], 2, "vm-2 is not in Production");
        let plan = service(&s, "RecoveryPlan");
        assert_eq!(plan.data["missing_vms"], json!([{"uuid": "vm-uuid-9", "name": "deleted"}]));
        assert_eq!(plan.data["has_missing_vms"], true);
        for path in [VMS, POINTS, RULES, PLANS] {
            assert_eq!(requests_to(&t, path), 1, "{path}");
        }
    }

    /// Every data protection kind asked for: each list read once, the VMs
    /// and recovery points emitted and learned from on the way out; a lost
    /// recovery point page leaves the policy's flag undecided, never false.
    #[test]
    fn all_data_protection_kinds_each_list_once_and_lost_pages_decide_nothing() {
        let kinds = r#"{"resource_kinds":["vms","recovery_points","protection_policies","recovery_plans"]}"#;
        let mut t = dp_script();
        let mut s = Collected::default();
        collect(&mut t, &mut s, &mut crate::NoState, r#"{"api_version":"v3"}"#, SECRET, kinds).unwrap();
        assert_eq!(services(&s, "RecoveryPoint"), ["rp-0", "rp-1"]);
        assert_eq!(service(&s, "RecoveryPoint").data["expired"], false);
        assert_eq!(service(&s, "ProtectionPolicy").data["rpo_violated_count"], 1);
        for path in [VMS, POINTS, RULES, PLANS] {
            assert_eq!(requests_to(&t, path), 1, "{path}");
        }
        // The recovery point page lost: no VM can be said to violate.
        let mut t = dp_script();
        t.answers.retain(|((p, _), _)| p != POINTS);
        let mut t = t.on(POINTS, 0, status(503, &[], "{}"));
        let mut s = Collected::default();
        collect(&mut t, &mut s, &mut crate::NoState, r#"{"api_version":"v3","max_retries":0}"#, SECRET, kinds).unwrap();
        let p = service(&s, "ProtectionPolicy");
        assert_eq!(p.data["rpo_violated"], Value::Null, "{}", p.data);
        assert!(p.data["protected_vms"].as_array().unwrap().iter().all(|v| v["status"] == "UNKNOWN"));
        assert_eq!(errors(&s).len(), 1, "the lost page: {:?}", errors(&s));
    }

    /// A template's versions: one call per template, at most option
    /// `max_template_version_calls` a run, enforced here: the templates
    /// past it keep their active version only (`data.versions` null) and
    /// the run logs a warning; a failed versions call is an error resource
    /// naming the template, whose record still goes out.
    #[test]
    fn template_versions_are_read_per_template_within_the_cap() {
        const TEMPLATES: &str = "/api/vmm/v4.0/content/templates";
        let tpl = |i: usize| json!({"extId": format!("t-{i}"), "templateName": format!("tpl-{i}"), "templateVersionSpec": {"extId": format!("tv-{i}"), "versionName": "v1", "isActiveVersion": true}});
        let versions = |i: usize| {
            json!({"data": [{"extId": format!("old-{i}"), "versionName": "v0", "isActiveVersion": false, "createTime": "2024-01-01T00:00:00Z"},
                            {"extId": format!("tv-{i}"), "versionName": "v1", "isActiveVersion": true, "createTime": "2024-02-01T00:00:00Z"}],
                   "metadata": {"totalAvailableResults": 2}})
        };
        let script = || {
            let mut t = Scripted::default()
                .on(V4_CLUSTERS, 0, ok(v4_clusters()))
                .on(TEMPLATES, 0, ok(json!({"data": (0..5).map(tpl).collect::<Vec<_>>(), "metadata": {"totalAvailableResults": 5}})));
            for i in 0..5 {
                let answer = if i == 1 { status(500, &[], "{}") } else { ok(versions(i)) };
                t = t.on(&format!("{TEMPLATES}/t-{i}/versions"), 0, answer);
            }
            t
        };
        let templates = |s: &Collected| -> Vec<(String, Value)> {
            s.records
                .iter()
                .filter_map(|r| match r {
                    Record::CloudService(cs) if cs.cloud_service_type == "VmTemplate" => Some((cs.resource_id.clone(), cs.data["versions"].clone())),
                    _ => None,
                })
                .collect()
        };
        let warned = |s: &Collected| s.logs.iter().any(|(l, m)| *l == Level::Warn && m.contains("max_template_version_calls"));
        let asked = |t: &Scripted| -> Vec<String> { t.requests.iter().filter(|r| r.0.ends_with("/versions")).map(|r| r.0.clone()).collect() };

        let mut t = script();
        let mut s = Collected::default();
        collect(&mut t, &mut s, &mut crate::NoState, r#"{"max_template_version_calls": 3, "max_retries": 0}"#, SECRET, r#"{"resource_kinds":["vm_templates"]}"#).unwrap();
        assert_eq!(asked(&t), (0..3).map(|i| format!("{TEMPLATES}/t-{i}/versions")).collect::<Vec<_>>(), "three calls, the cap");
        let got = templates(&s);
        assert_eq!(got.len(), 5, "every template goes out");
        let by_id: BTreeMap<String, Value> = got.into_iter().collect();
        assert_eq!(by_id["t-0"].as_array().map(|v| v.iter().map(|x| x["uuid"].clone()).collect::<Vec<_>>()), Some(vec![json!("tv-0"), json!("old-0")]), "newest first");
        assert_eq!(by_id["t-2"].as_array().map(Vec::len), Some(2));
        for id in ["t-1", "t-3", "t-4"] {
            assert_eq!(by_id[id], Value::Null, "{id}: versions not read");
        }
        assert!(warned(&s), "{:?}", s.logs);
        let errs = errors(&s);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("template t-1: its versions were not read: "), "{errs:?}");

        // Under the cap: every template's versions, no warning.
        let mut t = script();
        let mut s = Collected::default();
        collect(&mut t, &mut s, &mut crate::NoState, r#"{"max_retries": 0}"#, SECRET, r#"{"resource_kinds":["vm_templates"]}"#).unwrap();
        assert_eq!(asked(&t).len(), 5);
        assert!(!warned(&s));
        // Together, `page_concurrency` (8) at once: one batch.
        let batches: Vec<usize> = t.batches.iter().map(|b| b.iter().filter(|p| p.contains("/versions")).count()).filter(|n| *n > 0).collect();
        assert_eq!(batches, [5], "{:?}", t.batches);
        let mut t = script();
        collect(&mut t, &mut Collected::default(), &mut crate::NoState, r#"{"max_retries": 0, "page_concurrency": 2}"#, SECRET, r#"{"resource_kinds":["vm_templates"]}"#).unwrap();
        let batches: Vec<usize> = t.batches.iter().map(|b| b.iter().filter(|p| p.contains("/versions")).count()).filter(|n| *n > 0).collect();
        assert_eq!(batches, [2, 2, 1], "{:?}", t.batches);
        // An answer whose data is not a list (t-1's, after its 500 is
        // retried): an error, the template still out.
        let mut t = script().on(&format!("{TEMPLATES}/t-1/versions"), 0, ok(json!({"data": "x"})));
        let mut s = Collected::default();
        collect(&mut t, &mut s, &mut crate::NoState, r#"{"max_retries": 1}"#, SECRET, r#"{"resource_kinds":["vm_templates"]}"#).unwrap();
        assert_eq!(templates(&s).len(), 5);
        assert!(errors(&s).iter().any(|e| e == "template t-1: its versions answer's data is not a list"), "{:?}", errors(&s));
        // 0: none read.
        let mut t = script();
        let mut s = Collected::default();
        collect(&mut t, &mut s, &mut crate::NoState, r#"{"max_template_version_calls": 0}"#, SECRET, r#"{"resource_kinds":["vm_templates"]}"#).unwrap();
        assert!(asked(&t).is_empty() && warned(&s) && templates(&s).len() == 5);
    }

    // ---- Prism Element (v2.0) ---------------------------------------------

    const PE_UUID: &str = "00061de6-4d87-1d4a-0000-00000000a9b3";
    const V2_CLUSTER: &str = "/PrismGateway/services/rest/v2.0/cluster";
    const V2_VMS: &str = "/PrismGateway/services/rest/v2.0/vms/";
    const V2_HOSTS: &str = "/PrismGateway/services/rest/v2.0/hosts/";
    const V2_CONTAINERS: &str = "/PrismGateway/services/rest/v2.0/storage_containers/";
    const V2_NETWORKS: &str = "/PrismGateway/services/rest/v2.0/networks/";
    const V2_IMAGES: &str = "/PrismGateway/services/rest/v2.0/images/";

    fn pe_cluster() -> Value {
        json!({"uuid": PE_UUID, "name": "pe-a", "cluster_functions": ["NDFS"], "num_nodes": 2, "hypervisor_types": ["kKvm"], "version": "6.8.1"})
    }

    /// What a Prism Element's Aplos answers to the v3 cluster list: itself,
    /// and no Prism Central pseudo-cluster.
    fn pe_v3_clusters() -> Value {
        json!({"metadata": {"total_matches": 1, "offset": 0, "length": 1}, "entities": [
            {"metadata": {"uuid": PE_UUID}, "status": {"name": "pe-a", "resources": {"config": {"service_list": ["AOS"]}}}}]})
    }

    fn v2_vm(i: u64) -> Value {
        json!({"uuid": format!("00000000-0000-4000-8000-{i:012}"), "name": format!("vm-{i}"), "power_state": "on", "num_vcpus": 1, "num_cores_per_vcpu": 2,
               "memory_mb": 2048, "vm_disk_info": [{"disk_address": {"device_bus": "scsi", "device_index": 0, "vmdisk_uuid": format!("d-{i}")}, "is_cdrom": false, "size": 1073741824}]})
    }

    fn v2_page(items: Vec<Value>, total: Value) -> Result<HttpResponse, TransportError> {
        ok(json!({"metadata": {"grand_total_entities": total, "total_entities": total, "count": items.len()}, "entities": items}))
    }

    fn gets(t: &Scripted) -> Vec<String> {
        t.batches.iter().flatten().cloned().collect()
    }

    /// A Prism Element whose Aplos lists itself through v3: detected by the
    /// missing Prism Central, then clusters, hosts, VMs (paged by offset)
    /// and storage containers (paged by page) through v2.0, one call per
    /// page; the account and every region are the Prism Element's uuid.
    #[test]
    fn a_prism_element_is_detected_and_read_through_v2_one_call_per_page() {
        let mut t = Scripted::default()
            .on(CLUSTERS, 0, ok(pe_v3_clusters()))
            .on(V2_CLUSTER, 0, ok(pe_cluster()))
            .on(V2_VMS, 0, v2_page(vec![v2_vm(0), v2_vm(1)], json!(5)))
            .on(V2_VMS, 2, v2_page(vec![v2_vm(2), v2_vm(3)], json!(5)))
            .on(V2_VMS, 4, v2_page(vec![v2_vm(4)], json!(5)))
            .on(V2_HOSTS, 0, v2_page(vec![json!({"uuid": "h-1", "name": "pe-a-1", "cluster_uuid": PE_UUID})], json!(1)))
            .on(V2_CONTAINERS, 0, v2_page(vec![json!({"storage_container_uuid": "c-1", "name": "default", "cluster_uuid": PE_UUID, "replication_factor": 2})], json!(1)));
        let mut s = Collected::default();
        let kinds = r#"{"resource_kinds":["clusters","hosts","vms","vm_disks","storage_containers"]}"#;
        let sum = collect(&mut t, &mut s, &mut crate::NoState, r#"{"page_size":2,"page_concurrency":1}"#, SECRET, kinds).unwrap();
        assert_eq!(sum.errors, 0, "{:?}", errors(&s));
        assert_eq!(services(&s, "Cluster"), vec![PE_UUID]);
        assert_eq!(services(&s, "Host"), vec!["h-1"]);
        assert_eq!(services(&s, "VirtualMachine").len(), 5);
        assert_eq!(services(&s, "Disk").len(), 5);
        assert_eq!(services(&s, "StorageContainer"), vec!["c-1"]);
        for r in &s.records {
            if let Record::CloudService(cs) = r {
                assert_eq!((cs.account.as_deref(), cs.region_code.as_deref()), (Some(PE_UUID), Some(PE_UUID)), "{}", cs.resource_id);
            }
        }
        assert!(s.logs.iter().any(|(l, m)| *l == Level::Info && m == "endpoint is a Prism Element: using its v2.0 API"), "{:?}", s.logs);
        // The call map, exactly: the v4 probes, the v3 cluster list, the
        // v2.0 cluster, then one call per page.
        let v2: Vec<String> = gets(&t).into_iter().filter(|p| p.starts_with("/PrismGateway")).collect();
        assert_eq!(
            v2,
            [
                V2_CLUSTER.to_string(),
                format!("{V2_HOSTS}?page=1&count=2"),
                format!("{V2_VMS}?offset=0&length=2&include_vm_disk_config=true&include_vm_nic_config=true"),
                format!("{V2_VMS}?offset=2&length=2&include_vm_disk_config=true&include_vm_nic_config=true"),
                format!("{V2_VMS}?offset=4&length=2&include_vm_disk_config=true&include_vm_nic_config=true"),
                format!("{V2_CONTAINERS}?page=1&count=2"),
            ]
        );
        assert_eq!(requests_to(&t, CLUSTERS), 1);
        assert!(t.requests.iter().all(|r| r.0 == CLUSTERS || r.0.starts_with("/PrismGateway")), "no other Prism Central list");
    }

    /// Without any Prism Central cluster list (the v4 gateway's 404 at
    /// every revision, the v3 list 404) the Prism Element is found too; a
    /// kind it does not serve is an error resource, with no call.
    #[test]
    fn without_prism_central_lists_a_prism_element_answers_and_other_kinds_are_error_resources() {
        let mut t = Scripted::default()
            .on(CLUSTERS, 0, status(404, &[], "{}"))
            .on(V2_CLUSTER, 0, ok(pe_cluster()))
            .on(V2_VMS, 0, v2_page(vec![v2_vm(0)], json!(1)));
        let mut s = Collected::default();
        let sum = collect(&mut t, &mut s, &mut crate::NoState, "{}", SECRET, r#"{"resource_kinds":["vms","volume_groups","guest_tools","recovery_points"]}"#).unwrap();
        assert_eq!(services(&s, "VirtualMachine").len(), 1);
        let mut errs = errors(&s);
        errs.sort();
        let mut want: Vec<String> = ["volume_groups", "guest_tools", "recovery_points"].iter().map(|k| v2::not_served(Kind::from_plural(k).unwrap())).collect();
        want.sort();
        assert_eq!(errs, want);
        assert_eq!(sum.errors, 3);
        let vm = s.records.iter().find_map(|r| match r { Record::CloudService(c) => Some(c), _ => None }).unwrap();
        assert!(vm.data["guest_tools_installed"].is_null(), "v2.0 does not say");
        assert!(!gets(&t).iter().any(|p| p.contains("volume_groups") || p.contains("recovery")), "{:?}", gets(&t));
    }

    /// Neither a Prism Central nor a Prism Element: the run fails naming
    /// the endpoint and both answers; a Prism Central's v2.0 cluster is
    /// not taken for a Prism Element; 401 on the v2.0 cluster fails the
    /// run as any 401.
    #[test]
    fn neither_prism_central_nor_prism_element_fails_closed() {
        let mut t = Scripted::default().on(CLUSTERS, 0, status(404, &[], "{}"));
        let e = collect(&mut t, &mut Collected::default(), &mut crate::NoState, "{}", SECRET, "{}").unwrap_err();
        let Error::NotFound(m) = &e else { panic!("{e:?}") };
        assert!(m.starts_with("https://pc.example:9440 answers neither as a Prism Central (clusters list failed: POST /api/nutanix/v3/clusters/list: HTTP 404"), "{m}");
        assert!(m.contains("nor as a Prism Element (/PrismGateway/services/rest/v2.0/cluster GET /PrismGateway/services/rest/v2.0/cluster: HTTP 404"), "{m}");
        let mut pc = pe_cluster();
        pc["cluster_functions"] = json!(["MULTICLUSTER"]);
        let mut t = Scripted::default().on(CLUSTERS, 0, status(404, &[], "{}")).on(V2_CLUSTER, 0, ok(pc));
        let e = collect(&mut t, &mut Collected::default(), &mut crate::NoState, "{}", SECRET, "{}").unwrap_err();
        assert!(matches!(&e, Error::NotFound(m) if m.contains("is a Prism Central (cluster function MULTICLUSTER)")), "{e:?}");
        let mut t = Scripted::default().on(CLUSTERS, 0, status(404, &[], "{}")).on(V2_CLUSTER, 0, status(401, &[], "{}"));
        let e = collect(&mut t, &mut Collected::default(), &mut crate::NoState, "{}", SECRET, "{}").unwrap_err();
        assert!(matches!(e, Error::Unauthenticated(_)), "{e:?}");
        // A cluster list without the pseudo-cluster whose endpoint is no
        // Prism Element: collected as before, the account the host.
        let mut t = Scripted::default().on(CLUSTERS, 0, ok(pe_v3_clusters()));
        let mut s = Collected::default();
        collect(&mut t, &mut s, &mut crate::NoState, "{}", SECRET, r#"{"resource_kinds":["clusters"]}"#).unwrap();
        let cs = s.records.iter().find_map(|r| match r { Record::CloudService(c) => Some(c), _ => None }).unwrap();
        assert_eq!(cs.account.as_deref(), Some("pc.example"));
        // Option api_version names the Prism Central APIs: no v2.0 call.
        let mut t = Scripted::default().on(CLUSTERS, 0, ok(pe_v3_clusters()));
        collect(&mut t, &mut Collected::default(), &mut crate::NoState, r#"{"api_version":"v3"}"#, SECRET, r#"{"resource_kinds":["clusters"]}"#).unwrap();
        assert!(!gets(&t).iter().any(|p| p.starts_with("/PrismGateway")));
    }

    /// `verify` against a Prism Element without Aplos: the v3 cluster
    /// list's 404, then the v2.0 cluster; neither answering names both.
    #[test]
    fn verify_accepts_a_prism_element_and_names_an_endpoint_that_is_neither() {
        let mut t = Scripted::default().on(CLUSTERS, 0, status(404, &[], "{}")).on(V2_CLUSTER, 0, ok(pe_cluster()));
        verify(&mut t, &mut Collected::default(), "{}", SECRET).unwrap();
        let mut t = Scripted::default().on(CLUSTERS, 0, status(404, &[], "{}"));
        let e = verify(&mut t, &mut Collected::default(), "{}", SECRET).unwrap_err();
        assert!(matches!(&e, Error::NotFound(m) if m.starts_with("https://pc.example:9440 answers neither as a Prism Central nor as a Prism Element")), "{e:?}");
        // With api_version v3 the endpoint is a Prism Central: no v2.0 call.
        let mut t = Scripted::default().on(CLUSTERS, 0, status(404, &[], "{}")).on(V2_CLUSTER, 0, ok(pe_cluster()));
        assert!(verify(&mut t, &mut Collected::default(), r#"{"api_version":"v3"}"#, SECRET).is_err());
        assert!(!gets(&t).iter().any(|p| p.starts_with("/PrismGateway")));
    }

    fn v2_network(i: u64) -> Value {
        json!({"uuid": format!("net-{i}"), "name": format!("vlan-{i}"), "vlan_id": i, "vswitch_name": "br0", "logical_timestamp": 1,
               "ip_config": {"network_address": format!("10.0.{i}.0"), "prefix_length": 24, "default_gateway": format!("10.0.{i}.1"), "ipam_enabled": true, "pool": []}})
    }

    fn v2_image(i: u64) -> Value {
        json!({"uuid": format!("img-{i}"), "name": format!("image-{i}"), "image_type": "DISK_IMAGE", "image_state": "ACTIVE", "vm_disk_size": 1073741824,
               "storage_container_uuid": "c-1", "created_time_in_usecs": 1700000000000000u64, "updated_time_in_usecs": 1700000000000000u64})
    }

    /// Subnets and images of a Prism Element: its networks and images
    /// through v2.0, one call per page (offset/length), into the same
    /// types as a Prism Central's; a network total that changes between
    /// pages reads the list again, each network handed on once; a list
    /// answered whole on its first page (a window ignored) is one call;
    /// a non-object entity is an error resource among the good ones.
    #[test]
    fn networks_and_images_of_a_prism_element_are_read_one_call_per_page() {
        let mut t = Scripted::default()
            .on(CLUSTERS, 0, ok(pe_v3_clusters()))
            .on(V2_CLUSTER, 0, ok(pe_cluster()))
            .on(V2_NETWORKS, 0, v2_page(vec![v2_network(0), v2_network(1)], json!(3)))
            .on(V2_NETWORKS, 2, v2_page(vec![v2_network(1), v2_network(2)], json!(4)))
            .on(V2_NETWORKS, 0, v2_page(vec![v2_network(0), v2_network(1)], json!(4)))
            .on(V2_NETWORKS, 2, v2_page(vec![v2_network(2), v2_network(3)], json!(4)))
            .on(V2_IMAGES, 0, v2_page(vec![v2_image(0), v2_image(1), json!("not an object"), v2_image(2)], json!(4)));
        let mut s = Collected::default();
        let sum = collect(&mut t, &mut s, &mut crate::NoState, r#"{"page_size":2,"page_concurrency":1}"#, SECRET, r#"{"resource_kinds":["subnets","images"]}"#).unwrap();
        let mut nets = services(&s, "Subnet");
        let n = nets.len();
        nets.sort();
        nets.dedup();
        assert_eq!((n, nets), (4, vec!["net-0".to_string(), "net-1".into(), "net-2".into(), "net-3".into()]), "each network once");
        assert_eq!(services(&s, "Image"), vec!["img-0", "img-1", "img-2"]);
        assert_eq!(errors(&s), vec!["a v2.0 image entity is not a JSON object".to_string()]);
        assert_eq!(sum.errors, 1);
        for r in &s.records {
            if let Record::CloudService(cs) = r {
                assert_eq!((cs.account.as_deref(), cs.region_code.as_deref()), (Some(PE_UUID), Some(PE_UUID)), "{}", cs.resource_id);
            }
        }
        let v2: Vec<String> = gets(&t).into_iter().filter(|p| p.starts_with("/PrismGateway")).collect();
        assert_eq!(
            v2,
            [
                V2_CLUSTER.to_string(),
                format!("{V2_NETWORKS}?offset=0&length=2"),
                format!("{V2_NETWORKS}?offset=2&length=2"),
                format!("{V2_NETWORKS}?offset=0&length=2"),
                format!("{V2_NETWORKS}?offset=2&length=2"),
                format!("{V2_IMAGES}?offset=0&length=2&include_vm_disk_sizes=true"),
            ]
        );
        assert!(!gets(&t).iter().any(|p| p.starts_with("/api/") && (p.contains("subnets") || p.contains("images"))), "no Prism Central subnet or image list: {:?}", gets(&t));
    }

    /// Hostile v2.0 pages: a total that changes between pages, an entity on
    /// two pages, a huge total, entities that are not objects. Nothing is
    /// duplicated or lost, nothing panics, the list ends.
    #[test]
    fn hostile_v2_pages_neither_duplicate_nor_lose_entities() {
        // The total moves from 4 to 5 and VM 1 comes again on the second
        // page: the list is read again, each VM handed on once.
        let mut t = Scripted::default()
            .on(CLUSTERS, 0, ok(pe_v3_clusters()))
            .on(V2_CLUSTER, 0, ok(pe_cluster()))
            .on(V2_VMS, 0, v2_page(vec![v2_vm(0), v2_vm(1)], json!(4)))
            .on(V2_VMS, 0, v2_page(vec![v2_vm(0), v2_vm(1)], json!(5)))
            .on(V2_VMS, 2, v2_page(vec![v2_vm(1), v2_vm(2)], json!(5)))
            .on(V2_VMS, 2, v2_page(vec![v2_vm(2), v2_vm(3)], json!(5)))
            .on(V2_VMS, 4, v2_page(vec![v2_vm(4)], json!(5)));
        let mut s = Collected::default();
        collect(&mut t, &mut s, &mut crate::NoState, r#"{"page_size":2,"page_concurrency":1}"#, SECRET, r#"{"resource_kinds":["vms"]}"#).unwrap();
        let mut vms = services(&s, "VirtualMachine");
        let n = vms.len();
        vms.sort();
        vms.dedup();
        assert_eq!((n, vms.len()), (5, 5), "{vms:?}");
        // A huge total with short pages, then an empty one: bounded, and
        // the lost rest is an error resource, not a hang.
        let mut t = Scripted::default()
            .on(CLUSTERS, 0, ok(pe_v3_clusters()))
            .on(V2_CLUSTER, 0, ok(pe_cluster()))
            .on(V2_VMS, 0, v2_page(vec![v2_vm(0), json!("not an object")], json!(u64::MAX)))
            .on(V2_VMS, 2, v2_page(vec![], json!(u64::MAX)));
        let mut s = Collected::default();
        collect(&mut t, &mut s, &mut crate::NoState, r#"{"page_size":2,"page_concurrency":1}"#, SECRET, r#"{"resource_kinds":["vms"]}"#).unwrap();
        assert_eq!(services(&s, "VirtualMachine").len(), 1);
        let errs = errors(&s);
        assert!(errs.iter().any(|e| e == "a v2.0 vm entity is not a JSON object"), "{errs:?}");
        assert!(errs.iter().any(|e| e.starts_with("vms list returned no entities at offset 2")), "{errs:?}");
        // `entities` not a list: the page is retried, then lost.
        let mut t = Scripted::default()
            .on(CLUSTERS, 0, ok(pe_v3_clusters()))
            .on(V2_CLUSTER, 0, ok(pe_cluster()))
            .on(V2_HOSTS, 0, ok(json!({"metadata": {"total_entities": 1}, "entities": {"uuid": "h"}})));
        let mut s = Collected::default();
        collect(&mut t, &mut s, &mut crate::NoState, r#"{"max_retries":1}"#, SECRET, r#"{"resource_kinds":["hosts"]}"#).unwrap();
        assert!(errors(&s).iter().any(|e| e.contains("'entities' of a v2.0 list is not a list")), "{:?}", errors(&s));
    }


    /// A change to [`Pipelined`]'s VM list.
    type ListChange = Box<dyn FnMut(&mut Vec<u64>)>;

    /// A Prism whose VM list is read as it is when each request is
    /// performed, by a transport that performs a started batch at once
    /// (as the host does while the guest goes on) and answers it when it
    /// is finished; `change` alters the list after the request it names.
    struct Pipelined {
        vms: Vec<u64>,
        /// After this many VM list requests, apply the change once.
        change: Option<(usize, ListChange)>,
        /// Applied once before the list's first page is read a second time.
        on_rereading: Option<ListChange>,
        /// The page at this offset fails (500), every time.
        failing: Option<u64>,
        /// (offset, length) of each VM list request, in the order performed.
        reads: Vec<(u64, u64)>,
        /// Batches started and not finished, and the most there were.
        open: usize,
        most_open: usize,
        /// Batches started while another was open.
        overlapped: usize,
    }

    impl Pipelined {
        fn new(n: u64) -> Pipelined {
            Pipelined { vms: (0..n).collect(), change: None, on_rereading: None, failing: None, reads: vec![], open: 0, most_open: 0, overlapped: 0 }
        }
    }

    impl Transport for Pipelined {
        fn send(&mut self, req: HttpRequest) -> Answer {
            let path = req.url.split_once("9440").unwrap().1.to_string();
            if path == CLUSTERS {
                return ok(clusters_fixture());
            }
            if path != VMS {
                // v4 (not offered) and every other list: nothing there.
                return if req.body.is_none() { status(404, &[], "{}") } else { ok(json!({"metadata": {"total_matches": 0}, "entities": []})) };
            }
            let body: Value = serde_json::from_slice(req.body.as_deref().unwrap()).unwrap();
            let (offset, length) = (body["offset"].as_u64().unwrap(), body["length"].as_u64().unwrap());
            self.reads.push((offset, length));
            if offset == 0
                && self.reads.iter().filter(|r| r.0 == 0).count() == 2
                && let Some(mut f) = self.on_rereading.take()
            {
                f(&mut self.vms);
            }
            let answer = if self.failing == Some(offset) && length > 1 {
                status(500, &[], "{}")
            } else {
                let page: Vec<Value> = self.vms.iter().skip(offset as usize).take(length as usize).map(|&i| vm_entity(i)).collect();
                ok(json!({"metadata": {"total_matches": self.vms.len(), "offset": offset, "length": page.len()}, "entities": page}))
            };
            if let Some((after, _)) = &self.change
                && self.reads.len() >= *after
                && let Some((_, mut f)) = self.change.take()
            {
                f(&mut self.vms);
            }
            answer
        }
        fn start_many(&mut self, reqs: Vec<HttpRequest>) -> crate::Started {
            self.overlapped += usize::from(self.open > 0);
            self.open += 1;
            self.most_open = self.most_open.max(self.open);
            let answers = reqs.into_iter().map(|r| self.send(r)).collect();
            crate::Started::answered(answers)
        }
        fn finish_many(&mut self, started: crate::Started) -> Vec<Answer> {
            self.open -= 1;
            cloudforet_collector::io::finish_deferred(self, started)
        }
        fn sleep_ms(&mut self, _: u64) {}
    }

    fn pipelined_vms(t: &mut Pipelined, options: &str) -> Collected {
        let mut s = Collected::default();
        collect(t, &mut s, &mut crate::NoState, options, SECRET, r#"{"resource_kinds":["vms"]}"#).unwrap();
        s
    }

    fn vm_uuids(ids: impl IntoIterator<Item = u64>) -> Vec<String> {
        ids.into_iter().map(|i| format!("vm-uuid-{i}")).collect()
    }

    /// The next window is started before a window is handed on (at most
    /// two batches open), every VM comes once, in the list's order, and
    /// every page is read once.
    #[test]
    fn windows_are_pipelined_in_order_and_read_once() {
        let mut t = Pipelined::new(50);
        let s = pipelined_vms(&mut t, r#"{"page_size":2,"page_concurrency":3}"#);
        assert!(errors(&s).is_empty(), "{:?}", errors(&s));
        assert_eq!(services(&s, "VirtualMachine"), vm_uuids(0..50));
        assert!(t.overlapped >= 10, "windows read while the one before was handed on: {}", t.overlapped);
        assert_eq!(t.most_open, crate::prism::MAX_STARTED);
        // Read in the order started (a window ahead of the one sent when
        // its turn comes), each page once.
        let mut pages: Vec<u64> = t.reads.iter().filter(|r| r.1 == 2).map(|r| r.0).collect();
        pages.sort();
        assert_eq!(pages, (0..25).map(|p| p * 2).collect::<Vec<_>>(), "each page once");
        // With one request at a time nothing is started ahead.
        let mut t = Pipelined::new(50);
        let s = pipelined_vms(&mut t, r#"{"page_size":2,"page_concurrency":1}"#);
        assert_eq!(services(&s, "VirtualMachine"), vm_uuids(0..50));
        assert_eq!((t.most_open, t.reads.len()), (0, 25));
    }

    /// A page of a window started ahead that fails is an error resource in
    /// its turn; the pages around it are handed on, once, in order.
    #[test]
    fn a_failed_page_mid_pipeline_loses_only_itself() {
        let mut t = Pipelined::new(50);
        t.failing = Some(20);
        let s = pipelined_vms(&mut t, r#"{"page_size":2,"page_concurrency":3,"max_retries":0}"#);
        let errs = errors(&s);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].contains("offset 20"), "{errs:?}");
        assert_eq!(services(&s, "VirtualMachine"), vm_uuids((0..50).filter(|i| !(20..22).contains(i))));
        assert!(t.overlapped >= 10);
    }

    /// The list shifts while windows are open (one VM deleted before the
    /// part read, one created at the end: the total stays): the check of a
    /// window started ahead notices, the list is read again afresh (not
    /// from what was read ahead), and every VM that existed throughout
    /// comes once.
    #[test]
    fn a_shift_mid_pipeline_is_noticed_and_nothing_is_lost_or_doubled() {
        for after in [4, 9, 15] {
            let mut t = Pipelined::new(50);
            t.change = Some((
                after,
                Box::new(|vms: &mut Vec<u64>| {
                    vms.remove(1);
                    vms.push(1000);
                }),
            ));
            let s = pipelined_vms(&mut t, r#"{"page_size":2,"page_concurrency":3}"#);
            assert!(errors(&s).is_empty(), "after {after}: {:?}", errors(&s));
            assert!(s.logs.iter().any(|(_, m)| m.contains("reading it again")), "after {after}: the shift was noticed");
            let got = services(&s, "VirtualMachine");
            let mut unique = got.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), got.len(), "after {after}: a VM came twice");
            for id in vm_uuids((0..50).filter(|i| *i != 1)) {
                assert!(got.contains(&id), "after {after}: {id} is missing");
            }
            // The second reading read every page again.
            let pages = t.reads.iter().filter(|r| r.1 == 2 && r.0 == 48).count();
            assert_eq!(pages, 2, "after {after}: {:?}", t.reads);
        }
    }

    /// A list that shrinks while a window is read ahead ends its reading
    /// early; the next window's answers are dropped, not used by the
    /// second reading: a list grown back meanwhile is read afresh.
    #[test]
    fn a_reading_that_ends_early_drops_what_it_read_ahead() {
        for after in [17, 20, 23, 26] {
            let mut t = Pipelined::new(50);
            t.change = Some((after, Box::new(|vms: &mut Vec<u64>| drop(vms.drain(0..20)))));
            t.on_rereading = Some(Box::new(|vms: &mut Vec<u64>| vms.extend(100..120)));
            let s = pipelined_vms(&mut t, r#"{"page_size":2,"page_concurrency":3}"#);
            assert!(errors(&s).is_empty(), "after {after}: {:?}", errors(&s));
            let got = services(&s, "VirtualMachine");
            for id in vm_uuids((20..50).chain(100..120)) {
                assert!(got.contains(&id), "after {after}: {id} is missing: {got:?}");
            }
            let mut unique = got.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), got.len(), "after {after}: a VM came twice");
        }
    }
}
