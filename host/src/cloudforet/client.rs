//! [`Connector`]: calls to a CloudForet deployment.
//!
//! Every call goes through the circuit breaker of its endpoint, carries the
//! `token` metadata, has a deadline, and is retried with back-off and jitter
//! while CloudForet is unavailable (UNAVAILABLE, DEADLINE_EXCEEDED, transport
//! errors). A refused token is renewed and the call retried once. Other
//! errors come back typed at once. Channels are created once and reused.
//!
//! Upserts follow CloudForet's match rules: list by the rule's fields, then
//! create, update, or leave alone when nothing changed. Replaying an upsert
//! is therefore harmless, which is what makes redelivery from the spool
//! duplicate-free.

use super::pb::core::v2::{Filter, Query};
use super::pb::inventory::v1::{
    cloud_service_client::CloudServiceClient, cloud_service_type_client::CloudServiceTypeClient, region_client::RegionClient,
    CloudServiceQuery, CloudServiceReference, CloudServiceRequest, CloudServiceTypeQuery, CreateCloudServiceTypeRequest,
    CreateRegionRequest, CreateServiceRequest, RegionQuery, UpdateCloudServiceRequest, UpdateCloudServiceTypeRequest,
    UpdateRegionRequest,
};
use super::pb::notification::v1::{notification_client::NotificationClient, CreateNotificationRequest};
use crate::resilience::{jitter, Backoff, Breaker};
use super::token::{Auth, Tokens};
use super::{ApiError, Category};
use super::pb::cost_analysis::v1::{cost_client::CostClient, CostInfo, CostQuery, CostRequest, CreateCostRequest};
use super::pb::secret::v1::{secret_client::SecretClient, GetSecretDataRequest};
use crate::grpc::convert::{json_to_struct, json_to_value, struct_to_json};
use crate::record::ResourceType;
use prost_types::{ListValue, Struct};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request};

/// Where each CloudForet service listens (`http://host:port`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    pub identity: String,
    pub inventory: String,
    /// Without one, completion notifications are not sent.
    pub notification: Option<String>,
    /// Where tenants' `secret_id`s are read (secret service).
    pub secret: Option<String>,
    /// Where `cf-host register` registers the collector (repository).
    pub repository: Option<String>,
    /// Where costs are written (cost_analysis).
    pub cost_analysis: Option<String>,
}

#[derive(Clone, Debug)]
pub struct ConnectorConfig {
    pub endpoints: Endpoints,
    pub auth: Auth,
    pub backoff: Backoff,
    /// Consecutive unavailable answers that open an endpoint's breaker.
    pub breaker_threshold: u32,
    pub breaker_open_for: Duration,
    /// Deadline of one call.
    pub call_timeout: Duration,
}

impl ConnectorConfig {
    pub fn new(endpoints: Endpoints, auth: Auth) -> ConnectorConfig {
        ConnectorConfig {
            endpoints,
            auth,
            backoff: Backoff::default(),
            breaker_threshold: 5,
            breaker_open_for: Duration::from_secs(5),
            call_timeout: Duration::from_secs(30),
        }
    }
}

/// What an upsert did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Upserted {
    Created(String),
    Updated(String),
    Unchanged(String),
}

impl Upserted {
    pub fn id(&self) -> &str {
        match self {
            Upserted::Created(i) | Upserted::Updated(i) | Upserted::Unchanged(i) => i,
        }
    }
}

pub(super) struct Service {
    endpoint: String,
    channel: Channel,
    /// Shared by the services of one endpoint.
    breaker: Arc<Mutex<Breaker>>,
}

impl Service {
    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct Connector {
    pub(super) identity: Service,
    inventory: Service,
    notification: Option<Service>,
    pub(super) secret: Option<Service>,
    pub(super) repository: Option<Service>,
    cost_analysis: Option<Service>,
    tokens: Tokens,
    backoff: Backoff,
    call_timeout: Duration,
}

fn service(endpoint: &str, breakers: &mut HashMap<String, Arc<Mutex<Breaker>>>, c: &ConnectorConfig) -> Result<Service, String> {
    let e = Endpoint::from_shared(endpoint.to_string())
        .map_err(|e| format!("invalid CloudForet endpoint '{endpoint}': {e}"))?
        .connect_timeout(Duration::from_secs(5))
        // Every request is bounded, the token service's too: the token
        // cache's lock is held across an identity call (one refresh for
        // all callers), and must never be held forever.
        .timeout(c.call_timeout)
        .tcp_nodelay(true);
    let url = url::Url::parse(endpoint).map_err(|e| format!("invalid CloudForet endpoint '{endpoint}': {e}"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!("invalid CloudForet endpoint '{endpoint}': scheme must be http or https"));
    }
    let breaker = breakers
        .entry(endpoint.to_string())
        .or_insert_with(|| Arc::new(Mutex::new(Breaker::new(c.breaker_threshold, c.breaker_open_for))))
        .clone();
    Ok(Service { endpoint: endpoint.to_string(), channel: e.connect_lazy(), breaker })
}

fn string(v: &str) -> Option<prost_types::Value> {
    Some(json_to_value(&Value::String(v.to_string())))
}

fn eq(key: &str, value: &str) -> Filter {
    Filter { key: key.into(), value: string(value), operator: "eq".into(), ..Default::default() }
}

fn text(m: &Map<String, Value>, k: &str) -> String {
    m.get(k).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn object(m: &Map<String, Value>, k: &str) -> Option<Struct> {
    Some(m.get(k).and_then(Value::as_object).map(json_to_struct).unwrap_or_default())
}

fn strings(m: &Map<String, Value>, k: &str) -> Vec<String> {
    m.get(k).and_then(Value::as_array).map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect()).unwrap_or_default()
}

fn labels(m: &Map<String, Value>) -> Option<ListValue> {
    Some(ListValue { values: m.get("labels").and_then(Value::as_array).map(|a| a.iter().map(json_to_value).collect()).unwrap_or_default() })
}

fn required(m: &Map<String, Value>, k: &str) -> Result<String, ApiError> {
    Some(text(m, k))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::new(Code::InvalidArgument, format!("the resource has no '{k}', which its match rule needs")))
}

impl Connector {
    pub fn new(config: ConnectorConfig) -> Result<Connector, String> {
        let e = &config.endpoints;
        let mut breakers = HashMap::new();
        let identity = service(&e.identity, &mut breakers, &config)?;
        let inventory = service(&e.inventory, &mut breakers, &config)?;
        let mut optional = |e: &Option<String>| e.as_deref().map(|n| service(n, &mut breakers, &config)).transpose();
        let (notification, secret, repository) = (optional(&e.notification)?, optional(&e.secret)?, optional(&e.repository)?);
        let cost_analysis = optional(&e.cost_analysis)?;
        Ok(Connector {
            identity,
            inventory,
            notification,
            secret,
            repository,
            cost_analysis,
            tokens: Tokens::new(config.auth),
            backoff: config.backoff,
            call_timeout: config.call_timeout,
        })
    }

    /// One call of `message` with breaker, token, deadline and retries; `f`
    /// sends the request (token metadata set) on the channel.
    pub(super) async fn call<M, T, F, Fut>(&self, svc: &Service, what: &str, message: &M, mut f: F) -> Result<T, ApiError>
    where
        M: Clone,
        F: FnMut(Channel, Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut renewed = false;
        let mut attempt = 0u32;
        loop {
            if let Err(wait) = svc.breaker().admit(Instant::now()) {
                return Err(ApiError::new(
                    Code::Unavailable,
                    format!("{what}: circuit open for {} (retry in {} ms)", svc.endpoint, wait.as_millis()),
                ));
            }
            let (e, token) = match self.attempt(svc, message, &mut f).await {
                Ok(v) => {
                    svc.breaker().success();
                    return Ok(v);
                }
                Err(x) => x,
            };
            match e.category() {
                Category::Unavailable => {
                    svc.breaker().failure(Instant::now());
                    attempt += 1;
                    if attempt >= self.backoff.attempts {
                        return Err(ApiError { message: format!("{what}: {} (after {attempt} attempts)", e.message), ..e });
                    }
                    let d = self.backoff.delay(attempt - 1, jitter());
                    tracing::debug!(what, error = %e, attempt, delay_ms = d.as_millis() as u64, "CloudForet unavailable; retrying");
                    tokio::time::sleep(d).await;
                }
                Category::Auth if !renewed && self.tokens.renewable() => {
                    renewed = true;
                    if let Some(t) = token {
                        self.tokens.refused(&t).await;
                    }
                    tracing::info!(what, "CloudForet refused the token; renewing it");
                }
                _ => {
                    // The endpoint answered: it is up.
                    svc.breaker().success();
                    return Err(ApiError { message: format!("{what}: {}", e.message), ..e });
                }
            }
        }
    }

    /// One try: a token, the request with it, the deadline. A failure comes
    /// with the token it used (to be forgotten if refused).
    async fn attempt<M, T, F, Fut>(&self, svc: &Service, message: &M, f: &mut F) -> Result<T, (ApiError, Option<String>)>
    where
        M: Clone,
        F: FnMut(Channel, Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let token = self.tokens.get(&self.identity.channel).await.map_err(|e| (e, None))?;
        let value = tonic::metadata::MetadataValue::try_from(token.as_str())
            .map_err(|_| (ApiError::new(Code::Unauthenticated, "the token is not valid metadata text"), None))?;
        let mut req = Request::new(message.clone());
        req.metadata_mut().insert("token", value);
        match tokio::time::timeout(self.call_timeout, f(svc.channel.clone(), req)).await {
            Ok(r) => r.map(tonic::Response::into_inner).map_err(|s| (ApiError::from_status(&s), Some(token))),
            Err(_) => Err((ApiError::new(Code::DeadlineExceeded, format!("no answer in {:?}", self.call_timeout)), None)),
        }
    }

    /// Upserts one resource by its type's match rule.
    pub async fn upsert(&self, ty: ResourceType, r: &Map<String, Value>) -> Result<Upserted, ApiError> {
        match ty {
            ResourceType::CloudService => self.upsert_cloud_service(r).await,
            ResourceType::CloudServiceType => self.upsert_cloud_service_type(r).await,
            ResourceType::Region => self.upsert_region(r).await,
            ResourceType::Cost => self.upsert_cost(r).await,
            other => Err(ApiError::new(Code::InvalidArgument, format!("{} is not written through the inventory API", other.as_str()))),
        }
    }

    async fn upsert_cloud_service(&self, r: &Map<String, Value>) -> Result<Upserted, ApiError> {
        let reference = r.get("reference").and_then(Value::as_object).cloned().unwrap_or_default();
        let resource_id = required(&reference, "resource_id")?;
        let (provider, group, ty) = (required(r, "provider")?, required(r, "cloud_service_group")?, required(r, "cloud_service_type")?);
        let query = CloudServiceQuery {
            query: Some(Query { filter: vec![eq("reference.resource_id", &resource_id)], ..Default::default() }),
            provider: provider.clone(),
            cloud_service_group: group.clone(),
            cloud_service_type: ty.clone(),
            account: text(r, "account"),
            ..Default::default()
        };
        let found = self
            .call(&self.inventory, "CloudService.list", &query, |ch, req| async move { CloudServiceClient::new(ch).list(req).await })
            .await?;
        let instance_size = r.get("instance_size").and_then(Value::as_f64).unwrap_or(0.0) as f32;
        let reference = Some(CloudServiceReference { resource_id, external_link: text(&reference, "external_link") });
        let Some(existing) = found.results.into_iter().next() else {
            let create = CreateServiceRequest {
                cloud_service_type: ty,
                provider,
                cloud_service_group: group,
                name: text(r, "name"),
                account: text(r, "account"),
                instance_type: text(r, "instance_type"),
                instance_size,
                ip_addresses: strings(r, "ip_addresses"),
                data: object(r, "data"),
                metadata: object(r, "metadata"),
                reference,
                tags: object(r, "tags"),
                region_code: text(r, "region_code"),
                project_id: text(r, "project_id"),
            };
            let info = self
                .call(&self.inventory, "CloudService.create", &create, |ch, req| async move { CloudServiceClient::new(ch).create(req).await })
                .await?;
            return Ok(Upserted::Created(info.cloud_service_id));
        };
        let update = UpdateCloudServiceRequest {
            cloud_service_id: existing.cloud_service_id.clone(),
            name: text(r, "name"),
            account: text(r, "account"),
            instance_type: text(r, "instance_type"),
            instance_size,
            ip_addresses: strings(r, "ip_addresses"),
            data: object(r, "data"),
            metadata: object(r, "metadata"),
            reference,
            tags: object(r, "tags"),
            region_code: text(r, "region_code"),
            project_id: text(r, "project_id"),
        };
        let same = existing.name == update.name
            && existing.account == update.account
            && existing.instance_type == update.instance_type
            && existing.instance_size == update.instance_size
            && existing.ip_addresses == update.ip_addresses
            && existing.data == update.data
            && existing.metadata == update.metadata
            && existing.reference == update.reference
            && existing.tags == update.tags
            && existing.region_code == update.region_code
            && (update.project_id.is_empty() || existing.project_id == update.project_id);
        if same {
            return Ok(Upserted::Unchanged(existing.cloud_service_id));
        }
        let info = self
            .call(&self.inventory, "CloudService.update", &update, |ch, req| async move { CloudServiceClient::new(ch).update(req).await })
            .await?;
        Ok(Upserted::Updated(info.cloud_service_id))
    }

    async fn upsert_cloud_service_type(&self, r: &Map<String, Value>) -> Result<Upserted, ApiError> {
        let (name, group, provider) = (required(r, "name")?, required(r, "group")?, required(r, "provider")?);
        let query = CloudServiceTypeQuery { name: name.clone(), group: group.clone(), provider: provider.clone(), ..Default::default() };
        let found = self
            .call(&self.inventory, "CloudServiceType.list", &query, |ch, req| async move { CloudServiceTypeClient::new(ch).list(req).await })
            .await?;
        let flag = |k: &str| r.get(k).and_then(Value::as_bool).unwrap_or(false);
        let Some(existing) = found.results.into_iter().next() else {
            let create = CreateCloudServiceTypeRequest {
                name,
                provider,
                group,
                service_code: text(r, "service_code"),
                is_primary: flag("is_primary"),
                is_major: flag("is_major"),
                resource_type: ResourceType::CloudService.as_str().into(),
                metadata: object(r, "metadata"),
                labels: labels(r),
                tags: object(r, "tags"),
            };
            let info = self
                .call(&self.inventory, "CloudServiceType.create", &create, |ch, req| async move { CloudServiceTypeClient::new(ch).create(req).await })
                .await?;
            return Ok(Upserted::Created(info.cloud_service_type_id));
        };
        let update = UpdateCloudServiceTypeRequest {
            cloud_service_type_id: existing.cloud_service_type_id.clone(),
            service_code: text(r, "service_code"),
            is_primary: flag("is_primary"),
            is_major: flag("is_major"),
            resource_type: ResourceType::CloudService.as_str().into(),
            metadata: object(r, "metadata"),
            labels: labels(r),
            tags: object(r, "tags"),
        };
        let same = existing.service_code == update.service_code
            && existing.is_primary == update.is_primary
            && existing.is_major == update.is_major
            && existing.resource_type == update.resource_type
            && existing.metadata == update.metadata
            && existing.labels == update.labels
            && existing.tags == update.tags;
        if same {
            return Ok(Upserted::Unchanged(existing.cloud_service_type_id));
        }
        let info = self
            .call(&self.inventory, "CloudServiceType.update", &update, |ch, req| async move { CloudServiceTypeClient::new(ch).update(req).await })
            .await?;
        Ok(Upserted::Updated(info.cloud_service_type_id))
    }

    async fn upsert_region(&self, r: &Map<String, Value>) -> Result<Upserted, ApiError> {
        let (region_code, provider) = (required(r, "region_code")?, required(r, "provider")?);
        let query = RegionQuery { region_code: region_code.clone(), provider: provider.clone(), ..Default::default() };
        let found = self
            .call(&self.inventory, "Region.list", &query, |ch, req| async move { RegionClient::new(ch).list(req).await })
            .await?;
        let Some(existing) = found.results.into_iter().next() else {
            let create = CreateRegionRequest { name: text(r, "name"), region_code, provider, tags: object(r, "tags") };
            let info = self
                .call(&self.inventory, "Region.create", &create, |ch, req| async move { RegionClient::new(ch).create(req).await })
                .await?;
            return Ok(Upserted::Created(info.region_id));
        };
        let update = UpdateRegionRequest { region_id: existing.region_id.clone(), name: text(r, "name"), tags: object(r, "tags") };
        if existing.name == update.name && existing.tags == update.tags {
            return Ok(Upserted::Unchanged(existing.region_id));
        }
        let info = self
            .call(&self.inventory, "Region.update", &update, |ch, req| async move { RegionClient::new(ch).update(req).await })
            .await?;
        Ok(Upserted::Updated(info.region_id))
    }

    /// A cost line: `Cost.list` by data source, resource, usage type and
    /// day; the same line is left alone, a different one replaced (`delete`
    /// then `create`: costs cannot be updated), a missing one created.
    async fn upsert_cost(&self, r: &Map<String, Value>) -> Result<Upserted, ApiError> {
        let svc = self
            .cost_analysis
            .as_ref()
            .ok_or_else(|| ApiError::new(Code::InvalidArgument, "no cost_analysis endpoint configured (cloudforet.cost_analysis or cloudforet.endpoint)"))?;
        let (data_source_id, resource, usage_type, billed_date) =
            (required(r, "data_source_id")?, required(r, "resource")?, required(r, "usage_type")?, required(r, "billed_date")?);
        let query = CostQuery {
            data_source_id: data_source_id.clone(),
            resource: resource.clone(),
            usage_type: usage_type.clone(),
            billed_date: billed_date.clone(),
            provider: text(r, "provider"),
            ..Default::default()
        };
        let found = self.call(svc, "Cost.list", &query, |ch, req| async move { CostClient::new(ch).list(req).await }).await?;
        // The unit has no place in Cost.create (its usage_unit is a float
        // there): it travels in additional_info.
        let mut info = r.get("additional_info").and_then(Value::as_object).cloned().unwrap_or_default();
        if let Some(unit) = r.get("usage_unit").and_then(Value::as_str).filter(|u| !u.is_empty()) {
            info.insert("Usage Unit".into(), Value::String(unit.to_string()));
        }
        let num = |k: &str| r.get(k).and_then(Value::as_f64).unwrap_or(0.0);
        let create = CreateCostRequest {
            cost: num("cost"),
            usage_quantity: num("usage_quantity"),
            usage_unit: 0.0,
            provider: text(r, "provider"),
            region_code: text(r, "region_code"),
            product: text(r, "product"),
            usage_type,
            resource,
            tags: object(r, "tags"),
            additional_info: Some(json_to_struct(&info)),
            project_id: text(r, "project_id"),
            service_account_id: String::new(),
            data_source_id,
            billed_date,
        };
        let same = |c: &CostInfo| {
            c.cost == create.cost
                && c.usage_quantity == create.usage_quantity
                && c.region_code == create.region_code
                && c.product == create.product
                && c.tags.clone().unwrap_or_default() == create.tags.clone().unwrap_or_default()
                && c.additional_info.clone().unwrap_or_default() == create.additional_info.clone().unwrap_or_default()
                && c.project_id == create.project_id
        };
        if let [only] = found.results.as_slice()
            && same(only)
        {
            return Ok(Upserted::Unchanged(only.cost_id.clone()));
        }
        for old in &found.results {
            let req = CostRequest { cost_id: old.cost_id.clone() };
            match self.call(svc, "Cost.delete", &req, |ch, req| async move { CostClient::new(ch).delete(req).await }).await {
                Err(e) if e.code != Code::NotFound => return Err(e),
                _ => {}
            }
        }
        let replaced = !found.results.is_empty();
        let info = self.call(svc, "Cost.create", &create, |ch, req| async move { CostClient::new(ch).create(req).await }).await?;
        Ok(if replaced { Upserted::Updated(info.cost_id) } else { Upserted::Created(info.cost_id) })
    }

    /// Deletes a cloud service that is no longer collected. One already gone
    /// counts as deleted.
    pub async fn delete_cloud_service(&self, cloud_service_id: &str) -> Result<(), ApiError> {
        let r = self
            .call(&self.inventory, "CloudService.delete", &CloudServiceRequest { cloud_service_id: cloud_service_id.to_string() }, |ch, req| async move { CloudServiceClient::new(ch).delete(req).await })
            .await;
        match r {
            Err(e) if e.code == Code::NotFound => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// The data of a secret in CloudForet's secret service (`Secret.get_data`),
    /// a JSON object. Fails for encrypted secrets: decrypting them needs
    /// CloudForet's KMS, which only its own services hold.
    pub async fn secret_data(&self, secret_id: &str) -> Result<Value, ApiError> {
        let Some(svc) = &self.secret else {
            return Err(ApiError::new(Code::InvalidArgument, "no secret service endpoint configured (cloudforet.secret or cloudforet.endpoint)"));
        };
        let req = GetSecretDataRequest { secret_id: secret_id.to_string(), domain_id: String::new() };
        let info = self.call(svc, "Secret.get_data", &req, |ch, req| async move { SecretClient::new(ch).get_data(req).await }).await?;
        if info.encrypted {
            return Err(ApiError::new(
                Code::FailedPrecondition,
                format!("secret {secret_id} is encrypted; cf-host cannot decrypt CloudForet's KMS-encrypted secret data"),
            ));
        }
        match struct_to_json(info.data) {
            v @ Value::Object(_) => Ok(v),
            _ => Err(ApiError::new(Code::InvalidArgument, format!("secret {secret_id} has no data object"))),
        }
    }

    /// Whether a notification service is configured.
    pub fn notifies(&self) -> bool {
        self.notification.is_some()
    }

    /// `Notification.create`; a no-op without a notification endpoint.
    pub async fn notify(&self, request: CreateNotificationRequest) -> Result<(), ApiError> {
        let Some(svc) = &self.notification else { return Ok(()) };
        self.call(svc, "Notification.create", &request, |ch, req| async move { NotificationClient::new(ch).create(req).await })
        .await
        .map(|_| ())
    }
}

/// Where CloudForet's services listen, as identity v2 `Endpoint.list`
/// answers (no token needed; what CloudForet's own clients ask first):
/// service name → endpoint in this host's form (`grpc://` becomes
/// `http://`, `grpc+ssl://` `https://`). Inactive endpoints are left out.
pub async fn discover(identity: &str, timeout: Duration) -> Result<std::collections::BTreeMap<String, String>, ApiError> {
    use super::pb::identity::v2::endpoint_client::EndpointClient;
    use super::pb::identity::v2::{endpoint_info::EndpointState, EndpointSearchQuery};
    let channel = Endpoint::from_shared(identity.to_string())
        .map_err(|e| ApiError::new(Code::InvalidArgument, format!("invalid identity endpoint '{identity}': {e}")))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(timeout)
        .connect()
        .await
        .map_err(|e| ApiError::new(Code::Unavailable, format!("cannot reach {identity}: {e}")))?;
    let answer = EndpointClient::new(channel)
        .list(EndpointSearchQuery::default())
        .await
        .map_err(|s| ApiError::from_status(&s))?
        .into_inner();
    let mut out = std::collections::BTreeMap::new();
    for e in answer.results {
        if e.state == EndpointState::Inactive as i32 || e.service.is_empty() {
            continue;
        }
        if let Some(url) = host_form(&e.endpoint) {
            out.insert(e.service, url);
        }
    }
    Ok(out)
}

/// A CloudForet endpoint (`grpc://h:p`, `grpc+ssl://h:p`) as this host
/// names endpoints (`http://h:p`, `https://h:p`); `None` for anything else.
fn host_form(endpoint: &str) -> Option<String> {
    let e = endpoint.trim().trim_end_matches('/');
    if let Some(rest) = e.strip_prefix("grpc+ssl://") {
        return Some(format!("https://{rest}"));
    }
    if let Some(rest) = e.strip_prefix("grpc://") {
        return Some(format!("http://{rest}"));
    }
    (e.starts_with("http://") || e.starts_with("https://")).then(|| e.to_string())
}

#[cfg(test)]
mod discovery_tests {
    #[test]
    fn cloudforet_endpoints_become_urls() {
        assert_eq!(super::host_form("grpc://inventory.spaceone:50051").as_deref(), Some("http://inventory.spaceone:50051"));
        assert_eq!(super::host_form("grpc+ssl://identity.example.com:443/").as_deref(), Some("https://identity.example.com:443"));
        assert_eq!(super::host_form("tcp://x:1"), None);
    }
}
