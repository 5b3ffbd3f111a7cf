//! CloudForet's inventory collector plugin protocol
//! (`spaceone.api.inventory.plugin`: `Collector` init/verify/collect, `Job`
//! get_tasks) and `spaceone.api.core.v1.ServerInfo`, on [`PluginService`].

use super::convert::{json_to_struct, resource_info, status, struct_to_json};
use super::pb::plugin::collector_server::Collector;
use super::pb::plugin::job_server::Job;
use super::pb::plugin::{CollectRequest, GetTaskRequest, InitRequest, PluginInfo, ResourceInfo, TaskInfo, TasksInfo, VerifyRequest};
use super::service::PluginService;
use crate::record::ResourceType;
use crate::testing::cassette::RecordedCall;
use serde_json::{json, Value};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tonic::{Request, Response, Status};

#[tonic::async_trait]
impl Collector for PluginService {
    async fn init(&self, req: Request<InitRequest>) -> Result<Response<PluginInfo>, Status> {
        let options = struct_to_json(req.get_ref().options.clone());
        let (_slot, ctx, plugin) = self.unary(&req, options, json!({})).await?;
        let m = self.unless_cancelled(async { self.registry.runtime().init(&plugin, &ctx).await.map_err(|e| status(&e)) }).await?;
        let metadata = json!({
            "supported_resource_type": m.supported_resource_types,
            "supported_schedules": m.supported_schedules,
            "supported_features": m.supported_features,
            "filter_format": [],
            "options_schema": m.options_schema,
        });
        let metadata = metadata.as_object().map(json_to_struct);
        Ok(Response::new(PluginInfo { metadata }))
    }

    async fn verify(&self, req: Request<VerifyRequest>) -> Result<Response<()>, Status> {
        let r = req.get_ref();
        let (options, secret) = (struct_to_json(r.options.clone()), struct_to_json(r.secret_data.clone()));
        let (_slot, ctx, plugin) = self.unary(&req, options, secret).await?;
        PluginService::verify(self, ctx, &plugin).await?;
        Ok(Response::new(()))
    }

    type collectStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<ResourceInfo, Status>> + Send>>;

    async fn collect(&self, req: Request<CollectRequest>) -> Result<Response<Self::collectStream>, Status> {
        let r = req.get_ref();
        let (options, secret) = (struct_to_json(r.options.clone()), struct_to_json(r.secret_data.clone()));
        let task_options = struct_to_json(r.task_options.clone());
        let (slot, mut ctx, plugin) = self.streaming(&req, options, secret).await?;
        let recording = self.record(&mut ctx, &plugin, RecordedCall::Collect, Some(&task_options));
        let runtime = self.registry.runtime().clone();
        let started = std::time::Instant::now();
        // The webhooks' tally of what was streamed.
        let (webhook, subs) = (self.webhook.clone(), self.subscriptions.clone());
        let hook = (webhook.is_some() || subs.as_ref().is_some_and(|s| !s.list().is_empty())).then(|| {
            let event = crate::webhook::Event::start(&ctx.run_id, &ctx.tenant, &plugin.name, plugin.short_digest());
            (event, Arc::new(Mutex::new(crate::webhook::Tally::default())))
        });
        let counted = hook.as_ref().map(|(_, c)| c.clone());
        let wire = self.config.cloudforet.wire(req.metadata().get("token").and_then(|t| t.to_str().ok()));
        let version = plugin.version.clone().unwrap_or_default();
        let stream = self.stream_call(
            slot,
            &ctx.run_id.clone(),
            move |sink| async move { runtime.collect(&plugin, &ctx, &task_options, sink).await },
            move |batch| {
                if let Some(c) = &counted {
                    let mut tally = c.lock().unwrap_or_else(|p| p.into_inner());
                    batch.iter().for_each(|r| tally.add(r));
                }
                batch
                    .into_iter()
                    // CloudForet 1.12 has no Namespace or Metric.
                    .filter(|r| wire.metrics || !matches!(r.resource_type, ResourceType::Namespace | ResourceType::Metric))
                    .map(|r| resource_info(r, wire, &version))
                    .collect()
            },
            move |end| {
                // Kept when it failed, not when the client or the shutdown
                // cut it short.
                if let (Some(r), Some(outcome)) = (recording, end.outcome()) {
                    r.ended(outcome);
                }
                if let Some((event, counts)) = hook {
                    let tally = std::mem::take(&mut *counts.lock().unwrap_or_else(|p| p.into_inner()));
                    let event = event.finish(started.elapsed(), tally, end.failure());
                    if let Some(w) = webhook {
                        w.spawn(event.clone());
                    }
                    if let Some(s) = subs {
                        s.notify(&event);
                    }
                }
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }
}

#[tonic::async_trait]
impl Job for PluginService {
    async fn get_tasks(&self, req: Request<GetTaskRequest>) -> Result<Response<TasksInfo>, Status> {
        let r = req.get_ref();
        let mut options = struct_to_json(r.options.clone());
        let secret = super::convert::unwrapped_secret(struct_to_json(r.secret_data.clone()));
        // The task filter reaches the collector inside its options.
        if let (Some(f), Value::Object(o)) = (&r.task_filter, &mut options) {
            let filter = json!({
                "providers": f.providers, "cloud_service_groups": f.cloud_service_groups,
                "cloud_service_types": f.cloud_service_types, "region_codes": f.region_codes, "resources": f.resources,
            });
            o.insert("task_filter".into(), filter);
        }
        let (_slot, ctx, plugin) = self.unary(&req, options, secret).await?;
        let tasks = self.unless_cancelled(async { self.registry.runtime().get_tasks(&plugin, &ctx).await.map_err(|e| status(&e)) }).await?;
        let tasks = tasks.iter().map(|t| TaskInfo { task_options: t.as_object().map(json_to_struct) }).collect();
        Ok(Response::new(TasksInfo { tasks }))
    }
}

/// `spaceone.api.core.v1.ServerInfo`: the host's version.
pub struct ServerInfo;

#[tonic::async_trait]
impl super::pb::core::server_info_server::ServerInfo for ServerInfo {
    async fn get_version(&self, _: Request<()>) -> Result<Response<super::pb::core::VersionInfo>, Status> {
        Ok(Response::new(super::pb::core::VersionInfo { version: env!("CARGO_PKG_VERSION").to_string() }))
    }
}
