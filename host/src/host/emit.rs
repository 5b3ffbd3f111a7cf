//! `cloudforet:collector/emit`: validated records into the run's sink.
//! [`EmitCtx`] is also the capability behind `costs` (`host::costs`): one
//! channel, one set of output limits for a run.
//!
//! Backpressure: the sink is a bounded channel; `emit` awaits room, so a slow
//! consumer slows the guest down. Output limits (records, bytes) are checked
//! per batch: the batch that crosses a limit is cut at the limit, the run is
//! marked as having hit it, and the guest is told to `stop`. A guest that
//! keeps emitting after being told to stop is trapped.

use crate::bindings::current::cloudforet::collector::emit::{self, Ack, Flow, Item, Rejection};
use crate::error::{LimitExceeded, LimitKind};
use crate::record::{self, Record};
use crate::secret::Redactor;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Batches a guest may send after `stop` before it is trapped.
const MAX_IGNORED_STOPS: u32 = 16;

/// What the running call may emit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emits {
    /// `collector` calls: inventory records (and error resources).
    Inventory,
    /// `cost-source.get-data`: costs (and error resources).
    Costs,
}

pub struct EmitCtx {
    pub(crate) emits: Emits,
    pub(crate) sink: mpsc::Sender<Vec<Record>>,
    pub(crate) redactor: Arc<Redactor>,
    pub(crate) max_records: u64,
    pub(crate) max_bytes: u64,
    pub(crate) records: u64,
    pub(crate) bytes: u64,
    pub(crate) errors: u64,
    pub(crate) stopped: bool,
    pub(crate) ignored_stops: u32,
    pub(crate) limit_hit: Option<LimitExceeded>,
    /// Records accepted per resource type (metrics).
    pub(crate) per_type: std::collections::BTreeMap<&'static str, u64>,
}

impl EmitCtx {
    pub fn new(sink: mpsc::Sender<Vec<Record>>, redactor: Arc<Redactor>, max_records: u64, max_bytes: u64) -> EmitCtx {
        EmitCtx {
            emits: Emits::Inventory,
            sink,
            redactor,
            max_records,
            max_bytes,
            records: 0,
            bytes: 0,
            errors: 0,
            stopped: false,
            ignored_stops: 0,
            limit_hit: None,
            per_type: std::collections::BTreeMap::new(),
        }
    }
}

impl emit::Host for EmitCtx {
    async fn emit(&mut self, batch: Vec<Item>) -> wasmtime::Result<Ack> {
        let costs = self.emits == Emits::Costs;
        self.accept(batch.into_iter().map(|i| match record::from_item(i) {
            Ok(r) if costs && !r.is_error() => record::out_of_place(r, "cost-source.get-data"),
            other => other,
        }))
        .await
    }
}

impl EmitCtx {
    /// Sends a batch's records (rejected ones replaced by error resources)
    /// within the output limits; the answer the guest gets.
    pub(crate) async fn accept(&mut self, batch: impl ExactSizeIterator<Item = Result<Record, record::Rejected>>) -> wasmtime::Result<Ack> {
        let stop = |rejected| Ok(Ack { flow: Flow::Stop, rejected });
        if self.stopped {
            self.ignored_stops += 1;
            if self.ignored_stops > MAX_IGNORED_STOPS {
                return Err(wasmtime::Error::new(LimitExceeded {
                    kind: LimitKind::Output,
                    detail: format!("guest kept emitting after being told to stop ({MAX_IGNORED_STOPS} batches)"),
                }));
            }
            return stop(Vec::new());
        }
        let mut out = Vec::with_capacity(batch.len());
        let mut rejected = Vec::new();
        for (index, item) in batch.enumerate() {
            let mut r = match item {
                Ok(r) => r,
                Err(rejection) => {
                    rejected.push(Rejection { index: index as u32, reason: rejection.reason });
                    *rejection.replacement
                }
            };
            if let Some(m) = r.message.take() {
                r.message = Some(self.redactor.redact_owned(m));
            }
            let size = r.approx_size() as u64;
            if self.records + 1 > self.max_records {
                self.limit_hit = Some(LimitExceeded {
                    kind: LimitKind::Output,
                    detail: format!("more than {} records", self.max_records),
                });
                break;
            }
            if self.bytes + size > self.max_bytes {
                self.limit_hit = Some(LimitExceeded {
                    kind: LimitKind::Output,
                    detail: format!("more than {} bytes of records", self.max_bytes),
                });
                break;
            }
            self.records += 1;
            self.bytes += size;
            *self.per_type.entry(r.resource_type.as_str()).or_insert(0) += 1;
            if r.is_error() {
                self.errors += 1;
            }
            out.push(r);
        }
        if !out.is_empty() && self.sink.send(out).await.is_err() {
            // The consumer is gone (client cancelled, writer failed).
            self.stopped = true;
            return stop(rejected);
        }
        if self.limit_hit.is_some() {
            self.stopped = true;
            return stop(rejected);
        }
        Ok(Ack { flow: Flow::Proceed, rejected })
    }
}
