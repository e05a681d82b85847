//! The HTTP edge: how connections are accepted, bounded and timed out, so that
//! slow or hostile clients cannot hold the server's descriptors (issue 12).
//!
//! - **Header read timeout**: a connection must deliver a request's headers
//!   within this time of its first byte (or of the accept, for its first
//!   request). Cuts "slowloris" clients that trickle a header.
//! - **Body read timeout**: a request's whole body must arrive within this
//!   time (one deadline, not per chunk: a client trickling a byte at a time
//!   would otherwise live forever). Bodies are small (at most
//!   [`HttpLimits::max_body_bytes`]) and read before the handler runs.
//! - **Idle timeout**: a keep-alive connection with no request in flight is
//!   closed after this time.
//! - **Connection bound**: at most this many connections at once; at the
//!   bound the server stops accepting and newcomers wait in the kernel's
//!   backlog until a connection ends (they are served late, not refused, and
//!   an accept never fails for lack of descriptors). By default it is derived
//!   from `RLIMIT_NOFILE` minus a reserve for the database pool, outgoing HTTP
//!   (webhooks, push) and the process's own files.
//!
//! A request being handled is never cut: long-polls (`?wait=N`) are bounded by
//! `policy.long_poll_max_secs` and return at shutdown.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Limited};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::config::ConfigError;
use crate::error::{ApiError, ErrorCode};

/// Limits of the HTTP edge (`[http]` in the configuration file).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpLimits {
    /// Seconds a client has to send a request's headers, from its first byte
    /// (from the accept for a connection's first request).
    pub header_read_timeout_secs: u64,
    /// Seconds a client has to send a request's whole body.
    pub body_read_timeout_secs: u64,
    /// Seconds a keep-alive connection may sit idle between requests.
    pub idle_timeout_secs: u64,
    /// Largest request body in bytes (every route; larger is 413).
    pub max_body_bytes: usize,
    /// Most connections at once; `None` derives it from `RLIMIT_NOFILE`
    /// (see [`connection_bound`]).
    pub max_connections: Option<usize>,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            // A real client sends its headers in one round trip.
            header_read_timeout_secs: 10,
            // 64 KiB even on a slow mobile link.
            body_read_timeout_secs: 30,
            // Longer than a device's pause between long-polls, so it keeps its connection.
            idle_timeout_secs: 60,
            max_body_bytes: 64 * 1024,
            max_connections: None,
        }
    }
}

impl HttpLimits {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let secs = [
            self.header_read_timeout_secs,
            self.body_read_timeout_secs,
            self.idle_timeout_secs,
        ];
        if secs.iter().any(|s| !(1..=3600).contains(s)) {
            return Err(ConfigError::Invalid(
                "http timeouts must be in 1..=3600 seconds".into(),
            ));
        }
        if self.max_body_bytes == 0 || self.max_connections == Some(0) {
            return Err(ConfigError::Invalid(
                "http.max_body_bytes and http.max_connections must be positive".into(),
            ));
        }
        Ok(())
    }

    fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs)
    }

    fn body_read_timeout(&self) -> Duration {
        Duration::from_secs(self.body_read_timeout_secs)
    }

    fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
}

/// Descriptors kept back from the connection bound for the process itself:
/// standard streams, the listener, the runtime's epoll and wakers, log files.
const FD_RESERVE_BASE: u64 = 64;
/// Per database connection: a PostgreSQL socket, or a SQLite file with its
/// `-wal` and `-shm` files.
const FD_PER_DB_CONNECTION: u64 = 3;
/// Outgoing HTTP: webhooks and push providers, pooled by reqwest.
const FD_RESERVE_OUTGOING: u64 = 64;
/// The bound never drops below this, even under a tiny descriptor limit.
const MIN_CONNECTIONS: u64 = 16;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (the default soft limit,
/// often 1024, is what a server runs out of first); returns the new soft limit.
pub fn raise_nofile_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// The connection bound: `limits.max_connections`, or the soft `RLIMIT_NOFILE`
/// minus a reserve for the database pool, outgoing HTTP and the process's own
/// files (at least 16).
pub fn connection_bound(limits: &HttpLimits, database_max_connections: u32) -> usize {
    let bound = match limits.max_connections {
        Some(n) => n,
        None => {
            let soft = rlimit::getrlimit(rlimit::Resource::NOFILE)
                .map(|(soft, _)| soft)
                .unwrap_or(1024);
            let reserve = FD_RESERVE_BASE
                + FD_PER_DB_CONNECTION * u64::from(database_max_connections)
                + FD_RESERVE_OUTGOING;
            let n = soft.saturating_sub(reserve).max(MIN_CONNECTIONS);
            usize::try_from(n).unwrap_or(usize::MAX)
        }
    };
    bound.min(Semaphore::MAX_PERMITS)
}

/// Serves `app` on `listener` until `stop` turns `true`, then stops accepting,
/// lets in-flight requests finish and waits for every connection to close.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    max_connections: usize,
    mut stop: watch::Receiver<bool>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Header and idle timeouts are this module's (`Activity`): hyper's header
    // timeout also runs while a keep-alive connection is idle, which would make
    // the idle timeout the header timeout.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let limits = Arc::new(limits);
    let slots = Arc::new(Semaphore::new(max_connections));
    let graceful = GracefulShutdown::new();
    tracing::info!(max_connections, "accepting connections");
    // At most one "bound reached" warning a minute: under a flood it would
    // otherwise be one per freed slot.
    let mut warned: Option<Instant> = None;
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // Full: stop accepting; the kernel's backlog holds newcomers.
                if warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                    tracing::warn!(max_connections, "connection bound reached");
                    warned = Some(Instant::now());
                }
                tokio::select! {
                    permit = slots.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    () = stopped(&mut stop) => break,
                }
            }
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // A client that gave up before the accept: next one.
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of descriptors (the reserve was too small) or
                    // memory: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(TrackedIo {
            inner: stream,
            activity: activity.clone(),
        });
        let service = {
            let activity = activity.clone();
            let app = app.clone();
            hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let busy = activity.begin();
                let app = app.clone();
                async move {
                    let response = app.oneshot(req).await;
                    drop(busy);
                    response
                }
            })
        };
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let limits = limits.clone();
        tokio::spawn(async move {
            let conn = watcher.watch(builder.serve_connection(io, service).into_owned());
            tokio::select! {
                result = conn => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                () = activity.expired(&limits) => {
                    // Dropping the connection closes the socket.
                    tracing::debug!("connection timed out");
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// An error of one connection, not of the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Completes when `stop` turns `true` (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The `Ref` that `wait_for` returns is not `Send`: drop it here.
    let _ = stop.wait_for(|s| *s).await;
}

/// Where a connection is between requests.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request's first byte since the instant.
    Idle(Instant),
    /// Reading a request's headers since the instant.
    Reading(Instant),
    /// This many requests are being handled (their bodies are read under the
    /// body timeout; handlers, long-polls included, run untimed).
    Busy(usize),
}

/// The phase of one connection, updated by its socket reads and its requests,
/// watched by [`Activity::expired`].
#[derive(Debug)]
struct Activity {
    phase: Mutex<Phase>,
    changed: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            // A new connection owes its first request's headers.
            phase: Mutex::new(Phase::Reading(Instant::now())),
            changed: Notify::new(),
        }
    }

    fn with_phase<R>(&self, f: impl FnOnce(&mut Phase) -> R) -> R {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut phase)
    }

    /// Bytes arrived: an idle connection starts reading a request.
    fn on_bytes(&self) {
        let started = self.with_phase(|phase| match *phase {
            Phase::Idle(_) => {
                *phase = Phase::Reading(Instant::now());
                true
            }
            _ => false,
        });
        if started {
            self.changed.notify_one();
        }
    }

    /// A request's headers are in: until the guard drops, nothing times out.
    fn begin(self: &Arc<Self>) -> BusyGuard {
        self.with_phase(|phase| {
            *phase = match *phase {
                Phase::Busy(n) => Phase::Busy(n + 1),
                _ => Phase::Busy(1),
            }
        });
        BusyGuard(self.clone())
    }

    fn end(&self) {
        let idle = self.with_phase(|phase| match *phase {
            Phase::Busy(n) if n > 1 => {
                *phase = Phase::Busy(n - 1);
                false
            }
            _ => {
                *phase = Phase::Idle(Instant::now());
                true
            }
        });
        if idle {
            self.changed.notify_one();
        }
    }

    /// Completes when the connection has been idle or reading headers too long.
    async fn expired(&self, limits: &HttpLimits) {
        loop {
            let deadline = self.with_phase(|phase| match *phase {
                Phase::Idle(since) => Some(since + limits.idle_timeout()),
                Phase::Reading(since) => Some(since + limits.header_read_timeout()),
                Phase::Busy(_) => None,
            });
            match deadline {
                Some(deadline) if deadline <= Instant::now() => return,
                Some(deadline) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline) => {}
                        () = self.changed.notified() => {}
                    }
                }
                None => self.changed.notified().await,
            }
        }
    }
}

/// Marks a request as in flight while it lives.
struct BusyGuard(Arc<Activity>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// A socket that reports arriving bytes to its connection's [`Activity`].
struct TrackedIo {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_bytes();
        }
        polled
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Middleware: reads the whole request body, at most `max_body_bytes`, within
/// the body timeout, before any handler or extractor runs. Every route thus has
/// the same limit (merged routers and raw-bytes handlers included), and a
/// client that announces a body and never sends it is cut loose.
pub async fn read_body(
    State(limits): State<Arc<HttpLimits>>,
    req: Request,
    next: Next,
) -> Response {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return too_large();
    }
    let (parts, body) = req.into_parts();
    let limited = Limited::new(body, limits.max_body_bytes);
    let bytes = match tokio::time::timeout(limits.body_read_timeout(), limited.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return too_large();
        }
        Ok(Err(_)) => {
            return closing(
                ApiError::bad_request("the request body could not be read").into_response(),
            );
        }
        Err(_) => return body_timeout(),
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn too_large() -> Response {
    closing(
        ApiError::new(ErrorCode::PayloadTooLarge, "the request body is too large").into_response(),
    )
}

/// 408 `request_timeout`: the body did not arrive within its deadline.
fn body_timeout() -> Response {
    closing(
        ApiError::new(
            ErrorCode::RequestTimeout,
            "the request body did not arrive in time",
        )
        .into_response(),
    )
}

/// The rest of an unread body is not worth draining: close the connection.
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_validate_and_bound() {
        assert!(HttpLimits::default().validate().is_ok());
        let zero = HttpLimits {
            header_read_timeout_secs: 0,
            ..HttpLimits::default()
        };
        assert!(zero.validate().is_err());
        let none = HttpLimits {
            max_connections: Some(0),
            ..HttpLimits::default()
        };
        assert!(none.validate().is_err());
        let five = HttpLimits {
            max_connections: Some(5),
            ..HttpLimits::default()
        };
        assert_eq!(connection_bound(&five, 8), 5);
        let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
        let derived = connection_bound(&HttpLimits::default(), 8) as u64;
        assert!(derived >= MIN_CONNECTIONS);
        assert!(derived <= soft.max(MIN_CONNECTIONS), "{derived} vs {soft}");
    }
}
