//! `cf-host run --config FILE`: push mode's configuration and scheduler.
//!
//! The file (TOML; `cf-host.push.example.toml` documents every key) names
//! the CloudForet deployment (endpoints, token or user credentials, delivery
//! settings), the embedded store holding the outbox, the collector
//! component, and the tenants: each with its Prism endpoint, secret (file or
//! environment variable, never inline), options, CloudForet project and the
//! UTC hours it runs at (CloudForet's collector schedule).
//!
//! `--once` runs every tenant now and exits (non-zero when a collection
//! failed or records are left spooled). Otherwise the scheduler wakes every
//! `tick`, starts the tenants whose hour has come (once per hour, at most
//! `max_parallel_tenants` at a time), and redelivers outboxes left by runs
//! that could not reach CloudForet.
//!
//! Fleet mode (`database`, or `cf-host run --database`): replicas on one
//! PostgreSQL database share the schedule. Each tenant's slot (its UTC
//! hour) runs once across them: the replica that takes the tenant's lease
//! (`crate::fleet::push_leases`) starts the slot, renews the lease while
//! it runs and marks the slot done; a replica that dies mid-run leaves the
//! slot open and its lease expiring after `lease_ttl_secs`, and the next
//! replica to tick takes the slot over. Redelivery and `--once` runs take
//! the tenant's lease too (`--once` waits for it and leaves the slots
//! alone), so one tenant's records are never delivered by two replicas at
//! once. The outbox and ledger are then the database's
//! (`crate::spool::pg::PgOutbox`): any replica delivers any tenant's
//! leftovers, and guest state is too (`crate::fleet::PgState`): a tenant's
//! incremental cache follows it to the next replica. Tenants' run caps
//! (`limits`) count runs on every replica.
//!
//! A configuration that cannot be used is a [`ConfigError`] naming what is
//! wrong; the runner's own failures (a tenant's secret, its plugin, its
//! push run) are a [`RunnerError`], and registration's a [`RegisterError`].

use crate::cloudforet::client::{Connector, ConnectorConfig, Endpoints, Upserted};
use crate::cloudforet::pb::identity::v2::SchemaType;
use crate::cloudforet::pb::repository::v1::PublicRegistryType;
use crate::cloudforet::register::{PluginSpec, SchemaSpec};
use crate::resilience::Backoff;
use crate::cloudforet::token::{Auth, Scope};
use crate::push::{self, PushReport, PushSettings, PushSpec, Sink};
use crate::runtime::{Plugin, Runtime, RuntimeConfig};
use crate::store::Store;
use crate::tenancy::TenancyConfig;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The embedded store (outbox, ledger, runs, state); not used (nor
    /// made) in fleet mode, where all of it is in the database.
    #[serde(default = "default_store")]
    pub store: PathBuf,
    /// The collector component, unless a tenant names its own.
    pub plugin: Option<PathBuf>,
    /// Tenants collected at once.
    #[serde(default = "default_parallel")]
    pub max_parallel_tenants: usize,
    /// Per-tenant sandbox limits (the JSON file of `serve --tenants`).
    pub limits: Option<PathBuf>,
    /// POST collection.finished/failed here (key: CF_HOST_WEBHOOK_SECRET).
    pub webhook_url: Option<String>,
    /// Fleet mode: the PostgreSQL database the `cf-host run` replicas share
    /// (`--database` / `CF_HOST_DATABASE` win over it; keep a password out
    /// of the file by giving it there).
    pub database: Option<String>,
    /// Fleet mode: how long a tenant's lease outlives its holder's last
    /// heartbeat (renewed every third of it).
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl_secs: u64,
    pub cloudforet: CloudForet,
    /// What `cf-host register` publishes.
    pub register: Option<Register>,
    #[serde(default, rename = "tenant")]
    pub tenants: Vec<TenantJob>,
}

/// `cf-host register`: the collector's secret schema and repository entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    pub schema: Option<SchemaConf>,
    pub plugin: Option<PluginConf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaConf {
    pub schema_id: String,
    pub name: String,
    /// SECRET, TRUSTING_SECRET, SERVICE_ACCOUNT or TRUSTED_ACCOUNT.
    #[serde(default = "default_schema_type")]
    pub schema_type: String,
    /// The JSON Schema of the secret's data (a JSON file).
    pub schema_file: PathBuf,
    pub provider: String,
    #[serde(default)]
    pub related_schemas: Vec<String>,
    #[serde(default)]
    pub options: toml::Table,
    #[serde(default)]
    pub tags: toml::Table,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConf {
    /// Empty: the repository assigns one and the plugin is found by name.
    #[serde(default)]
    pub plugin_id: String,
    pub name: String,
    /// The image CloudForet's supervisor deploys (cf-host serving the collector).
    pub image: String,
    #[serde(default = "default_plugin_resource_type")]
    pub resource_type: String,
    pub provider: String,
    /// DOCKER_HUB, AWS_PRIVATE_ECR, HARBOR, GITHUB or GCP_PRIVATE_GCR.
    #[serde(default = "default_registry_type")]
    pub registry_type: String,
    #[serde(default)]
    pub registry_config: toml::Table,
    #[serde(default)]
    pub capability: toml::Table,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub tags: toml::Table,
    #[serde(default)]
    pub docs: toml::Table,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudForet {
    /// Default endpoint of every service (`http://host:port`).
    pub endpoint: Option<String>,
    /// Ask identity (`Endpoint.list`, as CloudForet's own clients do) where
    /// the services without an endpoint of their own listen. On by default;
    /// takes effect when `endpoint` is not set.
    #[serde(default = "yes")]
    pub discover: bool,
    pub identity: Option<String>,
    pub inventory: Option<String>,
    /// Completion notifications go here (none without it or `endpoint`).
    pub notification: Option<String>,
    /// Tenants' `secret_id`s are read here (default: `endpoint`).
    pub secret: Option<String>,
    /// `cf-host register` registers the plugin here (default: `endpoint`).
    pub repository: Option<String>,
    /// Costs are written here (default: `endpoint`).
    pub cost_analysis: Option<String>,
    /// File holding an App's client_secret, used as the token.
    pub token_file: Option<PathBuf>,
    /// Environment variable holding it.
    pub token_env: Option<String>,
    /// Or a user: issued (LOCAL) and granted for the domain or workspace.
    pub user_id: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
    pub domain_id: Option<String>,
    /// Grants the workspace scope (domain scope without it).
    pub workspace_id: Option<String>,
    /// Notification.create's resource: type and id.
    pub notify_resource_type: Option<String>,
    pub notify_resource_id: Option<String>,
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    #[serde(default = "default_deliver_timeout")]
    pub deliver_timeout_secs: u64,
    #[serde(default = "default_delete_after")]
    pub delete_after_missed: u32,
    #[serde(default = "default_call_timeout")]
    pub call_timeout_secs: u64,
    /// Attempts per call while CloudForet is unavailable.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    #[serde(default = "default_backoff_ms")]
    pub backoff_base_ms: u64,
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    #[serde(default = "default_breaker_threshold")]
    pub breaker_threshold: u32,
    #[serde(default = "default_breaker_open")]
    pub breaker_open_secs: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantJob {
    pub name: String,
    /// Prism Central, e.g. `https://prism.example.com:9440`.
    pub endpoint: String,
    pub secret_file: Option<PathBuf>,
    pub secret_env: Option<String>,
    /// A secret in CloudForet's secret service, read at every run.
    pub secret_id: Option<String>,
    pub plugin: Option<PathBuf>,
    #[serde(default)]
    pub options: toml::Table,
    #[serde(default)]
    pub task_options: toml::Table,
    /// CloudForet project of the tenant's cloud services.
    pub project_id: Option<String>,
    /// Also push costs (the plugin's `cost-source`, priced by the
    /// `rate_card` option) into this CloudForet cost data source.
    pub cost_data_source_id: Option<String>,
    /// UTC hours to run at (0–23).
    #[serde(default = "default_hours")]
    pub hours: Vec<u8>,
    /// Private networks (CIDR) the endpoint may resolve into.
    #[serde(default)]
    pub allow_networks: Vec<String>,
}

fn default_store() -> PathBuf {
    PathBuf::from("cf-host-push.db")
}
fn default_lease_ttl() -> u64 {
    60
}
fn default_parallel() -> usize {
    2
}
fn default_concurrency() -> usize {
    4
}
fn default_deliver_timeout() -> u64 {
    60
}
fn default_delete_after() -> u32 {
    3
}
fn default_call_timeout() -> u64 {
    30
}
fn default_attempts() -> u32 {
    5
}
fn default_backoff_ms() -> u64 {
    200
}
fn default_backoff_max_ms() -> u64 {
    10_000
}
fn default_breaker_threshold() -> u32 {
    5
}
fn default_breaker_open() -> u64 {
    5
}
fn default_hours() -> Vec<u8> {
    vec![0]
}
fn default_schema_type() -> String {
    "SECRET".into()
}
fn default_plugin_resource_type() -> String {
    "inventory.Collector".into()
}
fn default_registry_type() -> String {
    "DOCKER_HUB".into()
}

/// What is wrong with a push configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: {source}", path.display())]
    Toml { path: PathBuf, source: toml::de::Error },
    #[error("no [[tenant]] to collect and nothing to [register]")]
    NothingToDo,
    #[error("tenant '{0}' is configured twice")]
    DuplicateTenant(String),
    #[error("tenant '{0}': no plugin (set `plugin` at the top or in the tenant)")]
    NoPlugin(String),
    #[error("tenant '{0}': set exactly one of secret_file, secret_env, secret_id")]
    SecretSource(String),
    #[error("tenant '{tenant}': hour {hour} is not 0-23")]
    Hour { tenant: String, hour: u8 },
    #[error("max_parallel_tenants and cloudforet.concurrency must be at least 1")]
    NoParallelism,
    #[error("lease_ttl_secs must be at least 1")]
    NoLeaseTtl,
    #[error("cloudforet.identity (or cloudforet.endpoint) is required")]
    NoIdentity,
    #[error("cloudforet.inventory (or cloudforet.endpoint, or discover = true) is required")]
    NoInventory,
    /// Identity's `Endpoint.list` failed.
    #[error("cannot discover CloudForet's endpoints from identity {identity}: {source}")]
    Discover { identity: String, source: crate::cloudforet::ApiError },
    /// Identity lists no inventory endpoint.
    #[error("no inventory endpoint: set cloudforet.inventory, or make identity {identity} list one")]
    NoInventoryListed { identity: String },
    /// A credential file (`what` is its key) cannot be read.
    #[error("{what} {}: {source}", path.display())]
    CredentialFile { what: String, path: PathBuf, source: std::io::Error },
    /// The environment variable a key (`what`) names is not set.
    #[error("{what}: environment variable {var} is not set")]
    EnvNotSet { what: String, var: String },
    #[error("cloudforet.user_id needs exactly one of password_env, password_file")]
    PasswordSource,
    #[error("cloudforet.user_id needs domain_id")]
    NoDomain,
    #[error("cloudforet: set exactly one of token_file, token_env, user_id")]
    AuthSource,
    /// The `limits` file.
    #[error(transparent)]
    Tenancy(#[from] crate::tenancy::TenancyError),
    #[error("tenant '{tenant}': allow_networks {entry:?}: {source}")]
    Network { tenant: String, entry: String, source: ipnet::AddrParseError },
    #[error("register.schema.schema_type '{0}' is not one of SECRET, TRUSTING_SECRET, SERVICE_ACCOUNT, TRUSTED_ACCOUNT")]
    SchemaType(String),
    #[error("register.schema.schema_file {}: {source}", path.display())]
    SchemaFile { path: PathBuf, source: std::io::Error },
    #[error("register.schema.schema_file {}: {source}", path.display())]
    SchemaJson { path: PathBuf, source: serde_json::Error },
    #[error("register.schema.schema_file {}: not a JSON object", path.display())]
    SchemaNotObject { path: PathBuf },
    #[error("register.plugin.registry_type '{0}' is not one of DOCKER_HUB, AWS_PRIVATE_ECR, HARBOR, GITHUB, GCP_PRIVATE_GCR")]
    RegistryType(String),
    #[error("register.plugin: name and image must not be empty")]
    EmptyPlugin,
}

/// The text, for callers that only report it.
impl From<ConfigError> for String {
    fn from(e: ConfigError) -> String {
        e.to_string()
    }
}

/// Why the runner, or one tenant's run, failed.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("no [[tenant]] to collect")]
    NoTenants,
    /// The sandbox runtime could not be made.
    #[error("{0}")]
    Runtime(String),
    #[error("plugin {}: {source}", path.display())]
    Plugin { path: PathBuf, source: crate::runtime::LoadError },
    #[error("tenant '{tenant}': cost_data_source_id is set but {plugin} is not a cost data source (no cost-source export)")]
    NotCostSource { tenant: String, plugin: String },
    /// The CloudForet connector could not be made.
    #[error("{0}")]
    Connector(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("webhook_url needs CF_HOST_WEBHOOK_SECRET (16+ characters)")]
    NoWebhookSecret,
    #[error(transparent)]
    Webhook(#[from] crate::webhook::WebhookError),
    #[error("tenant '{0}': no plugin")]
    NoPlugin(String),
    #[error("tenant '{tenant}': plugin {} not loaded", path.display())]
    NotLoaded { tenant: String, path: PathBuf },
    #[error("tenant '{tenant}': secret {}: {source}", path.display())]
    SecretFile { tenant: String, path: PathBuf, source: std::io::Error },
    /// CloudForet's secret service did not give the secret.
    #[error("tenant '{tenant}': secret {id}: {source}")]
    SecretData { tenant: String, id: String, source: crate::cloudforet::ApiError },
    #[error("tenant '{0}': no secret")]
    NoSecret(String),
    /// Never with the secret's text.
    #[error("tenant '{0}': the secret is not a JSON object")]
    SecretNotObject(String),
    /// A tenant's options do not convert to JSON.
    #[error("{0}")]
    Options(#[source] serde_json::Error),
    #[error("no tenant '{0}' in the configuration")]
    UnknownTenant(String),
    #[error(transparent)]
    Push(#[from] push::PushError),
    #[error(transparent)]
    Spool(#[from] crate::spool::SpoolError),
    /// Fleet mode: the shared database failed (the run, if one was going
    /// on, was stopped; its slot stays open for the next tick).
    #[error(transparent)]
    Fleet(#[from] crate::fleet::FleetError),
}

/// The text, for callers that only report it.
impl From<RunnerError> for String {
    fn from(e: RunnerError) -> String {
        e.to_string()
    }
}

/// Why publishing the schema or the plugin failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("schema {id}: {source}")]
    Schema { id: String, source: crate::cloudforet::ApiError },
    #[error("plugin {name}: {source}")]
    Plugin { name: String, source: crate::cloudforet::ApiError },
}

/// The text, for callers that only report it.
impl From<RegisterError> for String {
    fn from(e: RegisterError) -> String {
        e.to_string()
    }
}

fn read_secret_file(what: &str, p: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(p)
        .map(|s| s.trim().to_string())
        .map_err(|source| ConfigError::CredentialFile { what: what.to_string(), path: p.to_path_buf(), source })
}

fn env(what: &str, var: &str) -> Result<String, ConfigError> {
    std::env::var(var).map_err(|_| ConfigError::EnvNotSet { what: what.to_string(), var: var.to_string() })
}

/// Resolves relative paths against the config file's directory.
fn rel(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
}

impl RunConfig {
    pub fn load(path: &Path) -> Result<RunConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        let mut c: RunConfig = toml::from_str(&text).map_err(|source| ConfigError::Toml { path: path.to_path_buf(), source })?;
        let base = path.parent().unwrap_or(Path::new("."));
        c.store = rel(base, &c.store);
        c.plugin = c.plugin.map(|p| rel(base, &p));
        c.limits = c.limits.map(|p| rel(base, &p));
        c.cloudforet.token_file = c.cloudforet.token_file.map(|p| rel(base, &p));
        c.cloudforet.password_file = c.cloudforet.password_file.map(|p| rel(base, &p));
        if let Some(s) = c.register.as_mut().and_then(|r| r.schema.as_mut()) {
            s.schema_file = rel(base, &s.schema_file);
        }
        for t in &mut c.tenants {
            t.secret_file = t.secret_file.take().map(|p| rel(base, &p));
            t.plugin = t.plugin.take().map(|p| rel(base, &p));
        }
        c.validate()?;
        Ok(c)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.tenants.is_empty() && self.register.is_none() {
            return Err(ConfigError::NothingToDo);
        }
        if let Some(r) = &self.register {
            r.schema_spec()?;
            r.plugin_spec()?;
        }
        let mut seen = std::collections::HashSet::new();
        for t in &self.tenants {
            if !seen.insert(t.name.as_str()) {
                return Err(ConfigError::DuplicateTenant(t.name.clone()));
            }
            if t.plugin.is_none() && self.plugin.is_none() {
                return Err(ConfigError::NoPlugin(t.name.clone()));
            }
            if [t.secret_file.is_some(), t.secret_env.is_some(), t.secret_id.is_some()].iter().filter(|b| **b).count() != 1 {
                return Err(ConfigError::SecretSource(t.name.clone()));
            }
            if let Some(h) = t.hours.iter().find(|h| **h > 23) {
                return Err(ConfigError::Hour { tenant: t.name.clone(), hour: *h });
            }
        }
        if self.max_parallel_tenants == 0 || self.cloudforet.concurrency == 0 {
            return Err(ConfigError::NoParallelism);
        }
        if self.lease_ttl_secs == 0 {
            return Err(ConfigError::NoLeaseTtl);
        }
        let c = &self.cloudforet;
        if c.identity.is_none() && c.endpoint.is_none() {
            return Err(ConfigError::NoIdentity);
        }
        if c.inventory.is_none() && c.endpoint.is_none() && !c.discover {
            return Err(ConfigError::NoInventory);
        }
        Ok(())
    }

    /// The services' endpoints: each as configured, else `endpoint`, else
    /// (with `discover`) what identity's `Endpoint.list` says. Identity is
    /// asked only when a service has none configured.
    pub async fn endpoints(&self) -> Result<Endpoints, ConfigError> {
        let c = &self.cloudforet;
        let identity = c.identity.clone().or_else(|| c.endpoint.clone()).ok_or(ConfigError::NoIdentity)?;
        let configured = |s: &Option<String>| s.clone().or_else(|| c.endpoint.clone());
        let wanted = [&c.inventory, &c.notification, &c.secret, &c.repository, &c.cost_analysis];
        let discovered = if c.discover && wanted.iter().any(|s| configured(s).is_none()) {
            crate::cloudforet::client::discover(&identity, Duration::from_secs(c.call_timeout_secs.max(1)))
                .await
                .map_err(|source| ConfigError::Discover { identity: identity.clone(), source })?
        } else {
            BTreeMap::new()
        };
        let pick = |s: &Option<String>, service: &str| configured(s).or_else(|| discovered.get(service).cloned());
        Ok(Endpoints {
            inventory: pick(&c.inventory, "inventory").ok_or_else(|| ConfigError::NoInventoryListed { identity: identity.clone() })?,
            identity,
            notification: pick(&c.notification, "notification"),
            secret: pick(&c.secret, "secret"),
            repository: pick(&c.repository, "repository"),
            cost_analysis: pick(&c.cost_analysis, "cost_analysis"),
        })
    }

    pub fn auth(&self) -> Result<Auth, ConfigError> {
        let c = &self.cloudforet;
        match (&c.token_file, &c.token_env, &c.user_id) {
            (Some(f), None, None) => Ok(Auth::Token(read_secret_file("cloudforet.token_file", f)?)),
            (None, Some(v), None) => Ok(Auth::Token(env("cloudforet.token_env", v)?)),
            (None, None, Some(user_id)) => {
                let password = match (&c.password_env, &c.password_file) {
                    (Some(v), None) => env("cloudforet.password_env", v)?,
                    (None, Some(f)) => read_secret_file("cloudforet.password_file", f)?,
                    _ => return Err(ConfigError::PasswordSource),
                };
                let domain_id = c.domain_id.clone().ok_or(ConfigError::NoDomain)?;
                let scope = if c.workspace_id.is_some() { Scope::Workspace } else { Scope::Domain };
                Ok(Auth::User { user_id: user_id.clone(), password, domain_id, scope, workspace_id: c.workspace_id.clone() })
            }
            _ => Err(ConfigError::AuthSource),
        }
    }

    pub async fn connector_config(&self) -> Result<ConnectorConfig, ConfigError> {
        let c = &self.cloudforet;
        let mut cc = ConnectorConfig::new(self.endpoints().await?, self.auth()?);
        cc.backoff = Backoff {
            base: Duration::from_millis(c.backoff_base_ms),
            max: Duration::from_millis(c.backoff_max_ms.max(c.backoff_base_ms)),
            attempts: c.attempts.max(1),
        };
        cc.breaker_threshold = c.breaker_threshold;
        cc.breaker_open_for = Duration::from_secs(c.breaker_open_secs);
        cc.call_timeout = Duration::from_secs(c.call_timeout_secs.max(1));
        Ok(cc)
    }

    pub fn settings(&self) -> PushSettings {
        let c = &self.cloudforet;
        PushSettings {
            concurrency: c.concurrency,
            deliver_timeout: Duration::from_secs(c.deliver_timeout_secs),
            delete_after_missed: c.delete_after_missed,
            pause: Duration::from_millis(c.backoff_max_ms.clamp(100, 5_000)),
            notify_resource: c.notify_resource_type.clone().map(|t| (t, c.notify_resource_id.clone().unwrap_or_default())),
        }
    }

    /// The sandbox settings: limits file plus each tenant's networks.
    pub fn tenancy(&self) -> Result<TenancyConfig, ConfigError> {
        let mut tenancy = match &self.limits {
            Some(p) => TenancyConfig::load(p)?,
            None => TenancyConfig::default(),
        };
        for t in &self.tenants {
            let nets = t
                .allow_networks
                .iter()
                .map(|n| {
                    n.parse::<ipnet::IpNet>().map_err(|source| ConfigError::Network { tenant: t.name.clone(), entry: n.clone(), source })
                })
                .collect::<Result<Vec<_>, _>>()?;
            if !nets.is_empty() {
                let mut tc = tenancy.get(&t.name).clone();
                tc.allow_networks.extend(nets);
                tenancy.tenants.insert(t.name.clone(), tc);
            }
        }
        Ok(tenancy)
    }
}

fn toml_to_json(t: &toml::Table) -> Result<Value, serde_json::Error> {
    serde_json::to_value(t)
}

fn toml_to_map(t: &toml::Table) -> Map<String, Value> {
    // A TOML table is always a JSON object.
    match serde_json::to_value(t) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

impl Register {
    pub fn schema_spec(&self) -> Result<Option<SchemaSpec>, ConfigError> {
        let Some(s) = &self.schema else { return Ok(None) };
        let schema_type = SchemaType::parse(&s.schema_type).ok_or_else(|| ConfigError::SchemaType(s.schema_type.clone()))?;
        let path = || s.schema_file.clone();
        let text = std::fs::read_to_string(&s.schema_file).map_err(|source| ConfigError::SchemaFile { path: path(), source })?;
        let schema = match serde_json::from_str(&text) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err(ConfigError::SchemaNotObject { path: path() }),
            Err(source) => return Err(ConfigError::SchemaJson { path: path(), source }),
        };
        Ok(Some(SchemaSpec {
            schema_id: s.schema_id.clone(),
            name: s.name.clone(),
            schema_type,
            schema,
            provider: s.provider.clone(),
            related_schemas: s.related_schemas.clone(),
            options: toml_to_map(&s.options),
            tags: toml_to_map(&s.tags),
        }))
    }

    pub fn plugin_spec(&self) -> Result<Option<PluginSpec>, ConfigError> {
        let Some(p) = &self.plugin else { return Ok(None) };
        let registry_type = PublicRegistryType::parse(&p.registry_type).ok_or_else(|| ConfigError::RegistryType(p.registry_type.clone()))?;
        if p.name.trim().is_empty() || p.image.trim().is_empty() {
            return Err(ConfigError::EmptyPlugin);
        }
        Ok(Some(PluginSpec {
            plugin_id: p.plugin_id.clone(),
            name: p.name.clone(),
            image: p.image.clone(),
            resource_type: p.resource_type.clone(),
            provider: p.provider.clone(),
            registry_type,
            registry_config: toml_to_map(&p.registry_config),
            capability: toml_to_map(&p.capability),
            labels: p.labels.clone(),
            tags: toml_to_map(&p.tags),
            docs: toml_to_map(&p.docs),
        }))
    }
}

/// Publishes the schema and the plugin; one line per item.
pub async fn register(connector: &Connector, r: &Register) -> Result<Vec<String>, RegisterError> {
    let mut out = Vec::new();
    let said = |what: &str, u: &Upserted| match u {
        Upserted::Created(id) => format!("{what} {id}: created"),
        Upserted::Updated(id) => format!("{what} {id}: updated"),
        Upserted::Unchanged(id) => format!("{what} {id}: unchanged"),
    };
    if let Some(s) = r.schema_spec()? {
        let u = connector.ensure_schema(&s).await.map_err(|source| RegisterError::Schema { id: s.schema_id.clone(), source })?;
        out.push(said("schema", &u));
    }
    if let Some(p) = r.plugin_spec()? {
        let u = connector.ensure_plugin(&p).await.map_err(|source| RegisterError::Plugin { name: p.name.clone(), source })?;
        out.push(said("plugin", &u));
    }
    Ok(out)
}

impl TenantJob {
    async fn spec(&self, connector: &Connector) -> Result<PushSpec, RunnerError> {
        let secret = match (&self.secret_file, &self.secret_env, &self.secret_id) {
            (Some(f), ..) => {
                let text = std::fs::read_to_string(f)
                    .map_err(|source| RunnerError::SecretFile { tenant: self.name.clone(), path: f.clone(), source })?;
                parse_secret(&self.name, &text)?
            }
            (_, Some(v), _) => parse_secret(&self.name, &env(&format!("tenant '{}': secret_env", self.name), v)?)?,
            (.., Some(id)) => connector
                .secret_data(id)
                .await
                .map_err(|source| RunnerError::SecretData { tenant: self.name.clone(), id: id.clone(), source })?,
            _ => return Err(RunnerError::NoSecret(self.name.clone())),
        };
        Ok(PushSpec {
            tenant: self.name.clone(),
            endpoint: self.endpoint.clone(),
            secret,
            options: toml_to_json(&self.options).map_err(RunnerError::Options)?,
            task_options: toml_to_json(&self.task_options).map_err(RunnerError::Options)?,
            project_id: self.project_id.clone(),
            cost_data_source_id: self.cost_data_source_id.clone(),
            lease: None,
        })
    }
}

fn parse_secret(tenant: &str, text: &str) -> Result<Value, RunnerError> {
    match serde_json::from_str(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        // Never echo the secret's text.
        _ => Err(RunnerError::SecretNotObject(tenant.to_string())),
    }
}

/// A loaded configuration, ready to run.
pub struct Runner {
    pub config: RunConfig,
    pub runtime: Runtime,
    pub sink: Sink,
    plugins: HashMap<PathBuf, Plugin>,
    /// Fleet mode: tenants and slots leased across replicas.
    pub fleet: Option<PushFleet>,
}

/// Fleet mode's share of a runner.
#[derive(Clone)]
pub struct PushFleet {
    pub leases: crate::fleet::PushLeases,
    pub ttl: Duration,
    /// The runs of every replica (also the sink's [`Sink::runs`]): the
    /// scheduler closes those whose replica died.
    pub runs: Arc<crate::fleet::PgRuns>,
}

/// Whether a run failed because the fleet's database did (a batch not
/// made durable there, the lease or the ledger unreachable): its slot is
/// run again rather than marked done.
fn shared_database_failed(e: &RunnerError) -> bool {
    use crate::push::{PushError, SpoolFailure};
    use crate::run_log::RunLogError;
    use crate::spool::SpoolError;
    matches!(
        e,
        RunnerError::Fleet(_)
            | RunnerError::Spool(SpoolError::Fleet(_))
            | RunnerError::Push(PushError::Spool(SpoolError::Fleet(_)))
            | RunnerError::Push(PushError::Runs(RunLogError::Fleet(_)))
            | RunnerError::Push(PushError::Spooling(SpoolFailure::Outbox(SpoolError::Fleet(_))))
            | RunnerError::Push(PushError::Spooling(SpoolFailure::Errors(RunLogError::Fleet(_))))
    )
}

/// Where a configuration's runs are recorded (`cf-host runs`): its
/// fleet database, or its embedded store.
pub async fn run_log(config: &RunConfig) -> Result<Arc<dyn crate::run_log::RunLog>, RunnerError> {
    Ok(match config.database.clone() {
        Some(url) => Arc::new(crate::fleet::push_leases::blocking(move || crate::fleet::Fleet::connect(&url)).await?.runs()),
        None => Arc::new(Store::open(&config.store)?),
    })
}

/// The schedule's slot of a time: hours since the epoch (UTC).
pub fn slot_of(now: chrono::DateTime<chrono::Utc>) -> i64 {
    now.timestamp().div_euclid(3600)
}

/// How long `--once` waits between attempts at a tenant's lease held by
/// another replica.
const ONCE_LEASE_POLL: Duration = Duration::from_millis(500);

impl Runner {
    pub async fn new(config: RunConfig) -> Result<Runner, RunnerError> {
        if config.tenants.is_empty() {
            return Err(RunnerError::NoTenants);
        }
        let shared = match config.database.clone() {
            Some(url) => Some(crate::fleet::push_leases::blocking(move || crate::fleet::Fleet::connect(&url)).await?),
            None => None,
        };
        // A tenant's run cap counts its runs on every replica.
        let leases = shared.as_ref().map(crate::fleet::Fleet::leases);
        let runtime = Runtime::new(RuntimeConfig { tenancy: config.tenancy()?, leases, ..RuntimeConfig::default() }).map_err(RunnerError::Runtime)?;
        let fleet = shared.as_ref().map(|f| PushFleet {
            leases: f.push_leases(),
            ttl: Duration::from_secs(config.lease_ttl_secs.max(1)),
            runs: Arc::new(f.runs()),
        });
        let mut plugins = HashMap::new();
        for p in config.tenants.iter().filter_map(|t| t.plugin.as_ref()).chain(config.plugin.as_ref()) {
            if !plugins.contains_key(p) {
                let plugin = runtime.load_file(p).map_err(|source| RunnerError::Plugin { path: p.clone(), source })?;
                plugins.insert(p.clone(), plugin);
            }
        }
        for t in config.tenants.iter().filter(|t| t.cost_data_source_id.is_some()) {
            let path = t.plugin.as_ref().or(config.plugin.as_ref());
            if let Some(p) = path.and_then(|p| plugins.get(p)).filter(|p: &&Plugin| !p.is_cost_source()) {
                return Err(RunnerError::NotCostSource { tenant: t.name.clone(), plugin: p.name.clone() });
            }
        }
        let connector_config = config.connector_config().await?;
        let inventory = connector_config.endpoints.inventory.clone();
        let connector = Connector::new(connector_config).map_err(RunnerError::Connector)?;
        let webhook = match &config.webhook_url {
            Some(url) => {
                let secret = std::env::var("CF_HOST_WEBHOOK_SECRET").map_err(|_| RunnerError::NoWebhookSecret)?;
                Some(crate::webhook::Webhook::new(url, &secret)?)
            }
            None => None,
        };
        // Fleet mode: the outbox and ledger any replica delivers from, the
        // runs and error resources any replica lists, guest state (the
        // incremental cache) any replica reads. Otherwise all of it in the
        // embedded store.
        let (outbox, runs, state): (Arc<dyn crate::spool::Outbox>, Arc<dyn crate::run_log::RunLog>, Arc<dyn crate::host::state::StateBackend>) =
            match (&shared, &fleet) {
                (Some(f), Some(pf)) => (Arc::new(crate::spool::pg::PgOutbox::new(f.pool())), pf.runs.clone(), Arc::new(f.state())),
                _ => {
                    let store = Arc::new(Store::open(&config.store)?);
                    (store.clone(), store.clone(), store)
                }
            };
        let sink = Sink { connector: Arc::new(connector), runs, outbox, state, name: format!("cloudforet:{inventory}"), settings: config.settings(), webhook };
        Ok(Runner { config, runtime, sink, plugins, fleet })
    }

    fn plugin(&self, t: &TenantJob) -> Result<&Plugin, RunnerError> {
        let path = t.plugin.as_ref().or(self.config.plugin.as_ref()).ok_or_else(|| RunnerError::NoPlugin(t.name.clone()))?;
        self.plugins.get(path).ok_or_else(|| RunnerError::NotLoaded { tenant: t.name.clone(), path: path.clone() })
    }

    /// Runs one tenant now (in fleet mode under its lease, waiting while
    /// another replica holds it; the schedule's slots are not touched).
    pub async fn run_tenant(&self, t: &TenantJob) -> Result<PushReport, RunnerError> {
        let Some(f) = &self.fleet else {
            return self.run_tenant_unleased(t, None).await;
        };
        loop {
            if let Some(r) = f.leases.hold(&self.sink.name, &t.name, f.ttl, |lease| self.run_tenant_unleased(t, Some(lease))).await? {
                return r;
            }
            tracing::info!(tenant = %t.name, "another replica holds the tenant; waiting");
            tokio::time::sleep(ONCE_LEASE_POLL).await;
        }
    }

    async fn run_tenant_unleased(&self, t: &TenantJob, lease: Option<crate::fleet::push_leases::LeaseGuard>) -> Result<PushReport, RunnerError> {
        use tracing::Instrument;
        let plugin = self.plugin(t)?;
        let mut spec = t.spec(&self.sink.connector).await?;
        spec.lease = lease;
        Ok(push::run(&self.runtime, plugin, &self.sink, spec).instrument(tracing::info_span!("push", tenant = %t.name)).await?)
    }

    /// Runs the named tenants (all when empty) now, at most
    /// `max_parallel_tenants` at a time; results in configuration order.
    pub async fn run_all(&self, only: &[String]) -> Result<Vec<(String, Result<PushReport, RunnerError>)>, RunnerError> {
        if let Some(unknown) = only.iter().find(|n| !self.config.tenants.iter().any(|t| &t.name == *n)) {
            return Err(RunnerError::UnknownTenant(unknown.clone()));
        }
        let jobs: Vec<&TenantJob> = self.config.tenants.iter().filter(|t| only.is_empty() || only.contains(&t.name)).collect();
        Ok(self.run_jobs(jobs).await)
    }

    async fn run_jobs(&self, jobs: Vec<&TenantJob>) -> Vec<(String, Result<PushReport, RunnerError>)> {
        let slots = tokio::sync::Semaphore::new(self.config.max_parallel_tenants.max(1));
        let mut runs = Vec::with_capacity(jobs.len());
        for t in jobs {
            let slots = &slots;
            runs.push(async move {
                let _slot = slots.acquire().await;
                (t.name.clone(), self.run_tenant(t).await)
            });
        }
        futures::future::join_all(runs).await
    }

    /// Delivers outboxes left by earlier runs; per tenant `(delivered, error)`.
    /// In fleet mode a tenant whose lease another replica holds is left to
    /// it (and to the next tick).
    pub async fn redeliver(&self) -> Result<BTreeMap<String, (u64, Option<String>)>, RunnerError> {
        let mut out = BTreeMap::new();
        for tenant in self.sink.outbox.spool_tenants(&self.sink.name)? {
            let (delivered, error) = match &self.fleet {
                None => push::redeliver(&self.sink, &tenant, None).await,
                Some(f) => match f.leases.hold(&self.sink.name, &tenant, f.ttl, |lease| {
                    let tenant = &tenant;
                    async move { push::redeliver(&self.sink, tenant, Some(&lease)).await }
                }).await {
                    Ok(Some(r)) => r,
                    Ok(None) => continue,
                    Err(e) => {
                        out.insert(tenant.clone(), (0, Some(e.to_string())));
                        continue;
                    }
                },
            };
            out.insert(tenant.clone(), (delivered, error.map(|e| e.to_string())));
        }
        Ok(out)
    }

    /// Fleet mode: runs `slot` of a tenant if no replica holds the tenant
    /// and the slot is not done; `Ok(None)` when it did not run. The slot
    /// is done when the run ended (failed collections included: they are
    /// not run again within the slot, as without a fleet); a run stopped
    /// by the database or a lost lease leaves it open.
    pub async fn run_slot(&self, f: &PushFleet, t: &TenantJob, slot: i64) -> Result<Option<Result<PushReport, RunnerError>>, RunnerError> {
        let sink = &self.sink.name;
        let work = |lease: crate::fleet::push_leases::LeaseGuard| async move {
            let (l, s, n) = (f.leases.clone(), sink.clone(), t.name.clone());
            let Some(runs) = crate::fleet::push_leases::blocking(move || l.start_slot(&s, &n, slot)).await? else {
                return Ok::<_, RunnerError>(None);
            };
            if runs > 1 {
                tracing::warn!(tenant = %t.name, slot, runs, "taking over a slot that did not finish");
            }
            let r = self.run_tenant_unleased(t, Some(lease.clone())).await;
            if let Err(e) = &r
                && shared_database_failed(e)
            {
                tracing::warn!(tenant = %t.name, slot, error = %e, "the fleet database failed the run; the slot stays open");
                return Ok(Some(r));
            }
            if !lease.live() {
                tracing::warn!(tenant = %t.name, slot, "the tenant's lease ended during the run; the slot stays open");
                return Ok(Some(r));
            }
            let (l, s, n) = (f.leases.clone(), sink.clone(), t.name.clone());
            crate::fleet::push_leases::blocking(move || l.finish_slot(&s, &n, slot)).await?;
            Ok(Some(r))
        };
        Ok(f.leases.hold(sink, &t.name, f.ttl, work).await?.transpose()?.flatten())
    }

    /// Fleet mode: the slots due at `slot` for the tenants of this hour,
    /// then for the other tenants their latest open slot of an earlier
    /// hour (a dead replica's, however old), each run
    /// by whichever replica takes the tenant first; at most
    /// `max_parallel_tenants` at a time.
    async fn run_fleet_tick(&self, f: &PushFleet, hour: u8, slot: i64) -> Vec<(String, Result<PushReport, RunnerError>)> {
        let runs = f.runs.clone();
        match crate::fleet::push_leases::blocking(move || runs.close_abandoned()).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(runs = n, "closed runs whose replica stopped before they ended (abandoned)"),
            Err(e) => tracing::error!(error = %e, "cannot close abandoned runs"),
        }
        let mut wanted: Vec<(&TenantJob, i64)> = self.config.tenants.iter().filter(|t| t.hours.contains(&hour)).map(|t| (t, slot)).collect();
        let names: Vec<String> = self.config.tenants.iter().map(|t| t.name.clone()).collect();
        let (l, s) = (f.leases.clone(), self.sink.name.clone());
        match crate::fleet::push_leases::blocking(move || l.open_slots(&s, &names)).await {
            Ok(open) => {
                // A tenant due now runs its due slot, which supersedes its
                // open ones when it ends.
                for (name, open_slot) in open {
                    if let Some(t) = self.config.tenants.iter().find(|t| t.name == name)
                        && !wanted.iter().any(|(w, _)| w.name == t.name)
                    {
                        wanted.push((t, open_slot));
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read open slots"),
        }
        let slots = tokio::sync::Semaphore::new(self.config.max_parallel_tenants.max(1));
        let mut runs = Vec::with_capacity(wanted.len());
        for (t, s) in wanted {
            let slots = &slots;
            runs.push(async move {
                let _slot = slots.acquire().await;
                (t.name.clone(), self.run_slot(f, t, s).await)
            });
        }
        futures::future::join_all(runs)
            .await
            .into_iter()
            .filter_map(|(name, r)| match r {
                Ok(None) => None,
                Ok(Some(r)) => Some((name, r)),
                Err(e) => Some((name, Err(e))),
            })
            .collect()
    }

    /// The scheduler: runs tenants at their hours until `shutdown`.
    pub async fn serve(&self, tick: Duration, shutdown: impl std::future::Future<Output = ()>) -> Result<(), RunnerError> {
        tokio::pin!(shutdown);
        let mut last_hour: HashMap<String, i64> = HashMap::new();
        loop {
            let now = chrono::Utc::now();
            let (hour_index, hour) = (slot_of(now), chrono::Timelike::hour(&now) as u8);
            let due: Vec<&TenantJob> = self
                .config
                .tenants
                .iter()
                .filter(|t| t.hours.contains(&hour) && last_hour.get(&t.name) != Some(&hour_index))
                .collect();
            let names: Vec<String> = due.iter().map(|t| t.name.clone()).collect();
            for n in &names {
                last_hour.insert(n.clone(), hour_index);
            }
            let work = async {
                let results = match &self.fleet {
                    Some(f) => self.run_fleet_tick(f, hour, hour_index).await,
                    None => self.run_jobs(due).await,
                };
                for (tenant, r) in results {
                    match r {
                        Ok(rep) => tracing::info!(tenant, summary = %rep.summary_json(), "push run finished"),
                        Err(e) => tracing::error!(tenant, error = %e, "push run failed"),
                    }
                }
                match self.redeliver().await {
                    Ok(m) => m.into_iter().filter(|(_, (n, _))| *n > 0).for_each(|(tenant, (n, e))| {
                        tracing::info!(tenant, delivered = n, error = e.as_deref().unwrap_or(""), "redelivered spooled records")
                    }),
                    Err(e) => tracing::error!(error = %e, "redelivery failed"),
                }
            };
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                _ = work => {}
            }
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                _ = tokio::time::sleep(tick) => {}
            }
        }
    }
}

/// The per-tenant summary printed by `cf-host run --once`.
pub fn render(results: &[(String, Result<PushReport, RunnerError>)]) -> String {
    let mut s = String::new();
    for (tenant, r) in results {
        match r {
            Ok(rep) => {
                let t = rep.totals();
                s.push_str(&format!(
                    "{tenant}: {} created, {} updated, {} unchanged, {} errors, {} deleted, {} redelivered, {} spooled in {:.2} s\n",
                    t.created,
                    t.updated,
                    t.unchanged,
                    t.errors,
                    rep.deleted,
                    rep.redelivered,
                    rep.spooled,
                    rep.elapsed.as_secs_f64()
                ));
                if let Some(e) = &rep.error {
                    s.push_str(&format!("  collection failed: {e}\n"));
                }
                if let Some(c) = &rep.costs {
                    s.push_str(&format!("  costs: {} day(s), {} line(s)\n", c.tasks, c.lines));
                }
                if let Some(e) = &rep.cost_error {
                    s.push_str(&format!("  costs failed: {e}\n"));
                }
                if let Some(e) = &rep.delivery_error {
                    s.push_str(&format!("  delivery stopped: {e}\n"));
                }
            }
            Err(e) => s.push_str(&format!("{tenant}: failed: {e}\n")),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RunConfig, String> {
        let dir = std::env::temp_dir().join(format!("cf-push-config-{}", crate::runtime::new_run_id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let p = dir.join("run.toml");
        std::fs::write(&p, text).map_err(|e| e.to_string())?;
        let r = RunConfig::load(&p);
        std::fs::remove_dir_all(dir).ok();
        r.map_err(|e| e.to_string())
    }

    const GOOD: &str = r#"
plugin = "guest.wasm"
[cloudforet]
endpoint = "http://cf:50051"
token_env = "CF_TEST_TOKEN_NOT_SET"
[[tenant]]
name = "acme"
endpoint = "https://prism:9440"
secret_file = "acme.json"
hours = [0, 12]
options = { api_version = "v4", page_size = 100 }
"#;

    #[tokio::test]
    async fn loads_and_resolves_relative_paths() {
        let c = parse(GOOD).unwrap();
        assert!(c.store.is_absolute() && c.store.ends_with("cf-host-push.db"));
        assert!(c.tenants[0].secret_file.as_ref().unwrap().ends_with("acme.json"));
        // `endpoint` names every service: identity is not asked.
        let e = c.endpoints().await.unwrap();
        assert_eq!((e.identity.as_str(), e.inventory.as_str(), e.notification.as_deref()), ("http://cf:50051", "http://cf:50051", Some("http://cf:50051")));
        assert_eq!(toml_to_json(&c.tenants[0].options).unwrap(), serde_json::json!({"api_version": "v4", "page_size": 100}));
        assert_eq!(c.settings().delete_after_missed, 3);
        // The token comes from the environment, named but unset here.
        let e = c.auth().unwrap_err();
        assert!(matches!(&e, ConfigError::EnvNotSet { var, .. } if var == "CF_TEST_TOKEN_NOT_SET"));
        assert!(e.to_string().contains("CF_TEST_TOKEN_NOT_SET"));
    }

    /// The example documents every key (it loads, and each field the
    /// parser knows appears in it, commented or not).
    #[test]
    fn the_example_documents_every_key() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cf-host.push.example.toml");
        let c = RunConfig::load(&p).unwrap();
        assert_eq!(c.tenants[0].name, "acme");
        let text = std::fs::read_to_string(&p).unwrap();
        let src = include_str!("push_config.rs");
        let structs = [
            "pub struct RunConfig {",
            "pub struct CloudForet {",
            "pub struct TenantJob {",
            "pub struct Register {",
            "pub struct SchemaConf {",
            "pub struct PluginConf {",
        ];
        for st in structs {
            let body = &src[src.find(st).unwrap()..];
            let body = &body[..body.find("\n}").unwrap()];
            for line in body.lines().map(str::trim).filter(|l| l.starts_with("pub ") && l.contains(':')) {
                let field = line["pub ".len()..].split(':').next().unwrap();
                let key = match field {
                    "tenants" => "[[tenant]]".to_string(),
                    "cloudforet" => "[cloudforet]".to_string(),
                    "register" => "[register.".to_string(),
                    "schema" => "[register.schema]".to_string(),
                    "plugin" if st.contains("Register") => "[register.plugin]".to_string(),
                    _ => format!("{field} ="),
                };
                assert!(text.contains(&key), "cf-host.push.example.toml does not document `{field}`");
            }
        }
    }

    #[test]
    fn only_runs_failed_by_the_fleet_database_leave_their_slot_open() {
        use crate::fleet::FleetError;
        use crate::push::{PushError, SpoolFailure};
        use crate::spool::SpoolError;
        let db = || FleetError::Busy(1);
        assert!(shared_database_failed(&RunnerError::Fleet(db())));
        assert!(shared_database_failed(&RunnerError::Spool(SpoolError::Fleet(db()))));
        assert!(shared_database_failed(&RunnerError::Push(PushError::Spool(SpoolError::Fleet(db())))));
        assert!(shared_database_failed(&RunnerError::Push(PushError::Spooling(SpoolFailure::Outbox(SpoolError::Fleet(db()))))));
        let local = SpoolError::Sqlite(rusqlite::Error::InvalidQuery);
        assert!(!shared_database_failed(&RunnerError::Push(PushError::Spooling(SpoolFailure::Outbox(local)))));
        assert!(!shared_database_failed(&RunnerError::NoSecret("t".into())));
    }

    #[test]
    fn bad_configs_say_what_is_wrong() {
        let cases = [
            (GOOD.replace("hours = [0, 12]", "hours = [24]"), "hour 24"),
            (GOOD.replace("secret_file = \"acme.json\"", ""), "exactly one of secret_file, secret_env, secret_id"),
            (GOOD.replace("secret_file = \"acme.json\"", "secret_file = \"a\"\nsecret_id = \"secret-1\""), "exactly one of secret_file"),
            (format!("{GOOD}\n[register.plugin]\nname = \"n\"\nimage = \"i\"\nprovider = \"nutanix\"\nregistry_type = \"QUAY\"\n"), "registry_type 'QUAY'"),
            (format!("{GOOD}\n[register.schema]\nschema_id = \"s\"\nname = \"n\"\nprovider = \"nutanix\"\nschema_file = \"missing.json\"\n"), "missing.json"),
            (GOOD.replace("plugin = \"guest.wasm\"", ""), "no plugin"),
            (GOOD.replace("endpoint = \"http://cf:50051\"", ""), "cloudforet.identity"),
            (GOOD.replace("name = \"acme\"", "name = \"acme\"\nfoo = 1"), "unknown field `foo`"),
            (format!("{GOOD}\n[[tenant]]\nname = \"acme\"\nendpoint = \"x\"\nsecret_env = \"X\"\n"), "configured twice"),
            (GOOD.replace("token_env = \"CF_TEST_TOKEN_NOT_SET\"", "token_env = \"A\"\nuser_id = \"u\""), "exactly one of token_file"),
        ];
        for (text, want) in cases {
            let e = match parse(&text) {
                Ok(c) => c.auth().map(|_| ()).unwrap_err().to_string(),
                Err(e) => e,
            };
            assert!(e.contains(want), "{want:?} not in {e:?}");
        }
    }
}
