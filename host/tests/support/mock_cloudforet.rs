//! A mock CloudForet deployment for push-mode tests (a test double): tonic
//! servers of identity `Token` and `Schema`, inventory `CloudService` /
//! `CloudServiceType` / `Region`, notification `Notification`, repository
//! `Plugin`, secret `Secret` and cost_analysis `Cost`, built from
//! the same protos as cf-host's clients, over a real loopback socket.
//!
//! It keeps what it is sent in memory, records every call, checks the
//! `token` metadata of every call (JWT-shaped tokens it issued, with `exp`),
//! and injects faults: unavailable answers, stopping and restarting its
//! listener, revoking tokens, short token lifetimes, latency.

use base64::Engine as _;
use cf_host::cloudforet::pb::identity::v2::token_server::{Token, TokenServer};
use cf_host::cloudforet::pb::identity::v2::{GrantTokenInfo, GrantTokenRequest, IssueTokenRequest, TokenInfo};
use cf_host::cloudforet::pb::inventory::v1::cloud_service_server::{CloudService, CloudServiceServer};
use cf_host::cloudforet::pb::inventory::v1::cloud_service_type_server::{CloudServiceType, CloudServiceTypeServer};
use cf_host::cloudforet::pb::inventory::v1::region_server::{Region, RegionServer};
use cf_host::cloudforet::pb::inventory::v1::*;
use cf_host::cloudforet::pb::notification::v1::notification_server::{Notification, NotificationServer};
use cf_host::cloudforet::pb::notification::v1::CreateNotificationRequest;
use cf_host::cloudforet::pb::identity::v2::schema_server::{Schema, SchemaServer};
use cf_host::cloudforet::pb::identity::v2::{CreateSchemaRequest, SchemaInfo, SchemaRequest, UpdateSchemaRequest};
use cf_host::cloudforet::pb::repository::v1::plugin_server::{Plugin, PluginServer};
use cf_host::cloudforet::pb::repository::v1::{PluginInfo, PluginQuery, PluginsInfo, RegisterPluginRequest, UpdatePluginRequest};
use cf_host::cloudforet::pb::secret::v1::secret_server::{Secret, SecretServer};
use cf_host::cloudforet::pb::secret::v1::{GetSecretDataRequest, SecretDataInfo};
use cf_host::cloudforet::pb::cost_analysis::v1::cost_server::{Cost, CostServer};
use cf_host::cloudforet::pb::cost_analysis::v1::{CostInfo, CostQuery, CostRequest, CostsInfo, CreateCostRequest};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tonic::{Request, Response, Status};

pub const APP_TOKEN: &str = "app-client-secret-for-tests";
pub const USER: (&str, &str) = ("push-bot", "s3cret-password");

#[derive(Default)]
pub struct Db {
    pub cloud_services: BTreeMap<String, CloudServiceInfo>,
    pub types: BTreeMap<String, CloudServiceTypeInfo>,
    pub regions: BTreeMap<String, RegionInfo>,
    pub notifications: Vec<CreateNotificationRequest>,
    pub schemas: BTreeMap<String, SchemaInfo>,
    pub plugins: BTreeMap<String, PluginInfo>,
    /// Secret data by secret id (`encrypted` when the bool is set).
    pub secrets: BTreeMap<String, (bool, prost_types::Struct)>,
    pub costs: BTreeMap<String, CostInfo>,
    /// Every call by method name (`CloudService.create`), refused ones too.
    pub calls: Vec<String>,
    pub deleted: Vec<String>,
    pub issued: u64,
    pub granted: u64,
    /// Calls refused for their token.
    pub auth_refused: u64,
    valid: HashSet<String>,
    next: u64,
    /// Cloud service ids by `reference.resource_id`: `CloudService.list`
    /// by resource id answers without a scan (as CloudForet's index does),
    /// so a push of 100,000 VMs measures the host, not the mock.
    by_resource_id: HashMap<String, Vec<String>>,
}

impl Db {
    fn index(&mut self, info: &CloudServiceInfo) {
        if let Some(r) = &info.reference {
            self.by_resource_id.entry(r.resource_id.clone()).or_default().push(info.cloud_service_id.clone());
        }
    }

    fn unindex(&mut self, info: &CloudServiceInfo) {
        if let Some(r) = &info.reference
            && let Some(ids) = self.by_resource_id.get_mut(&r.resource_id)
        {
            ids.retain(|id| id != &info.cloud_service_id);
        }
    }
}

pub struct Inner {
    pub db: Mutex<Db>,
    /// The next N calls answer UNAVAILABLE.
    pub unavailable_next: AtomicU64,
    /// Every Nth inventory call revokes all issued access tokens first (0: never).
    pub revoke_every: AtomicU64,
    pub token_lifetime_secs: AtomicU64,
    pub latency_ms: AtomicU64,
}

/// The serving task and its stop signal.
type Running = (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>);

#[derive(Clone)]
pub struct MockCloudForet {
    pub inner: Arc<Inner>,
    pub addr: SocketAddr,
    stop: Arc<Mutex<Option<Running>>>,
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn jwt(kind: &str, n: u64, lifetime: u64) -> String {
    let e = |s: String| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let t = now();
    format!("{}.{}.mock", e(r#"{"alg":"none"}"#.into()), e(format!(r#"{{"kind":"{kind}","n":{n},"iat":{t},"exp":{}}}"#, t + lifetime)))
}

fn s(v: &Option<prost_types::Value>) -> String {
    match v.as_ref().and_then(|v| v.kind.as_ref()) {
        Some(prost_types::value::Kind::StringValue(s)) => s.clone(),
        _ => String::new(),
    }
}

impl Inner {
    /// Fault injection and token check common to every call.
    async fn enter<T>(&self, method: &str, req: &Request<T>) -> Result<(), Status> {
        let latency = self.latency_ms.load(Ordering::Relaxed);
        if latency > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
        }
        let mut db = self.db.lock().unwrap();
        db.calls.push(method.to_string());
        if self.unavailable_next.load(Ordering::Relaxed) > 0 {
            self.unavailable_next.fetch_sub(1, Ordering::Relaxed);
            return Err(Status::unavailable("ERROR_GRPC_CONNECTION: Server is unavailable. (channel = inventory)"));
        }
        if method.starts_with("Token.") {
            return Ok(());
        }
        let every = self.revoke_every.load(Ordering::Relaxed);
        if every > 0 && (db.calls.len() as u64).is_multiple_of(every) {
            db.valid.clear();
        }
        let token = req.metadata().get("token").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let exp = cf_host::cloudforet::token::jwt_times(&token).1.unwrap_or(0);
        if token == APP_TOKEN || (db.valid.contains(&token) && exp > now()) {
            return Ok(());
        }
        db.auth_refused += 1;
        Err(Status::unauthenticated("ERROR_AUTHENTICATE_FAILURE: Authenticate failure. (message = Token expired)"))
    }

    fn id(&self, prefix: &str) -> String {
        let mut db = self.db.lock().unwrap();
        db.next += 1;
        format!("{prefix}-{:08x}", db.next)
    }
}

#[tonic::async_trait]
impl Token for MockCloudForet {
    async fn issue(&self, req: Request<IssueTokenRequest>) -> Result<Response<TokenInfo>, Status> {
        self.inner.enter("Token.issue", &req).await?;
        let r = req.into_inner();
        let creds = r.credentials.unwrap_or_default();
        let get = |k: &str| s(&creds.fields.get(k).cloned());
        if (get("user_id").as_str(), get("password").as_str()) != USER || r.domain_id != "domain-test" {
            return Err(Status::unauthenticated("ERROR_AUTHENTICATE_FAILURE: Authenticate failure. (message = wrong credentials)"));
        }
        let mut db = self.inner.db.lock().unwrap();
        db.issued += 1;
        let n = db.issued;
        Ok(Response::new(TokenInfo { access_token: jwt("access", n, 3600), refresh_token: jwt("refresh", n, 3600) }))
    }

    async fn grant(&self, req: Request<GrantTokenRequest>) -> Result<Response<GrantTokenInfo>, Status> {
        self.inner.enter("Token.grant", &req).await?;
        let r = req.into_inner();
        if !r.token.contains('.') || r.grant_type != 1 {
            return Err(Status::invalid_argument("ERROR_INVALID_ARGUMENT: bad grant"));
        }
        let lifetime = self.inner.token_lifetime_secs.load(Ordering::Relaxed);
        let mut db = self.inner.db.lock().unwrap();
        db.granted += 1;
        let t = jwt("granted", db.granted, lifetime);
        db.valid.insert(t.clone());
        Ok(Response::new(GrantTokenInfo { access_token: t, domain_id: r.domain_id, workspace_id: r.workspace_id, ..Default::default() }))
    }
}

fn account_matches(want: &str, have: &str) -> bool {
    want.is_empty() || want == have
}

#[tonic::async_trait]
impl CloudService for MockCloudForet {
    async fn create(&self, req: Request<CreateServiceRequest>) -> Result<Response<CloudServiceInfo>, Status> {
        self.inner.enter("CloudService.create", &req).await?;
        let r = req.into_inner();
        if r.name.is_empty() || r.reference.as_ref().is_none_or(|x| x.resource_id.is_empty()) {
            return Err(Status::invalid_argument("ERROR_REQUIRED_PARAMETER: Required parameter. (key = name)"));
        }
        let id = self.inner.id("cloud-svc");
        let info = CloudServiceInfo {
            cloud_service_id: id.clone(),
            name: r.name,
            state: "ACTIVE".into(),
            ip_addresses: r.ip_addresses,
            account: r.account,
            instance_type: r.instance_type,
            instance_size: r.instance_size,
            cloud_service_type: r.cloud_service_type,
            cloud_service_group: r.cloud_service_group,
            provider: r.provider,
            data: r.data,
            metadata: r.metadata,
            reference: r.reference,
            tags: r.tags,
            region_code: r.region_code,
            domain_id: "domain-test".into(),
            project_id: r.project_id,
            ..Default::default()
        };
        let mut db = self.inner.db.lock().unwrap();
        db.index(&info);
        db.cloud_services.insert(id, info.clone());
        Ok(Response::new(info))
    }

    async fn update(&self, req: Request<UpdateCloudServiceRequest>) -> Result<Response<CloudServiceInfo>, Status> {
        self.inner.enter("CloudService.update", &req).await?;
        let r = req.into_inner();
        let mut db = self.inner.db.lock().unwrap();
        let Some(old) = db.cloud_services.get(&r.cloud_service_id).cloned() else {
            return Err(Status::not_found(format!("ERROR_NOT_FOUND: Not found. (key = cloud_service_id, value = {})", r.cloud_service_id)));
        };
        db.unindex(&old);
        let Some(info) = db.cloud_services.get_mut(&r.cloud_service_id) else {
            return Err(Status::not_found(format!("ERROR_NOT_FOUND: Not found. (key = cloud_service_id, value = {})", r.cloud_service_id)));
        };
        info.name = r.name;
        info.account = r.account;
        info.instance_type = r.instance_type;
        info.instance_size = r.instance_size;
        info.ip_addresses = r.ip_addresses;
        info.data = r.data;
        info.metadata = r.metadata;
        info.reference = r.reference;
        info.tags = r.tags;
        info.region_code = r.region_code;
        if !r.project_id.is_empty() {
            info.project_id = r.project_id;
        }
        let info = info.clone();
        db.index(&info);
        Ok(Response::new(info))
    }

    async fn delete(&self, req: Request<CloudServiceRequest>) -> Result<Response<()>, Status> {
        self.inner.enter("CloudService.delete", &req).await?;
        let id = req.into_inner().cloud_service_id;
        let mut db = self.inner.db.lock().unwrap();
        let removed = db.cloud_services.remove(&id);
        if let Some(info) = &removed {
            db.unindex(info);
        }
        if removed.is_none() {
            return Err(Status::not_found(format!("ERROR_NOT_FOUND: Not found. (key = cloud_service_id, value = {id})")));
        }
        db.deleted.push(id);
        Ok(Response::new(()))
    }

    async fn list(&self, req: Request<CloudServiceQuery>) -> Result<Response<CloudServicesInfo>, Status> {
        self.inner.enter("CloudService.list", &req).await?;
        let q = req.into_inner();
        let filters = q.query.map(|q| q.filter).unwrap_or_default();
        let rid = filters.iter().find(|f| f.key == "reference.resource_id" && f.operator == "eq").map(|f| s(&f.value));
        let db = self.inner.db.lock().unwrap();
        let candidates: Box<dyn Iterator<Item = &CloudServiceInfo>> = match &rid {
            Some(r) => {
                let mut ids: Vec<&String> = db.by_resource_id.get(r).map(|ids| ids.iter().collect()).unwrap_or_default();
                ids.sort();
                Box::new(ids.into_iter().filter_map(|id| db.cloud_services.get(id)))
            }
            None => Box::new(db.cloud_services.values()),
        };
        let results: Vec<CloudServiceInfo> = candidates
            .filter(|c| {
                (q.provider.is_empty() || c.provider == q.provider)
                    && (q.cloud_service_group.is_empty() || c.cloud_service_group == q.cloud_service_group)
                    && (q.cloud_service_type.is_empty() || c.cloud_service_type == q.cloud_service_type)
                    && account_matches(&q.account, &c.account)
                    && rid.as_ref().is_none_or(|r| c.reference.as_ref().is_some_and(|x| &x.resource_id == r))
            })
            .cloned()
            .collect();
        Ok(Response::new(CloudServicesInfo { total_count: results.len() as i32, results }))
    }
}

#[tonic::async_trait]
impl CloudServiceType for MockCloudForet {
    async fn create(&self, req: Request<CreateCloudServiceTypeRequest>) -> Result<Response<CloudServiceTypeInfo>, Status> {
        self.inner.enter("CloudServiceType.create", &req).await?;
        let r = req.into_inner();
        let id = self.inner.id("cloud-svc-type");
        let info = CloudServiceTypeInfo {
            cloud_service_type_id: id.clone(),
            cloud_service_type_key: format!("{}.{}.{}", r.provider, r.group, r.name),
            name: r.name,
            provider: r.provider,
            group: r.group,
            service_code: r.service_code,
            is_primary: r.is_primary,
            is_major: r.is_major,
            resource_type: r.resource_type,
            metadata: r.metadata,
            tags: r.tags,
            labels: r.labels,
            ..Default::default()
        };
        self.inner.db.lock().unwrap().types.insert(id, info.clone());
        Ok(Response::new(info))
    }

    async fn update(&self, req: Request<UpdateCloudServiceTypeRequest>) -> Result<Response<CloudServiceTypeInfo>, Status> {
        self.inner.enter("CloudServiceType.update", &req).await?;
        let r = req.into_inner();
        let mut db = self.inner.db.lock().unwrap();
        let info = db.types.get_mut(&r.cloud_service_type_id).ok_or_else(|| Status::not_found("ERROR_NOT_FOUND: Not found."))?;
        info.service_code = r.service_code;
        info.is_primary = r.is_primary;
        info.is_major = r.is_major;
        info.resource_type = r.resource_type;
        info.metadata = r.metadata;
        info.labels = r.labels;
        info.tags = r.tags;
        Ok(Response::new(info.clone()))
    }

    async fn list(&self, req: Request<CloudServiceTypeQuery>) -> Result<Response<CloudServiceTypesInfo>, Status> {
        self.inner.enter("CloudServiceType.list", &req).await?;
        let q = req.into_inner();
        let db = self.inner.db.lock().unwrap();
        let results: Vec<_> = db
            .types
            .values()
            .filter(|t| (q.name.is_empty() || t.name == q.name) && (q.group.is_empty() || t.group == q.group) && (q.provider.is_empty() || t.provider == q.provider))
            .cloned()
            .collect();
        Ok(Response::new(CloudServiceTypesInfo { total_count: results.len() as i32, results }))
    }
}

#[tonic::async_trait]
impl Region for MockCloudForet {
    async fn create(&self, req: Request<CreateRegionRequest>) -> Result<Response<RegionInfo>, Status> {
        self.inner.enter("Region.create", &req).await?;
        let r = req.into_inner();
        let id = self.inner.id("region");
        let info = RegionInfo {
            region_id: id.clone(),
            region_key: format!("{}.{}", r.provider, r.region_code),
            name: r.name,
            region_code: r.region_code,
            provider: r.provider,
            tags: r.tags,
            ..Default::default()
        };
        self.inner.db.lock().unwrap().regions.insert(id, info.clone());
        Ok(Response::new(info))
    }

    async fn update(&self, req: Request<UpdateRegionRequest>) -> Result<Response<RegionInfo>, Status> {
        self.inner.enter("Region.update", &req).await?;
        let r = req.into_inner();
        let mut db = self.inner.db.lock().unwrap();
        let info = db.regions.get_mut(&r.region_id).ok_or_else(|| Status::not_found("ERROR_NOT_FOUND: Not found."))?;
        info.name = r.name;
        info.tags = r.tags;
        Ok(Response::new(info.clone()))
    }

    async fn list(&self, req: Request<RegionQuery>) -> Result<Response<RegionsInfo>, Status> {
        self.inner.enter("Region.list", &req).await?;
        let q = req.into_inner();
        let db = self.inner.db.lock().unwrap();
        let results: Vec<_> = db
            .regions
            .values()
            .filter(|r| (q.region_code.is_empty() || r.region_code == q.region_code) && (q.provider.is_empty() || r.provider == q.provider))
            .cloned()
            .collect();
        Ok(Response::new(RegionsInfo { total_count: results.len() as i32, results }))
    }
}

#[tonic::async_trait]
impl Notification for MockCloudForet {
    async fn create(&self, req: Request<CreateNotificationRequest>) -> Result<Response<()>, Status> {
        self.inner.enter("Notification.create", &req).await?;
        self.inner.db.lock().unwrap().notifications.push(req.into_inner());
        Ok(Response::new(()))
    }
}

#[tonic::async_trait]
impl Schema for MockCloudForet {
    async fn create(&self, req: Request<CreateSchemaRequest>) -> Result<Response<SchemaInfo>, Status> {
        self.inner.enter("Schema.create", &req).await?;
        let r = req.into_inner();
        let mut db = self.inner.db.lock().unwrap();
        if db.schemas.contains_key(&r.schema_id) {
            return Err(Status::already_exists(format!("ERROR_SAVE_UNIQUE_VALUES: Duplicated values. (keys = schema_id, values = {})", r.schema_id)));
        }
        let info = SchemaInfo {
            schema_id: r.schema_id.clone(),
            name: r.name,
            schema_type: r.schema_type,
            schema: r.schema,
            provider: r.provider,
            related_schemas: r.related_schemas,
            options: r.options,
            tags: r.tags,
            domain_id: "domain-test".into(),
            ..Default::default()
        };
        db.schemas.insert(r.schema_id, info.clone());
        Ok(Response::new(info))
    }

    async fn update(&self, req: Request<UpdateSchemaRequest>) -> Result<Response<SchemaInfo>, Status> {
        self.inner.enter("Schema.update", &req).await?;
        let r = req.into_inner();
        let mut db = self.inner.db.lock().unwrap();
        let info = db.schemas.get_mut(&r.schema_id).ok_or_else(|| Status::not_found("ERROR_NOT_FOUND: Not found. (key = schema_id)"))?;
        info.name = r.name;
        info.schema = r.schema;
        info.related_schemas = r.related_schemas;
        info.options = r.options;
        info.tags = r.tags;
        Ok(Response::new(info.clone()))
    }

    async fn get(&self, req: Request<SchemaRequest>) -> Result<Response<SchemaInfo>, Status> {
        self.inner.enter("Schema.get", &req).await?;
        let id = req.into_inner().schema_id;
        let db = self.inner.db.lock().unwrap();
        db.schemas
            .get(&id)
            .cloned()
            .map(Response::new)
            .ok_or_else(|| Status::not_found(format!("ERROR_NOT_FOUND: Not found. (key = schema_id, value = {id})")))
    }
}

#[tonic::async_trait]
impl Plugin for MockCloudForet {
    async fn register(&self, req: Request<RegisterPluginRequest>) -> Result<Response<PluginInfo>, Status> {
        self.inner.enter("Plugin.register", &req).await?;
        let r = req.into_inner();
        let id = if r.plugin_id.is_empty() { self.inner.id("plugin") } else { r.plugin_id };
        let info = PluginInfo {
            plugin_id: id.clone(),
            name: r.name,
            state: 1,
            resource_type: r.resource_type,
            image: r.image,
            provider: r.provider,
            registry_type: r.registry_type,
            registry_config: r.registry_config,
            capability: r.capability,
            labels: r.labels,
            tags: r.tags,
            docs: r.docs,
            domain_id: "domain-test".into(),
            ..Default::default()
        };
        self.inner.db.lock().unwrap().plugins.insert(id, info.clone());
        Ok(Response::new(info))
    }

    async fn update(&self, req: Request<UpdatePluginRequest>) -> Result<Response<PluginInfo>, Status> {
        self.inner.enter("Plugin.update", &req).await?;
        let r = req.into_inner();
        let mut db = self.inner.db.lock().unwrap();
        let info = db.plugins.get_mut(&r.plugin_id).ok_or_else(|| Status::not_found("ERROR_NOT_FOUND: Not found. (key = plugin_id)"))?;
        info.name = r.name;
        info.capability = r.capability;
        info.labels = r.labels;
        info.tags = r.tags;
        info.docs = r.docs;
        Ok(Response::new(info.clone()))
    }

    async fn list(&self, req: Request<PluginQuery>) -> Result<Response<PluginsInfo>, Status> {
        self.inner.enter("Plugin.list", &req).await?;
        let q = req.into_inner();
        let db = self.inner.db.lock().unwrap();
        let results: Vec<_> = db
            .plugins
            .values()
            .filter(|p| (q.plugin_id.is_empty() || p.plugin_id == q.plugin_id) && (q.name.is_empty() || p.name == q.name))
            .cloned()
            .collect();
        Ok(Response::new(PluginsInfo { total_count: results.len() as i32, results }))
    }
}

#[tonic::async_trait]
impl Secret for MockCloudForet {
    async fn get_data(&self, req: Request<GetSecretDataRequest>) -> Result<Response<SecretDataInfo>, Status> {
        self.inner.enter("Secret.get_data", &req).await?;
        let id = req.into_inner().secret_id;
        let db = self.inner.db.lock().unwrap();
        let (encrypted, data) =
            db.secrets.get(&id).cloned().ok_or_else(|| Status::not_found(format!("ERROR_NOT_FOUND: Not found. (key = secret_id, value = {id})")))?;
        Ok(Response::new(SecretDataInfo { encrypted, encrypt_options: None, data: Some(data) }))
    }
}

#[tonic::async_trait]
impl Cost for MockCloudForet {
    async fn create(&self, req: Request<CreateCostRequest>) -> Result<Response<CostInfo>, Status> {
        self.inner.enter("Cost.create", &req).await?;
        let r = req.into_inner();
        if r.data_source_id.is_empty() || r.billed_date.len() != 10 {
            return Err(Status::invalid_argument("ERROR_REQUIRED_PARAMETER: Required parameter. (key = data_source_id)"));
        }
        let id = self.inner.id("cost");
        let info = CostInfo {
            cost_id: id.clone(),
            cost: r.cost,
            usage_quantity: r.usage_quantity,
            provider: r.provider,
            region_code: r.region_code,
            product: r.product,
            usage_type: r.usage_type,
            resource: r.resource,
            tags: r.tags,
            additional_info: r.additional_info,
            project_id: r.project_id,
            data_source_id: r.data_source_id,
            billed_year: r.billed_date[..4].to_string(),
            billed_month: r.billed_date[..7].to_string(),
            billed_date: r.billed_date,
            domain_id: "domain-test".into(),
            ..Default::default()
        };
        self.inner.db.lock().unwrap().costs.insert(id, info.clone());
        Ok(Response::new(info))
    }

    async fn delete(&self, req: Request<CostRequest>) -> Result<Response<()>, Status> {
        self.inner.enter("Cost.delete", &req).await?;
        let id = req.into_inner().cost_id;
        match self.inner.db.lock().unwrap().costs.remove(&id) {
            Some(_) => Ok(Response::new(())),
            None => Err(Status::not_found(format!("ERROR_NOT_FOUND: Not found. (key = cost_id, value = {id})"))),
        }
    }

    async fn list(&self, req: Request<CostQuery>) -> Result<Response<CostsInfo>, Status> {
        self.inner.enter("Cost.list", &req).await?;
        let q = req.into_inner();
        let db = self.inner.db.lock().unwrap();
        let m = |want: &str, have: &str| want.is_empty() || want == have;
        let results: Vec<_> = db
            .costs
            .values()
            .filter(|c| {
                m(&q.data_source_id, &c.data_source_id)
                    && m(&q.resource, &c.resource)
                    && m(&q.usage_type, &c.usage_type)
                    && m(&q.billed_date, &c.billed_date)
                    && m(&q.provider, &c.provider)
            })
            .cloned()
            .collect();
        Ok(Response::new(CostsInfo { total_count: results.len() as i32, results }))
    }
}

impl MockCloudForet {
    /// Starts on `127.0.0.1:<free port>` (inside a tokio runtime).
    pub async fn start() -> MockCloudForet {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let m = MockCloudForet {
            inner: Arc::new(Inner {
                db: Mutex::new(Db::default()),
                unavailable_next: AtomicU64::new(0),
                revoke_every: AtomicU64::new(0),
                token_lifetime_secs: AtomicU64::new(3600),
                latency_ms: AtomicU64::new(0),
            }),
            addr,
            stop: Arc::new(Mutex::new(None)),
        };
        m.serve(listener);
        m
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let me = self.clone();
        let task = tokio::spawn(async move {
            use tokio_stream::StreamExt as _;
            // As CloudForet's gRPC servers: no Nagle delay on answers.
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|s| {
                if let Ok(s) = &s {
                    let _ = s.set_nodelay(true);
                }
                s
            });
            let _ = tonic::transport::Server::builder()
                .add_service(TokenServer::new(me.clone()))
                .add_service(CloudServiceServer::new(me.clone()))
                .add_service(CloudServiceTypeServer::new(me.clone()))
                .add_service(RegionServer::new(me.clone()))
                .add_service(NotificationServer::new(me.clone()))
                .add_service(SchemaServer::new(me.clone()))
                .add_service(PluginServer::new(me.clone()))
                .add_service(SecretServer::new(me.clone()))
                .add_service(CostServer::new(me.clone()))
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = rx.await;
                })
                .await;
        });
        *self.stop.lock().unwrap() = Some((tx, task));
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops listening and closes connections (CloudForet is down).
    pub async fn stop(&self) {
        let stopped = self.stop.lock().unwrap().take();
        if let Some((tx, task)) = stopped {
            let _ = tx.send(());
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
        }
    }

    /// Listens again on the same address with the same data.
    pub async fn restart(&self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.expect("rebind the same port");
        self.serve(listener);
    }

    pub fn db(&self) -> std::sync::MutexGuard<'_, Db> {
        self.inner.db.lock().unwrap()
    }

    pub fn calls_of(&self, method: &str) -> usize {
        self.db().calls.iter().filter(|c| c.as_str() == method).count()
    }

    /// Cloud services per `group/type`, and whether any key is duplicated.
    pub fn cloud_service_counts(&self) -> (BTreeMap<String, u64>, Vec<String>) {
        let db = self.db();
        let mut counts = BTreeMap::new();
        let mut keys = HashSet::new();
        let mut dups = Vec::new();
        for c in db.cloud_services.values() {
            *counts.entry(format!("{}/{}", c.cloud_service_group, c.cloud_service_type)).or_insert(0) += 1;
            let rid = c.reference.as_ref().map(|r| r.resource_id.clone()).unwrap_or_default();
            let key = format!("{}|{}|{}|{}|{rid}", c.provider, c.cloud_service_group, c.cloud_service_type, c.account);
            if !keys.insert(key.clone()) {
                dups.push(key);
            }
        }
        (counts, dups)
    }
}
