//! The request size limit of the plugin protocols, enforced before tonic
//! decodes anything: a call to a `spaceone.api.*` service whose request
//! body (its one message, framed) is larger than the limit is answered
//! `INVALID_ARGUMENT` with `ERROR_INVALID_ARGUMENT: ...` at once, and no
//! more of it is read. Options and secrets are small; CloudForet's own
//! limit is far above what a plugin call needs.
//!
//! Health and reflection (streams of their own) pass through with tonic's
//! default limits.

use bytes::Bytes;
use http_body_util::BodyExt as _;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Default: 4 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 << 20;

/// The limit, as a tower layer over tonic's routes.
#[derive(Clone, Copy, Debug)]
pub struct MessageLimitLayer {
    pub max_bytes: usize,
}

impl<S> tower::Layer<S> for MessageLimitLayer {
    type Service = MessageLimit<S>;

    fn layer(&self, inner: S) -> MessageLimit<S> {
        MessageLimit { inner, max_bytes: self.max_bytes }
    }
}

/// The service of [`MessageLimitLayer`].
#[derive(Clone, Debug)]
pub struct MessageLimit<S> {
    inner: S,
    max_bytes: usize,
}

/// Whether the limit applies to a request path: the plugin protocols'
/// unary and server-streaming calls, one message each.
fn limited(path: &str) -> bool {
    path.starts_with("/spaceone.api.")
}

impl<S> tower::Service<http::Request<tonic::body::Body>> for MessageLimit<S>
where
    S: tower::Service<http::Request<tonic::body::Body>, Response = http::Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        if !limited(req.uri().path()) {
            return Box::pin(self.inner.call(req));
        }
        // The ready service serves this call; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let max = self.max_bytes;
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            match read_limited(body, max.saturating_add(5)).await {
                Ok(bytes) => inner.call(http::Request::from_parts(parts, tonic::body::Body::new(http_body_util::Full::new(bytes)))).await,
                Err(Refused::TooLarge) => Ok(refusal(&format!(
                    "ERROR_INVALID_ARGUMENT: the request is larger than {max} bytes (the server's limit)"
                ))),
                Err(Refused::Broken(e)) => Ok(refusal(&format!("ERROR_INVALID_ARGUMENT: the request body broke off: {e}"))),
            }
        })
    }
}

enum Refused {
    TooLarge,
    Broken(String),
}

/// The whole body, or `TooLarge` as soon as it passes `max` bytes (the
/// rest is never read).
async fn read_limited(mut body: tonic::body::Body, max: usize) -> Result<Bytes, Refused> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Refused::Broken(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > max {
                return Err(Refused::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

fn refusal(message: &str) -> http::Response<tonic::body::Body> {
    tonic::Status::invalid_argument(message).into_http()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(chunks: Vec<&'static [u8]>) -> tonic::body::Body {
        let stream = futures::stream::iter(chunks.into_iter().map(|c| Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from_static(c)))));
        tonic::body::Body::new(http_body_util::StreamBody::new(stream))
    }

    #[tokio::test]
    async fn bodies_past_the_limit_are_refused_without_reading_on() {
        assert_eq!(&read_limited(body(vec![b"abc", b"de"]), 5).await.ok().unwrap()[..], b"abcde");
        assert!(matches!(read_limited(body(vec![b"abc", b"def"]), 5).await, Err(Refused::TooLarge)));
        assert!(limited("/spaceone.api.inventory.plugin.Collector/collect"));
        assert!(!limited("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"));
        let r = refusal("ERROR_INVALID_ARGUMENT: x");
        assert_eq!(r.headers().get("grpc-status").and_then(|v| v.to_str().ok()), Some("3"));
    }
}
