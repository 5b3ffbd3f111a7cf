//! CloudForet's monitoring data source plugin protocol
//! (`spaceone.api.monitoring.plugin`: `DataSource` init/verify, `Metric`
//! list/get_data), served by `cf-host serve --protocol monitoring` for a
//! component that exports `metric-source`. Same [`PluginService`] as the
//! other protocols; unary calls, each in a fresh sandbox.

use super::convert::{json_to_struct, json_to_value, status, struct_to_json};
use super::service::PluginService;
use super::failures::Recording;
use crate::runtime::MetricQuery;
use crate::testing::cassette::RecordedCall;
use serde_json::Value;
use tonic::{Request, Response, Status};

/// Generated protocol types and services.
pub mod pb {
    tonic::include_proto!("spaceone.api.monitoring.plugin");
    /// Descriptor set of the protocol (and ServerInfo), google/protobuf
    /// imports included.
    pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/monitoring_descriptor.bin"));
}

use pb::data_source_server::DataSource;
use pb::metric_server::Metric;
use pb::{InitRequest, MetricDataInfo, MetricDataRequest, MetricInfo, MetricRequest, MetricsInfo, PluginInfo, PluginVerifyRequest};

fn object(v: &Value) -> Option<prost_types::Struct> {
    v.as_object().map(json_to_struct)
}

#[tonic::async_trait]
impl DataSource for PluginService {
    async fn init(&self, req: Request<InitRequest>) -> Result<Response<PluginInfo>, Status> {
        let metadata = self.init_data_source(&req, req.get_ref().options.clone(), crate::runtime::Role::Metric).await?;
        Ok(Response::new(PluginInfo { metadata }))
    }

    async fn verify(&self, req: Request<PluginVerifyRequest>) -> Result<Response<()>, Status> {
        let (options, secret) = (req.get_ref().options.clone(), req.get_ref().secret_data.clone());
        self.verify_data_source(&req, options, secret, crate::runtime::Role::Metric).await?;
        Ok(Response::new(()))
    }
}

#[tonic::async_trait]
impl Metric for PluginService {
    async fn list(&self, req: Request<MetricRequest>) -> Result<Response<MetricsInfo>, Status> {
        let r = req.get_ref();
        let (options, secret, query) = (struct_to_json(r.options.clone()), struct_to_json(r.secret_data.clone()), struct_to_json(r.query.clone()));
        let (_slot, ctx, plugin) = self.unary(&req, options, secret).await?;
        let list = self
            .unless_cancelled(async { self.registry.runtime().metric_list(&plugin, &ctx, &query).await.map_err(|e| status(&e)) })
            .await?;
        let metrics = list
            .into_iter()
            .map(|m| MetricInfo { key: m.key, name: m.name, group: m.group, unit: object(&m.unit), metric_query: object(&m.metric_query) })
            .collect();
        Ok(Response::new(MetricsInfo { metrics }))
    }

    async fn get_data(&self, req: Request<MetricDataRequest>) -> Result<Response<MetricDataInfo>, Status> {
        let r = req.get_ref();
        let (options, secret) = (struct_to_json(r.options.clone()), struct_to_json(r.secret_data.clone()));
        let period = match r.period {
            0 => None,
            p if p > 0 => Some(p as u32),
            p => return Err(Status::invalid_argument(format!("ERROR_INVALID_ARGUMENT: period must be positive, got {p}"))),
        };
        let q = MetricQuery {
            metric_query: struct_to_json(r.metric_query.clone()),
            metric: r.metric.clone(),
            start: r.start.clone(),
            end: r.end.clone(),
            period,
            stat: Some(r.stat.clone()).filter(|s| !s.is_empty()),
        };
        let (_slot, mut ctx, plugin) = self.unary(&req, options, secret).await?;
        let recording = self.record(&mut ctx, &plugin, RecordedCall::MetricData, None).map(|r| r.metric_query(&q));
        let d = self
            .unless_cancelled(async {
                let r = self.registry.runtime().metric_data(&plugin, &ctx, &q).await;
                Recording::unary_ended(recording, &r);
                r.map_err(|e| status(&e))
            })
            .await?;
        let labels = prost_types::ListValue { values: d.labels.iter().map(|l| json_to_value(&Value::String(l.clone()))).collect() };
        Ok(Response::new(MetricDataInfo { labels: Some(labels), values: object(&d.values) }))
    }
}
