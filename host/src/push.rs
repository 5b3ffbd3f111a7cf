//! A push run: one collection written into a CloudForet deployment through
//! its public APIs (what `cf-host run` does per tenant).
//!
//! ```text
//! guest ──emit──▶ spooler ──tx──▶ outbox (store) ──▶ deliverer ──upsert──▶ CloudForet
//!                    └─ error resources ─▶ run log           (bounded parallel,
//!                                                              one key at a time)
//! ```
//!
//! The spooler makes every batch durable before anything is sent. The
//! deliverer drains the tenant's outbox while the guest runs and after:
//! records of one match key are upserted one after another (two copies of
//! one resource never race into two creates), different keys in parallel
//! up to `concurrency`. While CloudForet is unavailable (retries spent or
//! breaker open) it pauses and tries again; after the collection it keeps
//! going for `deliver_timeout`, then leaves the rest spooled for the next
//! delivery. Records CloudForet refuses as invalid become error resources.
//! The deliverer reads the outbox a chunk ([`CHUNK`]) at a time, and what
//! CloudForet took of a chunk is acknowledged together at the chunk's end
//! ([`Outbox::delivered_many`]: one transaction, outbox deletes and ledger
//! rows); a chunk cut short (a crash, a lost lease, a dropped database
//! connection) stays spooled and is upserted again, unchanged.
//!
//! A complete run (collection succeeded, no error resource, outbox empty,
//! no task options narrowing it) ends with the sweep: cloud services pushed before and not seen for
//! `delete_after_missed` complete runs are deleted. Then the notification
//! (`Notification.create`) and the optional webhook.
//!
//! The run, its outcome and its error resources are recorded in the
//! sink's [`RunLog`] (the embedded store, or in fleet mode the shared
//! database: listed through any replica).
//!
//! A run that cannot start or record its outcome fails with a
//! [`PushError`]; delivery that stops short is the report's
//! [`DeliveryError`], the collection's own failure its [`RunError`].

use crate::cloudforet::client::{Connector, Upserted};
use crate::cloudforet::pb::notification::v1::{create_notification_request as notif, CreateNotificationRequest};
use crate::cloudforet::{ApiError, Category};
use crate::error::RunError;
use crate::host::state::StateBackend;
use crate::grpc::convert::json_to_struct;
use crate::job::{run_context, Counts};
use crate::record::{Record, ResourceType};
use crate::runtime::{CollectReport, ContextError, Plugin, Runtime};
use crate::fleet::push_leases::LeaseGuard;
use crate::spool::{Outbox, SpoolError, Spooled};
use crate::run_log::{RunLog, RunLogError};
use crate::webhook::{Event, Tally, Webhook};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Notify};

/// Records read from the outbox per delivery round.
pub const CHUNK: usize = 256;
/// Delivery attempts of a record CloudForet answers with an internal error
/// before it is recorded as refused.
pub const MAX_ATTEMPTS: i64 = 5;

#[derive(Clone, Debug)]
pub struct PushSettings {
    /// Upserts in flight per tenant.
    pub concurrency: usize,
    /// How long delivery goes on after the collection ended.
    pub deliver_timeout: Duration,
    /// Complete runs a pushed cloud service may be missing before it is
    /// deleted (0: never).
    pub delete_after_missed: u32,
    /// Wait between delivery rounds while CloudForet is unavailable.
    pub pause: Duration,
    /// `Notification.create`'s resource (e.g. `identity.Project`, id).
    pub notify_resource: Option<(String, String)>,
}

impl Default for PushSettings {
    fn default() -> PushSettings {
        PushSettings {
            concurrency: 4,
            deliver_timeout: Duration::from_secs(60),
            delete_after_missed: 3,
            pause: Duration::from_secs(1),
            notify_resource: None,
        }
    }
}

/// Where a push run writes.
pub struct Sink {
    pub connector: Arc<Connector>,
    /// Runs and their error resources: the embedded store, or in fleet
    /// mode the shared database's (with the outbox: a refused record
    /// becomes an error resource in the outbox's transaction).
    pub runs: Arc<dyn RunLog>,
    /// Guest state: the embedded store, or in fleet mode the shared
    /// database's, so a tenant's next run finds its incremental cache on
    /// whichever replica takes it.
    pub state: Arc<dyn StateBackend>,
    /// The outbox and the push ledger: the embedded store, or in fleet
    /// mode the shared database's.
    pub outbox: Arc<dyn Outbox>,
    /// Names the deployment in the outbox and ledger.
    pub name: String,
    pub settings: PushSettings,
    pub webhook: Option<Webhook>,
}

pub struct PushSpec {
    pub tenant: String,
    /// `scheme://host:port` of the endpoint; the run's only egress grant.
    pub endpoint: String,
    pub secret: Value,
    pub options: Value,
    pub task_options: Value,
    /// CloudForet project of the tenant's cloud services (and costs).
    pub project_id: Option<String>,
    /// With a cost data source (its id in CloudForet), the run also
    /// collects costs (`cost-source`) and writes them with `Cost.create`.
    pub cost_data_source_id: Option<String>,
    /// Fleet mode: the tenant's lease; nothing is sent to CloudForet once
    /// it is no longer live (what is left stays spooled).
    pub lease: Option<LeaseGuard>,
}

/// What the cost part of a run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CostRun {
    /// Cost tasks (days) run.
    pub tasks: usize,
    /// Cost lines emitted.
    pub lines: u64,
    /// When the synchronization started (RFC 3339), remembered once its
    /// costs are spooled.
    synced_at: String,
}

/// Why a push run could not run, or could not record its outcome.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The endpoint, secret or options are not usable; nothing ran.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// Recording the run or its error resources failed.
    #[error(transparent)]
    Runs(#[from] RunLogError),
    /// The outbox, the ledger or the cost synchronization failed.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// A batch could not be made durable: the rest of the run was dropped.
    #[error("cannot spool records: {0}")]
    Spooling(#[source] SpoolFailure),
}

/// The text, for callers that only report it.
impl From<PushError> for String {
    fn from(e: PushError) -> String {
        e.to_string()
    }
}

/// Why the spooler could not make a batch durable.
#[derive(Debug, thiserror::Error)]
pub enum SpoolFailure {
    /// Writing the outbox failed.
    #[error(transparent)]
    Outbox(#[from] SpoolError),
    /// Recording the batch's error resources failed.
    #[error(transparent)]
    Errors(#[from] RunLogError),
    /// The writing thread panicked or was cancelled.
    #[error(transparent)]
    Thread(tokio::task::JoinError),
}

/// Why delivery stopped short (what is left stays spooled).
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// CloudForet stayed unavailable until `deliver_timeout`.
    #[error("CloudForet unavailable: {0}")]
    Unavailable(ApiError),
    /// CloudForet refused the connector (token refused, permission denied).
    #[error("CloudForet refused the connector: {0}")]
    Refused(ApiError),
    /// The outbox failed.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// Fleet mode: the tenant's lease ended (not renewed in time); another
    /// replica delivers the rest.
    #[error("the tenant's fleet lease ended; the rest stays spooled")]
    LeaseEnded,
}

#[derive(Debug, Default)]
pub struct PushReport {
    pub run_id: String,
    /// Delivered records of this run per label (errors: error resources
    /// and records CloudForet refused).
    pub counts: BTreeMap<String, Counts>,
    /// Records of earlier runs delivered by this one.
    pub redelivered: u64,
    /// Cloud services deleted by the sweep.
    pub deleted: u64,
    /// Records left in the outbox for the next delivery.
    pub spooled: u64,
    pub elapsed: Duration,
    pub collect: Option<CollectReport>,
    pub error: Option<RunError>,
    pub costs: Option<CostRun>,
    /// Why the cost part failed (the inventory part is unaffected).
    pub cost_error: Option<RunError>,
    /// Why delivery stopped short, if it did.
    pub delivery_error: Option<DeliveryError>,
}

impl PushReport {
    pub fn totals(&self) -> Counts {
        Counts::sum(self.counts.values())
    }

    /// Collection and delivery both completed.
    pub fn complete(&self) -> bool {
        self.error.is_none() && self.cost_error.is_none() && self.delivery_error.is_none() && self.spooled == 0
    }

    pub fn summary_json(&self) -> Value {
        let t = self.totals();
        json!({
            "created": t.created, "updated": t.updated, "unchanged": t.unchanged, "errors": t.errors,
            "redelivered": self.redelivered, "deleted": self.deleted, "spooled": self.spooled,
            "per_type": Counts::per_type_json(&self.counts),
            "error": self.error.as_ref().map(|e| e.to_string()),
            "cost_tasks": self.costs.as_ref().map(|c| c.tasks),
            "cost_lines": self.costs.as_ref().map(|c| c.lines),
            "cost_error": self.cost_error.as_ref().map(|e| e.to_string()),
            "delivery_error": self.delivery_error.as_ref().map(|e| e.to_string()),
        })
    }
}

/// Why a delivery round stopped.
enum Round {
    /// The outbox had nothing (more) for this tenant.
    Empty,
    /// Some records went out; read again.
    Progress,
    /// CloudForet is unavailable: pause, then try again.
    Unavailable(ApiError),
    /// Delivery cannot succeed with this configuration (token refused,
    /// permission denied) or the store failed.
    Fatal(DeliveryError),
}

struct Deliverer<'a> {
    sink: &'a Sink,
    tenant: &'a str,
    run_id: &'a str,
    lease: Option<&'a LeaseGuard>,
    counts: Mutex<(BTreeMap<String, Counts>, u64)>,
    /// What CloudForet took this round, acknowledged together at its end
    /// (at most [`CHUNK`]).
    taken: Mutex<Vec<(Spooled, Upserted)>>,
}

impl Deliverer<'_> {
    async fn round(&self) -> Round {
        let rows = match self.sink.outbox.spooled(&self.sink.name, self.tenant, CHUNK) {
            Ok(r) if r.is_empty() => return Round::Empty,
            Ok(r) => r,
            Err(e) => return Round::Fatal(e.into()),
        };
        // One match key's records in order; different keys in parallel.
        let mut groups: Vec<Vec<Spooled>> = Vec::new();
        let mut index: BTreeMap<(crate::record::ResourceType, String), usize> = BTreeMap::new();
        for r in rows {
            let k = (r.resource_type, r.key.clone());
            match index.get(&k) {
                Some(&i) if !r.key.is_empty() => groups[i].push(r),
                _ => {
                    index.insert(k, groups.len());
                    groups.push(vec![r]);
                }
            }
        }
        let slots = tokio::sync::Semaphore::new(self.sink.settings.concurrency.max(1));
        let mut work = Vec::with_capacity(groups.len());
        for g in groups {
            let slots = &slots;
            work.push(async move {
                let _slot = slots.acquire().await;
                self.group(g).await
            });
        }
        let outcomes: Vec<Round> = futures::future::join_all(work).await;
        let mut result = Round::Progress;
        for o in outcomes {
            match (o, &result) {
                (f @ Round::Fatal(_), _) => result = f,
                (u @ Round::Unavailable(_), Round::Progress) => result = u,
                _ => {}
            }
        }
        // Whatever stopped the round, what CloudForet took leaves the
        // outbox (one transaction); if that fails, all of it stays spooled.
        match (self.acknowledge(), result) {
            (Ok(()), result) => result,
            (Err(e), Round::Fatal(first)) => {
                tracing::warn!(tenant = self.tenant, error = %e, "delivered records not acknowledged; they stay spooled");
                Round::Fatal(first)
            }
            (Err(e), _) => Round::Fatal(e.into()),
        }
    }

    /// Acknowledges the round's delivered records in one call (out of the
    /// outbox, into the ledger), then counts them.
    fn acknowledge(&self) -> Result<(), SpoolError> {
        let taken = std::mem::take(&mut *self.taken.lock().unwrap_or_else(|p| p.into_inner()));
        if taken.is_empty() {
            return Ok(());
        }
        let acks: Vec<(&Spooled, &str)> = taken.iter().map(|(row, up)| (row, up.id())).collect();
        self.sink.outbox.delivered_many(&self.sink.name, self.tenant, &acks)?;
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        for (row, up) in &taken {
            if row.run_id != self.run_id {
                c.1 += 1;
                continue;
            }
            let n = c.0.entry(row.label.clone()).or_default();
            match up {
                Upserted::Created(_) => n.created += 1,
                Upserted::Updated(_) => n.updated += 1,
                Upserted::Unchanged(_) => n.unchanged += 1,
            }
        }
        Ok(())
    }

    async fn group(&self, rows: Vec<Spooled>) -> Round {
        for row in rows {
            if self.lease.is_some_and(|l| !l.live()) {
                return Round::Fatal(DeliveryError::LeaseEnded);
            }
            let r = self.sink.connector.upsert(row.resource_type, &row.resource).await;
            let store = &self.sink.outbox;
            match r {
                Ok(up) => self.taken.lock().unwrap_or_else(|p| p.into_inner()).push((row, up)),
                Err(e) => match e.category() {
                    Category::Unavailable => {
                        let _ = store.attempt_failed(&row, &e.to_string());
                        return Round::Unavailable(e);
                    }
                    Category::Auth | Category::Denied => return Round::Fatal(DeliveryError::Refused(e)),
                    Category::Other if row.attempts + 1 < MAX_ATTEMPTS => {
                        let _ = store.attempt_failed(&row, &e.to_string());
                        return Round::Unavailable(e);
                    }
                    Category::Invalid | Category::Other => {
                        tracing::warn!(tenant = self.tenant, label = %row.label, error = %e, "CloudForet refused a record");
                        // Counted with the run's error resources.
                        if let Err(se) = store.refused(self.tenant, &row, &e.to_string()) {
                            return Round::Fatal(se.into());
                        }
                    }
                },
            }
        }
        Round::Progress
    }

    /// Delivers until the outbox is empty after `done`, or delivery is
    /// impossible, or `deliver_timeout` after `done` has passed.
    async fn run(&self, mut done: watch::Receiver<bool>, more: &Notify) -> Option<DeliveryError> {
        let mut deadline: Option<Instant> = None;
        loop {
            if deadline.is_none() && *done.borrow() {
                deadline = Some(Instant::now() + self.sink.settings.deliver_timeout);
            }
            let wait = match self.round().await {
                Round::Progress => continue,
                Round::Fatal(e) => return Some(e),
                Round::Empty if deadline.is_some() => return None,
                Round::Empty => None,
                Round::Unavailable(e) => {
                    tracing::warn!(tenant = self.tenant, error = %e, "CloudForet unavailable; records stay spooled");
                    Some(e)
                }
            };
            if let Some(d) = deadline
                && Instant::now() >= d
                && let Some(e) = wait
            {
                return Some(DeliveryError::Unavailable(e));
            }
            let pause = self.sink.settings.pause;
            tokio::select! {
                _ = more.notified(), if wait.is_none() => {}
                _ = done.changed(), if deadline.is_none() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// Delivers what earlier runs left in a tenant's outbox (no collection):
/// `(records delivered, why delivery stopped short)`. In fleet mode under
/// the tenant's `lease`.
pub async fn redeliver(sink: &Sink, tenant: &str, lease: Option<&LeaseGuard>) -> (u64, Option<DeliveryError>) {
    let d = Deliverer { sink, tenant, run_id: "", lease, counts: Mutex::new((BTreeMap::new(), 0)), taken: Mutex::new(Vec::new()) };
    let (_done, rx) = watch::channel(true);
    let error = d.run(rx, &Notify::new()).await;
    let delivered = d.counts.into_inner().unwrap_or_else(|p| p.into_inner()).1;
    (delivered, error)
}

/// Runs one push collection for a tenant.
pub async fn run(runtime: &Runtime, plugin: &Plugin, sink: &Sink, spec: PushSpec) -> Result<PushReport, PushError> {
    let ctx = run_context(runtime, &spec.tenant, &spec.endpoint, spec.secret, spec.options, sink.state.clone())?;
    let run_id = ctx.run_id.clone();
    let holder = spec.lease.as_ref().map(LeaseGuard::holder);
    sink.runs.begin_run(&sink.name, &run_id, &spec.tenant, &plugin.name, &plugin.digest, holder)?;
    let started = Instant::now();

    let (tx, mut rx) = mpsc::channel::<Vec<Record>>(crate::job::CHANNEL_BATCHES);
    let (done_tx, done_rx) = watch::channel(false);
    let more = Notify::new();
    let deliverer = Deliverer {
        sink,
        tenant: &spec.tenant,
        run_id: &run_id,
        lease: spec.lease.as_ref(),
        counts: Mutex::new((BTreeMap::new(), 0)),
        taken: Mutex::new(Vec::new()),
    };
    let tally = Mutex::new(Tally::default());
    let spooler = async {
        let mut failed: Option<SpoolFailure> = None;
        while let Some(mut batch) = rx.recv().await {
            if failed.is_some() {
                continue;
            }
            // The outbox holds exactly what is sent (a redelivery by another
            // process sends the same).
            for r in batch.iter_mut() {
                let t = r.resource_type;
                if let Some(p) = spec.project_id.as_ref().filter(|_| t == ResourceType::CloudService || t == ResourceType::Cost) {
                    r.resource_mut().insert("project_id".into(), Value::String(p.clone()));
                }
                if let Some(ds) = spec.cost_data_source_id.as_ref().filter(|_| t == ResourceType::Cost) {
                    r.resource_mut().insert("data_source_id".into(), Value::String(ds.clone()));
                }
            }
            let errors: Vec<Record> = batch.iter().filter(|r| r.is_error()).cloned().collect();
            {
                let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
                batch.iter().for_each(|r| t.add(r));
            }
            let (runs, outbox) = (sink.runs.clone(), sink.outbox.clone());
            let (name, tenant, run) = (sink.name.clone(), spec.tenant.clone(), run_id.clone());
            // Durable before anything is sent; error resources are recorded.
            let written = tokio::task::spawn_blocking(move || -> Result<(), SpoolFailure> {
                outbox.spool(&name, &tenant, &run, &batch)?;
                runs.record_errors(&tenant, &run, &errors)?;
                Ok(())
            })
            .await
            .map_err(SpoolFailure::Thread)
            .and_then(|r| r);
            match written {
                Ok(_) => more.notify_one(),
                Err(e) => failed = Some(e),
            }
        }
        failed
    };
    let collection = async {
        let inventory = runtime.collect(plugin, &ctx, &spec.task_options, tx.clone()).await;
        let costs = match (&inventory, &spec.cost_data_source_id) {
            (Ok(_), Some(ds)) => Some(collect_costs(runtime, plugin, &ctx, sink, ds, tx.clone()).await),
            _ => None,
        };
        drop(tx);
        (inventory, costs)
    };
    let collect_and_spool = async {
        let (r, spool_failure) = tokio::join!(collection, spooler);
        let _ = done_tx.send(true);
        (r, spool_failure)
    };
    let (((result, costs), spool_failure), delivery_error) = tokio::join!(collect_and_spool, deliverer.run(done_rx, &more));
    if let Some(e) = spool_failure {
        return Err(PushError::Spooling(e));
    }
    // The costs are durable in the outbox: the next synchronization starts
    // from this one.
    if let (Some(Ok(c)), Some(ds)) = (&costs, &spec.cost_data_source_id) {
        sink.outbox.set_cost_synced(&sink.name, &spec.tenant, ds, &c.synced_at)?;
    }
    let (costs, cost_error) = match costs {
        Some(Ok(c)) => (Some(c), None),
        Some(Err(e)) => (None, Some(e)),
        None => (None, None),
    };
    let tally = tally.into_inner().unwrap_or_else(|p| p.into_inner());
    let (mut counts, redelivered) = deliverer.counts.into_inner().unwrap_or_else(|p| p.into_inner());
    for (label, n) in sink.runs.error_counts_of_run(&run_id)? {
        counts.entry(label).or_default().errors += n;
    }
    let (collect, error) = match result {
        Ok(r) => (Some(r), None),
        Err(e) => (None, Some(e)),
    };
    let mut report = PushReport {
        run_id: run_id.clone(),
        counts,
        redelivered,
        spooled: sink.outbox.spool_len(&sink.name, Some(&spec.tenant))?,
        collect,
        error,
        costs,
        cost_error,
        delivery_error,
        ..Default::default()
    };
    if sweeps(&report, &spec.task_options) {
        report.deleted = sweep(sink, &spec.tenant, &run_id, spec.lease.as_ref()).await?;
    }
    report.elapsed = started.elapsed();
    let status = if report.error.is_some() { "FAILURE" } else { "SUCCESS" };
    sink.runs.finish_run(&run_id, status, &report.summary_json())?;
    notify(sink, &spec.tenant, plugin, &report).await;
    if let Some(hook) = &sink.webhook {
        let failure = report.error.as_ref().map(|e| (e.code().grpc_name(), e.to_string()));
        let event = Event::start(&run_id, &spec.tenant, &plugin.name, plugin.short_digest()).finish(report.elapsed, tally, failure);
        if let Err(e) = hook.deliver(&event).await {
            tracing::warn!(error = %e, "webhook delivery failed");
        }
    }
    Ok(report)
}

/// The cost part of a push run: the tasks since the last synchronization
/// (or today's alone), each task's costs into the run's outbox channel.
async fn collect_costs(
    runtime: &Runtime,
    plugin: &Plugin,
    ctx: &crate::RunContext,
    sink: &Sink,
    data_source_id: &str,
    tx: mpsc::Sender<Vec<Record>>,
) -> Result<CostRun, RunError> {
    let synced_at = chrono::Utc::now().to_rfc3339();
    let last = sink.outbox.cost_synced(&sink.name, &ctx.tenant, data_source_id).map_err(|e| RunError::Host(e.to_string()))?;
    let (tasks, report) = crate::job::run_costs(runtime, plugin, ctx, None, last.as_deref(), tx).await?;
    Ok(CostRun { tasks, lines: report.records, synced_at })
}

/// Whether a run saw the whole estate, so that what it did not see is
/// gone: collected and delivered completely, no error resource (the
/// guest's, e.g. a failed page, which would look like deletions, or a
/// refusal; both are in the counts) and no task options narrowing it to
/// some kinds or regions.
fn sweeps(report: &PushReport, task_options: &Value) -> bool {
    let narrowed = task_options.as_object().is_some_and(|o| !o.is_empty());
    report.complete() && report.totals().errors == 0 && !narrowed
}

/// Deletes the cloud services missed by enough complete runs.
async fn sweep(sink: &Sink, tenant: &str, run_id: &str, lease: Option<&LeaseGuard>) -> Result<u64, SpoolError> {
    let gone = sink.outbox.missed_by(&sink.name, tenant, run_id, sink.settings.delete_after_missed)?;
    let mut deleted = 0;
    for (key, id) in gone {
        // Fleet mode: the rest waits for the next complete run.
        if lease.is_some_and(|l| !l.live()) {
            break;
        }
        match sink.connector.delete_cloud_service(&id).await {
            Ok(()) => {
                sink.outbox.forget_pushed(&sink.name, tenant, &key)?;
                deleted += 1;
            }
            // Tried again after the next complete run.
            Err(e) => tracing::warn!(tenant, cloud_service_id = %id, error = %e, "cannot delete a cloud service no longer collected"),
        }
    }
    Ok(deleted)
}

/// The completion notification; a failure to notify is logged only.
async fn notify(sink: &Sink, tenant: &str, plugin: &Plugin, report: &PushReport) {
    if !sink.connector.notifies() {
        return;
    }
    let t = report.totals();
    let (kind, title) = match (&report.error, &report.cost_error, report.complete()) {
        (Some(_), ..) => (notif::NotificationType::Error, format!("Collection failed for {tenant}")),
        (None, Some(_), _) => (notif::NotificationType::Warning, format!("Costs failed for {tenant} (inventory collected)")),
        (None, None, false) => (notif::NotificationType::Warning, format!("Collection for {tenant} is not fully delivered")),
        (None, None, true) => (notif::NotificationType::Success, format!("Collection finished for {tenant}")),
    };
    let mut description = format!(
        "{} created, {} updated, {} unchanged, {} errors, {} deleted in {:.1} s",
        t.created,
        t.updated,
        t.unchanged,
        t.errors,
        report.deleted,
        report.elapsed.as_secs_f64()
    );
    if report.spooled > 0 {
        description.push_str(&format!("; {} records spooled for redelivery", report.spooled));
    }
    if let Some(c) = &report.costs {
        description.push_str(&format!("; costs: {} day(s), {} line(s)", c.tasks, c.lines));
    }
    if let Some(e) = &report.error {
        description.push_str(&format!("; error: {e}"));
    }
    if let Some(e) = &report.cost_error {
        description.push_str(&format!("; cost error: {e}"));
    }
    let message = json!({
        "title": title,
        "description": description,
        "tags": [
            {"key": "tenant", "value": tenant},
            {"key": "plugin", "value": format!("{} {}", plugin.name, plugin.short_digest())},
            {"key": "run_id", "value": report.run_id},
        ],
        "summary": report.summary_json(),
    });
    let (resource_type, resource_id) = sink.settings.notify_resource.clone().unwrap_or_else(|| ("identity.Domain".into(), String::new()));
    let request = CreateNotificationRequest {
        resource_type,
        resource_id,
        topic: if report.error.is_some() { "cf-host.collection.failed" } else { "cf-host.collection.finished" }.into(),
        message: message.as_object().map(json_to_struct),
        notification_type: kind as i32,
        notification_level: notif::NotificationLevel::All as i32,
    };
    if let Err(e) = sink.connector.notify(request).await {
        tracing::warn!(tenant, error = %e, "Notification.create failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_clean_runs_sweep() {
        let clean = PushReport::default();
        assert!(sweeps(&clean, &json!({})));
        assert!(sweeps(&clean, &Value::Null));
        assert!(!sweeps(&clean, &json!({"resource_kinds": ["vms"]})), "a narrowed run");
        let mut errors = PushReport::default();
        errors.counts.insert("Compute/VirtualMachine".into(), Counts { created: 5, errors: 1, ..Default::default() });
        assert!(!sweeps(&errors, &json!({})), "an error resource");
        let spooled = PushReport { spooled: 3, ..Default::default() };
        assert!(!sweeps(&spooled, &json!({})), "records not delivered");
        let failed = PushReport { error: Some(RunError::Host("x".into())), ..Default::default() };
        assert!(!sweeps(&failed, &json!({})), "a failed collection");
        let refused = PushReport { delivery_error: Some(DeliveryError::Refused(ApiError::new(tonic::Code::Unauthenticated, "token refused"))), ..Default::default() };
        assert!(!sweeps(&refused, &json!({})));
    }
}
