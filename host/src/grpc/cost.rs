//! CloudForet's cost data source plugin protocol
//! (`spaceone.api.cost_analysis.plugin`: `DataSource` init/verify, `Job`
//! get_tasks, `Cost` get_linked_accounts/get_data), served by
//! `cf-host serve --protocol cost-analysis` for a component that exports
//! `cost-source`. Same [`PluginService`] as the collector protocol: registry
//! resolution, run contexts, cancellation; a separate server because
//! CloudForet deploys a cost data source as its own plugin (and both
//! protocols name a service `Job`).

use super::convert::{json_to_struct, status, struct_to_json};
use super::service::PluginService;
use crate::record::{Record, ResourceType};
use crate::testing::cassette::RecordedCall;
use serde_json::{Map, Value};
use std::pin::Pin;
use tonic::{Request, Response, Status};

/// Generated protocol types and services.
#[expect(non_camel_case_types, reason = "CloudForet's rpc is named `get_data`, so tonic names the stream type `get_dataStream`")]
pub mod pb {
    tonic::include_proto!("spaceone.api.cost_analysis.plugin");
    /// Descriptor set of the protocol (and ServerInfo), google/protobuf
    /// imports included.
    pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/cost_descriptor.bin"));
}

use pb::cost_server::Cost;
use pb::data_source_server::DataSource;
use pb::job_server::Job;
use pb::{
    AccountsInfo, ChangedInfo, CostInfo, CostsInfo, GetDataRequest, GetLinkedAccountsRequest, GetTasksRequest, InitRequest,
    PluginInfo, PluginVerifyRequest, TaskInfo, TasksInfo,
};

fn text(m: &Map<String, Value>, k: &str) -> String {
    m.get(k).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn object(v: Option<&Value>) -> Option<prost_types::Struct> {
    v.and_then(Value::as_object).map(json_to_struct)
}

fn nonempty(s: &str) -> Option<&str> {
    Some(s).filter(|s| !s.is_empty())
}

/// The wire form of a cost record.
pub fn cost_info(r: &Record) -> CostInfo {
    let m = &*r.resource();
    let num = |k: &str| m.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let raw = |k: &str| r.raw(k).and_then(|t| serde_json::from_str::<Value>(t).ok());
    CostInfo {
        cost: num("cost"),
        usage_quantity: num("usage_quantity"),
        usage_unit: text(m, "usage_unit"),
        provider: text(m, "provider"),
        region_code: text(m, "region_code"),
        product: text(m, "product"),
        usage_type: text(m, "usage_type"),
        resource: text(m, "resource"),
        tags: object(m.get("tags")),
        additional_info: object(raw("additional_info").as_ref()),
        data: object(raw("data").as_ref()),
        billed_date: text(m, "billed_date"),
    }
}

#[tonic::async_trait]
impl DataSource for PluginService {
    async fn init(&self, req: Request<InitRequest>) -> Result<Response<PluginInfo>, Status> {
        let metadata = self.init_data_source(&req, req.get_ref().options.clone(), crate::runtime::Role::Cost).await?;
        Ok(Response::new(PluginInfo { metadata }))
    }

    async fn verify(&self, req: Request<PluginVerifyRequest>) -> Result<Response<()>, Status> {
        let (options, secret) = (req.get_ref().options.clone(), req.get_ref().secret_data.clone());
        self.verify_data_source(&req, options, secret, crate::runtime::Role::Cost).await?;
        Ok(Response::new(()))
    }
}

#[tonic::async_trait]
impl Job for PluginService {
    async fn get_tasks(&self, req: Request<GetTasksRequest>) -> Result<Response<TasksInfo>, Status> {
        let r = req.get_ref();
        let (options, secret) = (struct_to_json(r.options.clone()), struct_to_json(r.secret_data.clone()));
        let (start, last) = (r.start.clone(), r.last_synchronized_at.clone());
        let (_slot, ctx, plugin) = self.unary(&req, options, secret).await?;
        let tasks = self
            .unless_cancelled(async {
                self.registry.runtime().cost_tasks(&plugin, &ctx, nonempty(&start), nonempty(&last)).await.map_err(|e| status(&e))
            })
            .await?;
        let changed_info = |(start, end): &(String, Option<String>)| ChangedInfo { start: start.clone(), end: end.clone().unwrap_or_default(), filter: None };
        let changed = tasks.iter().filter_map(|t| t.changed.as_ref().map(changed_info)).collect();
        let tasks = tasks
            .iter()
            .map(|t| TaskInfo { task_options: t.options.as_object().map(json_to_struct), task_changed: t.changed.as_ref().map(changed_info) })
            .collect();
        Ok(Response::new(TasksInfo { tasks, changed, synced_accounts: Vec::new() }))
    }
}

#[tonic::async_trait]
impl Cost for PluginService {
    /// Nutanix has no linked accounts; a guest that needs them would get its
    /// own export. Answers an empty list, as CloudForet's SDK does by default.
    async fn get_linked_accounts(&self, _: Request<GetLinkedAccountsRequest>) -> Result<Response<AccountsInfo>, Status> {
        Ok(Response::new(AccountsInfo { results: Vec::new() }))
    }

    type get_dataStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<CostsInfo, Status>> + Send>>;

    /// Streams each batch of cost lines the guest emits as one `CostsInfo`.
    /// Error resources (e.g. a lost page) have no place in the protocol: they
    /// are logged, and the stream still ends normally with the rest.
    async fn get_data(&self, req: Request<GetDataRequest>) -> Result<Response<Self::get_dataStream>, Status> {
        let r = req.get_ref();
        let (options, secret) = (struct_to_json(r.options.clone()), struct_to_json(r.secret_data.clone()));
        let task_options = struct_to_json(r.task_options.clone());
        let (slot, mut ctx, plugin) = self.streaming(&req, options, secret).await?;
        let recording = self.record(&mut ctx, &plugin, RecordedCall::CostData, Some(&task_options));
        let runtime = self.registry.runtime().clone();
        let run_id = ctx.run_id.clone();
        let stream = self.stream_call(
            slot,
            &run_id,
            move |sink| async move { runtime.cost_data(&plugin, &ctx, &task_options, sink).await },
            |batch| {
                let results: Vec<CostInfo> = batch
                    .iter()
                    .filter_map(|r| match r.resource_type {
                        ResourceType::Cost => Some(cost_info(r)),
                        _ => {
                            tracing::warn!(error = r.message.as_deref().unwrap_or(""), "cost data: not sent (no place in the protocol)");
                            None
                        }
                    })
                    .collect();
                if results.is_empty() { Vec::new() } else { vec![CostsInfo { results }] }
            },
            // Kept when it failed, not when the client or the shutdown cut
            // it short.
            move |end| {
                if let (Some(r), Some(outcome)) = (recording, end.outcome()) {
                    r.ended(outcome);
                }
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }
}
