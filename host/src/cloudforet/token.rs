//! The `token` call metadata of CloudForet's APIs.
//!
//! Either an App's `client_secret` (a JWT CloudForet accepts as the token
//! itself), or a user's credentials: identity v2 `Token.issue` (LOCAL) gives
//! an access and a refresh token, `Token.grant` (REFRESH_TOKEN, for a
//! domain or workspace scope) the token the APIs take. Granted tokens are
//! refreshed before their `exp` (read from the JWT, never verified: the
//! server does that) and after the server refuses one.
//!
//! Token values never appear in errors or logs (`Debug` is redacted).

use super::pb::identity::v2::{grant_token_request, issue_token_request, token_client::TokenClient, GrantTokenRequest, IssueTokenRequest};
use super::ApiError;
use base64::Engine as _;
use serde_json::Value;
use std::fmt;
use tonic::transport::Channel;
use tonic::Code;

/// Refresh this long before expiry (at most a quarter of the lifetime).
pub const REFRESH_MARGIN_SECS: u64 = 60;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Domain,
    Workspace,
}

#[derive(Clone)]
pub enum Auth {
    /// Used as the token as is (an App `client_secret`).
    Token(String),
    User { user_id: String, password: String, domain_id: String, scope: Scope, workspace_id: Option<String> },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Token(_) => f.write_str("Auth::Token(<redacted>)"),
            Auth::User { user_id, domain_id, scope, workspace_id, .. } => f
                .debug_struct("Auth::User")
                .field("user_id", user_id)
                .field("password", &"<redacted>")
                .field("domain_id", domain_id)
                .field("scope", scope)
                .field("workspace_id", workspace_id)
                .finish(),
        }
    }
}

/// `iat` and `exp` of a JWT (seconds since the epoch), if it has them.
pub fn jwt_times(token: &str) -> (Option<u64>, Option<u64>) {
    let claims = token
        .split('.')
        .nth(1)
        .and_then(|p| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    let get = |k: &str| claims.as_ref().and_then(|c| c.get(k)).and_then(Value::as_f64).filter(|v| *v >= 0.0).map(|v| v as u64);
    (get("iat"), get("exp"))
}

/// Whether `token` should be replaced at `now`.
pub fn needs_refresh(token: &str, now: u64) -> bool {
    match jwt_times(token) {
        (_, None) => false,
        (iat, Some(exp)) => {
            let lifetime = iat.map_or(REFRESH_MARGIN_SECS * 4, |i| exp.saturating_sub(i));
            let margin = REFRESH_MARGIN_SECS.min(lifetime / 4);
            now.saturating_add(margin) >= exp
        }
    }
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[derive(Default)]
struct Cached {
    access: Option<String>,
    refresh: Option<String>,
}

/// Hands out a valid token, issuing or refreshing as needed.
pub struct Tokens {
    auth: Auth,
    cached: tokio::sync::Mutex<Cached>,
}

impl Tokens {
    pub fn new(auth: Auth) -> Tokens {
        Tokens { auth, cached: tokio::sync::Mutex::new(Cached::default()) }
    }

    /// The token for the next call (identity reached through `identity`).
    pub async fn get(&self, identity: &Channel) -> Result<String, ApiError> {
        let now = now_secs();
        let (user_id, password, domain_id, scope, workspace_id) = match &self.auth {
            Auth::Token(t) => {
                if needs_refresh(t, now) && jwt_times(t).1.is_some_and(|exp| exp <= now) {
                    return Err(ApiError::new(Code::Unauthenticated, "the configured CloudForet token has expired"));
                }
                return Ok(t.clone());
            }
            Auth::User { user_id, password, domain_id, scope, workspace_id } => (user_id, password, domain_id, scope, workspace_id),
        };
        // Held across the identity calls below: one refresh serves every
        // caller waiting here. The channel's request timeout bounds it.
        let mut c = self.cached.lock().await;
        if let Some(a) = c.access.as_ref().filter(|a| !needs_refresh(a, now)) {
            return Ok(a.clone());
        }
        let mut client = TokenClient::new(identity.clone());
        // A refresh token that is still good is granted again; otherwise
        // (or when the grant is refused) the credentials are issued anew.
        if let Some(refresh) = c.refresh.clone().filter(|r| jwt_times(r).1.is_none_or(|exp| exp > now)) {
            match grant(&mut client, &refresh, domain_id, *scope, workspace_id).await {
                Ok(t) => {
                    c.access = Some(t.clone());
                    return Ok(t);
                }
                Err(e) if e.category() == super::Category::Auth => c.refresh = None,
                Err(e) => return Err(e),
            }
        }
        let credentials = prost_types::Struct {
            fields: [("user_id", user_id), ("password", password)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), prost_types::Value { kind: Some(prost_types::value::Kind::StringValue(v.clone())) }))
                .collect(),
        };
        let issued = client
            .issue(IssueTokenRequest {
                credentials: Some(credentials),
                auth_type: issue_token_request::AuthType::Local as i32,
                timeout: 0,
                verify_code: String::new(),
                domain_id: domain_id.clone(),
            })
            .await
            .map_err(|s| ApiError::from_status(&s))?
            .into_inner();
        let access = grant(&mut client, &issued.refresh_token, domain_id, *scope, workspace_id).await?;
        c.refresh = Some(issued.refresh_token);
        c.access = Some(access.clone());
        Ok(access)
    }

    /// Forgets `token` after the server refused it (the next
    /// [`Tokens::get`] grants a new one).
    pub async fn refused(&self, token: &str) {
        let mut c = self.cached.lock().await;
        if c.access.as_deref() == Some(token) {
            c.access = None;
        }
    }

    /// Whether a refused token can be replaced (not a fixed token).
    pub fn renewable(&self) -> bool {
        matches!(self.auth, Auth::User { .. })
    }
}

async fn grant(
    client: &mut TokenClient<Channel>,
    refresh: &str,
    domain_id: &str,
    scope: Scope,
    workspace_id: &Option<String>,
) -> Result<String, ApiError> {
    let scope = match scope {
        Scope::Domain => grant_token_request::Scope::Domain,
        Scope::Workspace => grant_token_request::Scope::Workspace,
    };
    let r = client
        .grant(GrantTokenRequest {
            grant_type: grant_token_request::GrantType::RefreshToken as i32,
            token: refresh.to_string(),
            scope: scope as i32,
            timeout: 0,
            permissions: Vec::new(),
            domain_id: domain_id.to_string(),
            workspace_id: workspace_id.clone().unwrap_or_default(),
        })
        .await
        .map_err(|s| ApiError::from_status(&s))?;
    Ok(r.into_inner().access_token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.sig", e(r#"{"alg":"HS256"}"#), e(claims))
    }

    #[test]
    fn expiry_is_read_from_the_jwt() {
        assert_eq!(jwt_times(&jwt(r#"{"iat": 100, "exp": 1000}"#)), (Some(100), Some(1000)));
        assert_eq!(jwt_times("not a jwt"), (None, None));
        assert_eq!(jwt_times(&jwt(r#"{"exp": "soon"}"#)), (None, None));
        // Long-lived: refreshed a minute before exp.
        let t = jwt(r#"{"iat": 0, "exp": 100000}"#);
        assert!(!needs_refresh(&t, 99_939));
        assert!(needs_refresh(&t, 99_940));
        // Short-lived (8 s): a quarter of the lifetime.
        let t = jwt(r#"{"iat": 1000, "exp": 1008}"#);
        assert!(!needs_refresh(&t, 1005));
        assert!(needs_refresh(&t, 1006));
        // No exp: never refreshed by time.
        assert!(!needs_refresh("opaque", u64::MAX));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let a = Auth::User { user_id: "u".into(), password: "hunter2".into(), domain_id: "d".into(), scope: Scope::Domain, workspace_id: None };
        assert!(!format!("{a:?}").contains("hunter2"));
        assert!(!format!("{:?}", Auth::Token("eyJsecret".into())).contains("eyJsecret"));
    }
}
