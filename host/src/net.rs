//! Connections of the host's servers (gRPC, admin API, metrics), bounded:
//! a cap on open connections (past it the listener is not polled, so the
//! kernel's backlog holds newcomers), back-off on accept errors (running out
//! of file descriptors must not spin the accept loop) logged at a bounded
//! rate, an idle timeout (no request in flight and no bytes for a while
//! closes the connection), a header timeout for HTTP/1.1 and a cap on
//! concurrent HTTP/2 streams per connection.
//!
//! # Layout
//!
//! - [`ConnLimits`]: the settings.
//! - [`Acceptor`]: the accept loop's one step.
//! - [`Conn`]: a connection's I/O, with its slot and its idle clock;
//!   [`PeerInfo`] is what a request learns of its connection.
//! - [`serve_http`]: an axum router on a listener (admin API, metrics).
//! - [`incoming`] and [`ActivityLayer`]: the same for tonic.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connection settings of a server.
#[derive(Clone, Debug)]
pub struct ConnLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// A connection with no request in flight and no bytes moving for this
    /// long is closed.
    pub idle_timeout: Duration,
    /// An HTTP/1.1 request's headers must arrive within this.
    pub header_timeout: Duration,
    /// HTTP/2 streams (calls) at once on one connection.
    pub max_streams_per_connection: u32,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_connections: 1024,
            idle_timeout: Duration::from_secs(300),
            header_timeout: Duration::from_secs(10),
            max_streams_per_connection: 128,
        }
    }
}

/// Accepts connections under a cap, backing off on errors.
pub struct Acceptor {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    limits: ConnLimits,
    backoff: Duration,
    errors: ErrorLog,
}

/// Logs accept errors at most once a second, with how many were not logged.
struct ErrorLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl ErrorLog {
    fn note(&mut self, e: &io::Error, now: Instant) {
        if self.last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1)) {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(error = %e, suppressed = self.suppressed, "accept failed; backing off");
        self.last = Some(now);
        self.suppressed = 0;
    }
}

const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

impl Acceptor {
    pub fn new(listener: TcpListener, limits: ConnLimits) -> Acceptor {
        Acceptor {
            listener,
            slots: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            limits,
            backoff: MIN_BACKOFF,
            errors: ErrorLog { last: None, suppressed: 0 },
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The next connection, once a slot is free.
    pub async fn accept(&mut self) -> Conn {
        let slot = match self.slots.clone().acquire_owned().await {
            Ok(s) => s,
            Err(_) => unreachable!("the semaphore is never closed"),
        };
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    self.backoff = MIN_BACKOFF;
                    let _ = stream.set_nodelay(true);
                    set_keepalive(&stream);
                    return Conn::new(stream, peer, slot, self.limits.idle_timeout);
                }
                Err(e) => {
                    // EMFILE and friends: wait, and let connections close.
                    self.errors.note(&e, Instant::now());
                    tokio::time::sleep(self.backoff).await;
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// TCP keepalive, so dead peers free their slots.
fn set_keepalive(stream: &TcpStream) {
    let sock = socket2_ref(stream);
    let ka = socket2::TcpKeepalive::new().with_time(Duration::from_secs(60)).with_interval(Duration::from_secs(15));
    let _ = sock.set_tcp_keepalive(&ka);
}

fn socket2_ref(stream: &TcpStream) -> socket2::SockRef<'_> {
    socket2::SockRef::from(stream)
}

/// A connection's activity: requests in flight and when bytes last moved.
#[derive(Debug)]
pub struct Activity {
    active: AtomicUsize,
    /// Milliseconds since [`epoch`] of the last read or write.
    last: AtomicU64,
}

fn epoch() -> Instant {
    static E: OnceLock<Instant> = OnceLock::new();
    *E.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

impl Activity {
    fn touch(&self) {
        self.last.store(now_ms(), Ordering::Relaxed);
    }

    /// A request starts; it counts until the guard is dropped.
    pub fn begin(self: &Arc<Self>) -> ActiveGuard {
        self.active.fetch_add(1, Ordering::AcqRel);
        self.touch();
        ActiveGuard(self.clone())
    }
}

/// A request in flight on a connection.
pub struct ActiveGuard(Arc<Activity>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
        self.0.touch();
    }
}

/// What a request learns of its connection (a request extension).
#[derive(Clone, Debug)]
pub struct PeerInfo {
    pub remote: SocketAddr,
    pub activity: Arc<Activity>,
}

/// A connection's I/O: the stream, its slot under the cap, its idle clock.
pub struct Conn {
    stream: TcpStream,
    info: PeerInfo,
    idle_timeout: Duration,
    idle: Pin<Box<tokio::time::Sleep>>,
    _slot: OwnedSemaphorePermit,
}

impl Conn {
    fn new(stream: TcpStream, peer: SocketAddr, slot: OwnedSemaphorePermit, idle_timeout: Duration) -> Conn {
        let activity = Arc::new(Activity { active: AtomicUsize::new(0), last: AtomicU64::new(now_ms()) });
        Conn {
            stream,
            info: PeerInfo { remote: peer, activity },
            idle_timeout,
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
            _slot: slot,
        }
    }

    pub fn info(&self) -> &PeerInfo {
        &self.info
    }

    /// `Err` once the connection has been idle too long; otherwise keeps
    /// the idle timer armed (so a quiet connection is woken to be closed).
    fn check_idle(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        loop {
            if self.idle.as_mut().poll(cx).is_pending() {
                return Ok(());
            }
            let a = &self.info.activity;
            let since = now_ms().saturating_sub(a.last.load(Ordering::Relaxed));
            if a.active.load(Ordering::Acquire) == 0 && since >= self.idle_timeout.as_millis() as u64 {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "connection idle"));
            }
            let wait = self.idle_timeout.saturating_sub(Duration::from_millis(since)).max(Duration::from_millis(100));
            self.idle.as_mut().reset(tokio::time::Instant::now() + wait);
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.info.activity.touch();
                }
                Poll::Ready(r)
            }
            Poll::Pending => match self.check_idle(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.info.activity.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.info.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

/// Connections for tonic's `serve_with_incoming*`.
pub fn incoming(listener: TcpListener, limits: ConnLimits) -> impl futures::Stream<Item = io::Result<Conn>> {
    futures::stream::unfold(Acceptor::new(listener, limits), |mut a| async move {
        let c = a.accept().await;
        Some((Ok(c), a))
    })
}

/// Counts a tonic request as in flight on its connection until its
/// response body is done (a streaming call counts while it streams).
#[derive(Clone, Copy, Debug, Default)]
pub struct ActivityLayer;

impl<S> tower::Layer<S> for ActivityLayer {
    type Service = ActivityService<S>;

    fn layer(&self, inner: S) -> ActivityService<S> {
        ActivityService(inner)
    }
}

/// The service of [`ActivityLayer`].
#[derive(Clone, Debug)]
pub struct ActivityService<S>(S);

impl<S, B> tower::Service<http::Request<B>> for ActivityService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let guard = req.extensions().get::<PeerInfo>().map(|p| p.activity.begin());
        let fut = self.0.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            Ok(match guard {
                Some(g) => resp.map(|b| tonic::body::Body::new(Guarded { body: b, _guard: g })),
                None => resp,
            })
        })
    }
}

/// A response body that holds its request's activity guard.
struct Guarded<B> {
    body: B,
    _guard: ActiveGuard,
}

impl<B: http_body::Body + Unpin> http_body::Body for Guarded<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Serves an axum router on `listener` with `limits` until `shutdown`
/// resolves; connections still open then are closed gracefully (requests
/// in flight finish).
pub async fn serve_http(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let mut acceptor = Acceptor::new(listener, limits.clone());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    builder.http2().timer(TokioTimer::new()).max_concurrent_streams(limits.max_streams_per_connection);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let conn = tokio::select! {
            c = acceptor.accept() => c,
            () = &mut shutdown => break,
        };
        let info = conn.info().clone();
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
            let _guard = info.activity.begin();
            req.extensions_mut().insert(axum::extract::ConnectInfo(info.remote));
            req.extensions_mut().insert(info.clone());
            let mut router = router.clone();
            async move {
                let r = tower::Service::call(&mut router, req.map(axum::body::Body::new)).await;
                drop(_guard);
                r
            }
        });
        let builder = builder.clone();
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(conn), service).into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    // Requests in flight finish; idle connections close now.
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn the_cap_holds_newcomers_until_a_connection_closes() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let mut a = Acceptor::new(l, ConnLimits { max_connections: 2, ..ConnLimits::default() });
        let _c1 = TcpStream::connect(addr).await.unwrap();
        let _c2 = TcpStream::connect(addr).await.unwrap();
        let _c3 = TcpStream::connect(addr).await.unwrap();
        let first = a.accept().await;
        let _second = a.accept().await;
        assert!(tokio::time::timeout(Duration::from_millis(100), a.accept()).await.is_err(), "a third waits while two are open");
        drop(first);
        tokio::time::timeout(Duration::from_secs(1), a.accept()).await.expect("admitted once one closed");
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_but_not_one_with_a_request_in_flight() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let mut a = Acceptor::new(l, ConnLimits { idle_timeout: Duration::from_millis(200), ..ConnLimits::default() });
        let _client = TcpStream::connect(addr).await.unwrap();
        let mut conn = a.accept().await;
        let mut buf = [0u8; 8];
        let started = Instant::now();
        let e = conn.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(150), "{:?}", started.elapsed());

        let mut client = TcpStream::connect(addr).await.unwrap();
        let mut conn = a.accept().await;
        let guard = conn.info().activity.begin();
        let read = tokio::time::timeout(Duration::from_millis(600), conn.read(&mut buf)).await;
        assert!(read.is_err(), "a request in flight keeps a quiet connection open");
        drop(guard);
        client.write_all(b"x").await.unwrap();
        assert_eq!(conn.read(&mut buf).await.unwrap(), 1);
        let e = tokio::time::timeout(Duration::from_secs(2), conn.read(&mut buf)).await.unwrap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "idle again once the request ended");
    }

    #[test]
    fn accept_errors_are_logged_at_a_bounded_rate() {
        let mut log = ErrorLog { last: None, suppressed: 0 };
        let t0 = Instant::now();
        let e = io::Error::from_raw_os_error(24);
        for i in 0..1000 {
            log.note(&e, t0 + Duration::from_micros(i));
        }
        assert_eq!(log.suppressed, 999, "one line in the first second");
        log.note(&e, t0 + Duration::from_secs(2));
        assert_eq!(log.suppressed, 0);
    }
}
