//! A run's context: whom the run belongs to and what it may do. Every
//! caller (CLI, gRPC, push mode, the test harness, the tests) builds one
//! through [`RunContextBuilder`], so the endpoint check, the egress grant,
//! the split of host and guest options and the TLS checks happen in one
//! place.

use crate::egress::{Denial, EgressPolicy, Grant};
use crate::host::http::{HttpTransport, TlsConfig, TransportLayer};
use crate::host::log::LogLine;
use crate::host::state::{MemoryState, StateBackend};
use crate::limits::Limits;
use crate::options::{HostOptions, OptionError, Want};
use crate::secret::{Secret, SecretError};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a run is allowed to do and whom it belongs to.
#[derive(Clone)]
pub struct RunContext {
    pub tenant: String,
    pub run_id: String,
    /// The guest's options (a JSON object): the host's own keys are out.
    pub options: Value,
    pub secret: Secret,
    pub egress: EgressPolicy,
    pub tls: TlsConfig,
    /// The plugin version the call asks for.
    pub want: Want,
    pub limits: Limits,
    pub state: Arc<dyn StateBackend>,
    /// Collector name for the state namespace (defaults to the plugin name).
    pub collector: Option<String>,
    /// Where guest log lines are also captured, if anywhere.
    pub log_capture: Option<Arc<Mutex<Vec<LogLine>>>>,
    /// Performs the run's HTTP exchanges instead of reqwest (test harness:
    /// cassettes, recorders). Egress policy and limits apply all the same.
    pub http_transport: Option<Arc<dyn HttpTransport>>,
    /// Wraps the run's transport, whichever it is (`serve
    /// --record-failures`: a recorder).
    pub http_layer: Option<Arc<dyn TransportLayer>>,
    /// Where egress denials are also recorded (`origin: reason`), if anywhere.
    pub egress_denials: Option<Arc<Mutex<Vec<String>>>>,
    /// The guest's wall clock stands still at this time (since the Unix
    /// epoch), for reproducible tests.
    pub fixed_wall_clock: Option<Duration>,
}

impl std::fmt::Debug for RunContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext")
            .field("tenant", &self.tenant)
            .field("run_id", &self.run_id)
            .field("options", &self.options)
            .field("secret", &self.secret)
            .field("egress", &self.egress.grants().iter().map(|g| g.to_string()).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Why a run context could not be built: the caller's input is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    #[error("invalid endpoint '{endpoint}': {why}")]
    Endpoint { endpoint: String, why: String },
    #[error(transparent)]
    Option(#[from] OptionError),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

impl From<ContextError> for crate::error::RunError {
    fn from(e: ContextError) -> crate::error::RunError {
        crate::error::RunError::Input(e.to_string())
    }
}

/// Where a run may connect.
enum Egress {
    /// Nothing (the default).
    None,
    /// The endpoint the secret names (gRPC: CloudForet's `secret_data`),
    /// its port defaulting to this one.
    FromSecret(u16),
    /// This endpoint, which is also merged into the secret.
    Endpoint(String),
    /// Exactly this policy (tests of the policy itself).
    Policy(EgressPolicy),
}

/// Builds a [`RunContext`]; [`crate::Runtime::context`] starts one with
/// the tenant's limits.
pub struct RunContextBuilder {
    tenant: String,
    limits: Limits,
    run_id: Option<String>,
    options: Value,
    secret: Value,
    egress: Egress,
    state: Arc<dyn StateBackend>,
    collector: Option<String>,
    log_capture: Option<Arc<Mutex<Vec<LogLine>>>>,
    http_transport: Option<Arc<dyn HttpTransport>>,
    http_layer: Option<Arc<dyn TransportLayer>>,
    egress_denials: Option<Arc<Mutex<Vec<String>>>>,
    fixed_wall_clock: Option<Duration>,
}

impl RunContext {
    /// A builder for `tenant`'s run under `limits`.
    pub fn builder(tenant: impl Into<String>, limits: Limits) -> RunContextBuilder {
        RunContextBuilder {
            tenant: tenant.into(),
            limits,
            run_id: None,
            options: Value::Object(Default::default()),
            secret: Value::Object(Default::default()),
            egress: Egress::None,
            state: Arc::new(MemoryState::default()),
            collector: None,
            log_capture: None,
            http_transport: None,
            http_layer: None,
            egress_denials: None,
            fixed_wall_clock: None,
        }
    }
}

impl RunContextBuilder {
    /// The call's options as CloudForet sends them: the host's keys
    /// (`verify_ssl`, `ca_bundle`, `plugin_version`, `upgrade_mode`) are
    /// taken out and checked, the rest goes to the guest.
    pub fn options(mut self, options: Value) -> Self {
        self.options = options;
        self
    }

    /// The secret (a JSON object).
    pub fn secret(mut self, secret: Value) -> Self {
        self.secret = secret;
        self
    }

    /// The run may reach exactly `endpoint` (`scheme://host[:port]`), which
    /// is merged into the secret (`host`, `port`) as the collector reads it.
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.egress = Egress::Endpoint(endpoint.into());
        self
    }

    /// The run may reach exactly the endpoint the secret names, its port
    /// defaulting to `default_port`.
    pub fn egress_from_secret(mut self, default_port: u16) -> Self {
        self.egress = Egress::FromSecret(default_port);
        self
    }

    /// The run may reach what `policy` grants (tests of the policy).
    pub fn egress(mut self, policy: EgressPolicy) -> Self {
        self.egress = Egress::Policy(policy);
        self
    }

    pub fn state(mut self, state: Arc<dyn StateBackend>) -> Self {
        self.state = state;
        self
    }

    pub fn collector(mut self, name: impl Into<String>) -> Self {
        self.collector = Some(name.into());
        self
    }

    pub fn run_id(mut self, id: impl Into<String>) -> Self {
        self.run_id = Some(id.into());
        self
    }

    pub fn http_transport(mut self, t: Arc<dyn HttpTransport>) -> Self {
        self.http_transport = Some(t);
        self
    }

    pub fn http_layer(mut self, l: Arc<dyn TransportLayer>) -> Self {
        self.http_layer = Some(l);
        self
    }

    pub fn log_capture(mut self, c: Arc<Mutex<Vec<LogLine>>>) -> Self {
        self.log_capture = Some(c);
        self
    }

    pub fn egress_denials(mut self, d: Arc<Mutex<Vec<String>>>) -> Self {
        self.egress_denials = Some(d);
        self
    }

    pub fn fixed_wall_clock(mut self, t: Duration) -> Self {
        self.fixed_wall_clock = Some(t);
        self
    }

    /// Caps the run's wall clock (a unary call's deadline).
    pub fn wall_clock_at_most(mut self, max: Duration) -> Self {
        self.limits.wall_clock = self.limits.wall_clock.min(max);
        self
    }

    pub fn build(self) -> Result<RunContext, ContextError> {
        let (host, options) = HostOptions::split(self.options)?;
        let mut secret = Secret::new(self.secret)?;
        let egress = match self.egress {
            Egress::None => EgressPolicy::deny_all(),
            Egress::Policy(p) => p,
            Egress::FromSecret(port) => secret.egress(port),
            Egress::Endpoint(endpoint) => {
                let bad = |why: String| ContextError::Endpoint { endpoint: endpoint.clone(), why };
                let url = url::Url::parse(&endpoint).map_err(|e| bad(e.to_string()))?;
                let grant = Grant::from_url(&url).map_err(|d| match d {
                    Denial::Scheme(_) => bad("scheme must be http or https".into()),
                    other => bad(other.to_string()),
                })?;
                secret = secret.with_endpoint(&url);
                EgressPolicy::new(vec![grant])
            }
        };
        Ok(RunContext {
            tenant: self.tenant,
            run_id: self.run_id.unwrap_or_else(new_run_id),
            options,
            secret,
            egress,
            tls: host.tls,
            want: host.want,
            limits: self.limits,
            state: self.state,
            collector: self.collector,
            log_capture: self.log_capture,
            http_transport: self.http_transport,
            http_layer: self.http_layer,
            egress_denials: self.egress_denials,
            fixed_wall_clock: self.fixed_wall_clock,
        })
    }
}

/// A run id: time-ordered and unique enough for logs and the store.
pub fn new_run_id() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("run-{:x}-{:x}-{:x}", now.as_secs(), std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn builder() -> RunContextBuilder {
        RunContext::builder("t", Limits::default())
    }

    #[test]
    fn an_endpoint_is_the_only_grant_and_joins_the_secret() {
        let ctx = builder().endpoint("http://127.0.0.1:8080/x").secret(json!({"host": "old", "port": 1, "username": "u"})).build().unwrap();
        assert_eq!(ctx.secret.get("host"), Some(&json!("http://127.0.0.1:8080")));
        assert_eq!(ctx.secret.get("port"), Some(&json!(8080)));
        assert_eq!(ctx.secret.get("username"), Some(&json!("u")));
        assert_eq!(ctx.egress.grants().iter().map(|g| g.to_string()).collect::<Vec<_>>(), vec!["http://127.0.0.1:8080"]);
        let e = builder().endpoint("ftp://x").build().unwrap_err();
        assert_eq!(e.to_string(), "invalid endpoint 'ftp://x': scheme must be http or https");
        assert!(matches!(builder().endpoint("not a url").build(), Err(ContextError::Endpoint { .. })));
    }

    #[test]
    fn host_options_are_taken_out_and_checked() {
        let ctx = builder().options(json!({"verify_ssl": false, "page_size": 5})).build().unwrap();
        assert!(ctx.tls.skip_verify);
        assert_eq!(ctx.options, json!({"page_size": 5}));
        let e = builder().options(json!({"ca_bundle": "garbage"})).build().unwrap_err();
        assert!(matches!(e, ContextError::Option(OptionError { key: "ca_bundle", .. })), "{e:?}");
        assert!(matches!(builder().secret(json!("x")).build(), Err(ContextError::Secret(_))));
    }

    #[test]
    fn the_secret_grants_its_endpoint_when_asked() {
        let ctx = builder().secret(json!({"host": "pc.example"})).egress_from_secret(9440).build().unwrap();
        assert_eq!(ctx.egress.grants()[0].to_string(), "https://pc.example:9440");
        let ctx = builder().secret(json!({"host": "pc.example"})).build().unwrap();
        assert!(ctx.egress.grants().is_empty(), "nothing unless asked");
    }
}
