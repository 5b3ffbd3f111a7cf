//! The host's CloudForet connectors: tonic clients of CloudForet's public
//! gRPC APIs, used by push mode (`cf-host run`) to write what a collection
//! emits into a CloudForet deployment.
//!
//! # Layout
//!
//! - [`pb`]: the generated clients (identity v2 `Token` and `Schema`,
//!   inventory v1 `CloudService` / `CloudServiceType` / `Region`,
//!   notification v1 `Notification`, repository v1 `Plugin`, secret v1
//!   `Secret`, cost_analysis v1 `Cost`), from protos written with CloudForet's names and field
//!   numbers (`host/proto/spaceone/api/...`).
//! - [`ApiError`] (here): a failed call, typed from the gRPC status and
//!   CloudForet's `"ERROR_CODE: message"` detail, and its [`Category`].
//! - [`token`]: the `token` metadata: an App `client_secret` used directly,
//!   or user credentials issued and granted through identity, refreshed
//!   before the JWT's `exp`.
//! - [`client`]: [`client::Connector`]: one channel per service, every call
//!   through the breaker, retries and token; upserts by CloudForet's match
//!   rules (list, then create or update), deletes, notifications, secret
//!   data, and the registration of the collector (`Plugin`) and its secret
//!   schema (`Schema`), create or update by id.

pub mod client;
pub mod register;
pub mod token;

use std::fmt;
use tonic::Code;

/// Generated clients of CloudForet's public APIs.
/// Modules follow the proto packages (`spaceone.api.<service>.<version>`).
pub mod pb {
    pub mod cost_analysis {
        pub mod v1 {
            tonic::include_proto!("spaceone.api.cost_analysis.v1");
        }
    }
    pub mod core {
        pub mod v2 {
            tonic::include_proto!("spaceone.api.core.v2");
        }
    }
    pub mod identity {
        pub mod v2 {
            tonic::include_proto!("spaceone.api.identity.v2");
        }
    }
    pub mod inventory {
        pub mod v1 {
            tonic::include_proto!("spaceone.api.inventory.v1");
        }
    }
    pub mod notification {
        pub mod v1 {
            tonic::include_proto!("spaceone.api.notification.v1");
        }
    }
    pub mod repository {
        pub mod v1 {
            tonic::include_proto!("spaceone.api.repository.v1");
        }
    }
    pub mod secret {
        pub mod v1 {
            tonic::include_proto!("spaceone.api.secret.v1");
        }
    }
}

/// What a failure means for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    /// CloudForet (or the network to it) is unavailable: retry later; the
    /// breaker counts these.
    Unavailable,
    /// The token was refused: refresh it and retry once.
    Auth,
    /// Not allowed with this token's role and scope.
    Denied,
    /// The request itself is wrong (bad field, unknown id): retrying the
    /// same request cannot help.
    Invalid,
    /// Anything else CloudForet reported (an internal error).
    Other,
}

/// A failed CloudForet call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub code: Code,
    /// CloudForet's error code (`ERROR_NOT_FOUND`), when it sent one.
    pub error_code: Option<String>,
    pub message: String,
    /// The call failed in the transport (no answer from CloudForet): the
    /// status carries tonic's transport error as its source.
    pub transport: bool,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError { code, error_code: None, message: message.into(), transport: false }
    }

    /// From a gRPC status; CloudForet's details read `"ERROR_CODE: message"`.
    pub fn from_status(s: &tonic::Status) -> ApiError {
        let text = s.message();
        let split = text.split_once(": ").filter(|(c, _)| {
            c.starts_with("ERROR_") && c.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        });
        let transport = std::iter::successors(std::error::Error::source(s), |e| e.source())
            .any(|e| e.is::<tonic::transport::Error>() || e.is::<hyper::Error>() || e.is::<std::io::Error>());
        match split {
            Some((c, m)) => ApiError { code: s.code(), error_code: Some(c.to_string()), message: m.to_string(), transport },
            None => ApiError { code: s.code(), error_code: None, message: text.to_string(), transport },
        }
    }

    pub fn category(&self) -> Category {
        match self.code {
            Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Aborted => Category::Unavailable,
            // A transport failure surfaces as Unknown, tonic's transport
            // error its source.
            Code::Unknown if self.transport => Category::Unavailable,
            Code::Unauthenticated => Category::Auth,
            Code::PermissionDenied => Category::Denied,
            Code::InvalidArgument | Code::NotFound | Code::AlreadyExists | Code::FailedPrecondition | Code::OutOfRange => {
                Category::Invalid
            }
            _ => Category::Other,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error_code {
            Some(c) => write!(f, "{:?}: {c}: {}", self.code, self.message),
            None => write!(f, "{:?}: {}", self.code, self.message),
        }
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_details_are_typed() {
        let e = ApiError::from_status(&tonic::Status::not_found("ERROR_NOT_FOUND: Not found. (key = cloud_service_id)"));
        assert_eq!(e.error_code.as_deref(), Some("ERROR_NOT_FOUND"));
        assert_eq!(e.message, "Not found. (key = cloud_service_id)");
        assert_eq!(e.category(), Category::Invalid);
        assert_eq!(e.to_string(), "NotFound: ERROR_NOT_FOUND: Not found. (key = cloud_service_id)");

        let e = ApiError::from_status(&tonic::Status::unauthenticated("ERROR_AUTHENTICATE_FAILURE: Token expired"));
        assert_eq!((e.category(), e.error_code.as_deref()), (Category::Auth, Some("ERROR_AUTHENTICATE_FAILURE")));

        // Not CloudForet's shape: kept whole.
        let e = ApiError::from_status(&tonic::Status::unavailable("tcp connect error: refused"));
        assert_eq!((e.error_code.as_deref(), e.category()), (None, Category::Unavailable));
        let e = ApiError::from_status(&tonic::Status::internal("Error: something: else"));
        assert_eq!((e.error_code.as_deref(), e.category()), (None, Category::Other));
        assert_eq!(ApiError::new(Code::PermissionDenied, "x").category(), Category::Denied);
        assert_eq!(ApiError::new(Code::DeadlineExceeded, "x").category(), Category::Unavailable);
    }

    /// A transport failure is told by the status's source, not its text.
    #[test]
    fn transport_failures_are_told_by_their_source() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let mut status = tonic::Status::unknown("transport error");
        status.set_source(std::sync::Arc::new(io));
        let e = ApiError::from_status(&status);
        assert!(e.transport);
        assert_eq!(e.category(), Category::Unavailable);
        // The same words without a transport source are just an error.
        let e = ApiError::from_status(&tonic::Status::unknown("transport error"));
        assert!(!e.transport);
        assert_eq!(e.category(), Category::Other);
    }
}
