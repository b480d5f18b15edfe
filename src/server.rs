//! `--listen`: `/health` (the process is alive), `/ready` (every resource synced and the
//! backend reachable) and `/metrics` (Prometheus text format). Plain HTTP/1.1 on a loopback
//! or pod address; nothing secret is ever served.
//!
//! Whoever can reach the port must not be able to starve terad: a client has
//! [`Limits::header_timeout`] to send a request's headers (between keep-alive requests too),
//! a connection lives at most [`Limits::connection_lifetime`], and at most
//! [`Limits::max_connections`] are open at once; one more closes the oldest, so a flood of
//! half-open connections cannot lock `/health` out. A failing `accept` (out of descriptors)
//! backs off instead of spinning, and the connection cap stays at a quarter of the descriptor
//! limit, so the syncs keep the rest.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::telemetry::Telemetry;

/// Connections served at once, at most.
pub const MAX_CONNECTIONS: usize = 64;
/// Connections the kernel queues until terad accepts them: a burst waits there instead of
/// being dropped (and retried by the client a second later). The kernel caps it at
/// `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 1024;
/// The longest pause between two `accept` calls that keep failing.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Bounds on what clients of the server may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once; one more closes the oldest.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, counted from the connection or
    /// from the previous answer (so it is the keep-alive idle timeout as well).
    pub header_timeout: Duration,
    /// How long one connection may stay open in all.
    pub connection_lifetime: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: MAX_CONNECTIONS,
            header_timeout: Duration::from_secs(5),
            connection_lifetime: Duration::from_secs(60),
        }
    }
}

impl Limits {
    /// The defaults, with the connection cap lowered to a quarter of the descriptor limit when
    /// that is tighter: the rest stays for the backend, stage files and commands.
    pub fn for_this_process() -> Limits {
        let mut limits = Limits::default();
        if let Ok((soft, _)) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        {
            let quarter = usize::try_from(soft / 4).unwrap_or(usize::MAX);
            limits.max_connections = limits.max_connections.min(quarter).max(4);
        }
        limits
    }
}

/// Binds `address` (so a port conflict fails start-up) and serves until `shutdown`.
pub async fn bind(
    address: SocketAddr,
    telemetry: Arc<Telemetry>,
    shutdown: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    bind_with(address, telemetry, shutdown, Limits::for_this_process()).await
}

/// [`bind`] with explicit limits.
pub async fn bind_with(
    address: SocketAddr,
    telemetry: Arc<Telemetry>,
    shutdown: CancellationToken,
    limits: Limits,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    let listener = socket.listen(LISTEN_BACKLOG)?;
    info!(
        address = %listener.local_addr()?,
        max_connections = limits.max_connections,
        "serving /health, /ready and /metrics"
    );
    Ok(tokio::spawn(serve(listener, telemetry, shutdown, limits)))
}

async fn serve(
    listener: TcpListener,
    telemetry: Arc<Telemetry>,
    shutdown: CancellationToken,
    limits: Limits,
) {
    let open = Arc::new(OpenConnections::default());
    let mut backoff = Duration::ZERO;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                backoff = Duration::ZERO;
                stream
            }
            Err(error) => {
                // Out of descriptors (EMFILE, ENFILE) or memory: accept fails again at once
                // until something closes. Give up a connection of our own and pause.
                open.close_oldest();
                backoff = (backoff * 2).clamp(Duration::from_millis(10), MAX_ACCEPT_BACKOFF);
                if backoff == Duration::from_millis(10) {
                    warn!(error = %error, "cannot accept a connection; pausing");
                } else {
                    debug!(error = %error, retry_in_ms = backoff.as_millis() as u64, "cannot accept a connection");
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => continue,
                    _ = shutdown.cancelled() => return,
                }
            }
        };
        let (id, closed) = open.admit(limits.max_connections);
        let telemetry = Arc::clone(&telemetry);
        let open = Arc::clone(&open);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| respond(request, Arc::clone(&telemetry)));
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            // Dropping the connection closes the socket.
            tokio::select! {
                _ = tokio::time::timeout(limits.connection_lifetime, connection) => {}
                _ = closed.cancelled() => {}
                _ = shutdown.cancelled() => {}
            }
            open.remove(id);
        });
    }
}

/// The connections being served, oldest first, each with the token that closes it.
#[derive(Default)]
struct OpenConnections {
    inner: Mutex<(u64, VecDeque<(u64, CancellationToken)>)>,
}

impl OpenConnections {
    /// Registers a new connection, closing the oldest ones beyond `max - 1`.
    fn admit(&self, max: usize) -> (u64, CancellationToken) {
        let mut guard = self.inner.lock().expect("no panics under this lock");
        let (next, open) = &mut *guard;
        while open.len() >= max.max(1) {
            if let Some((_, oldest)) = open.pop_front() {
                oldest.cancel();
            }
        }
        let id = *next;
        *next += 1;
        let token = CancellationToken::new();
        open.push_back((id, token.clone()));
        (id, token)
    }

    fn close_oldest(&self) {
        let mut guard = self.inner.lock().expect("no panics under this lock");
        if let Some((_, oldest)) = guard.1.pop_front() {
            oldest.cancel();
        }
    }

    fn remove(&self, id: u64) {
        let mut guard = self.inner.lock().expect("no panics under this lock");
        guard.1.retain(|(open, _)| *open != id);
    }
}

async fn respond(
    request: Request<hyper::body::Incoming>,
    telemetry: Arc<Telemetry>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let text = |status: StatusCode, body: &'static str| {
        (status, "text/plain; charset=utf-8", Bytes::from(body))
    };
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET | &Method::HEAD, "/health") => text(StatusCode::OK, "ok\n"),
        (&Method::GET | &Method::HEAD, "/ready") => match telemetry.readiness() {
            Ok(()) => text(StatusCode::OK, "ready\n"),
            Err(reasons) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain; charset=utf-8",
                Bytes::from(format!("not ready\n{}\n", reasons.join("\n"))),
            ),
        },
        (&Method::GET | &Method::HEAD, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            Bytes::from(telemetry.encode_metrics()),
        ),
        (&Method::GET | &Method::HEAD, _) => text(StatusCode::NOT_FOUND, "not found\n"),
        _ => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
    };
    let response = Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body))
        .expect("a static response is valid");
    Ok(response)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    async fn start(limits: Limits) -> (SocketAddr, CancellationToken) {
        let shutdown = CancellationToken::new();
        let telemetry = Arc::new(Telemetry::new(Duration::from_secs(30)));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, telemetry, shutdown.clone(), limits));
        (address, shutdown)
    }

    /// Whether the server closed `stream` (a read returns end of file or an error).
    async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
        let mut buffer = [0u8; 256];
        loop {
            match tokio::time::timeout(limit, stream.read(&mut buffer)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }

    async fn health(address: SocketAddr) -> String {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        answer
    }

    #[tokio::test]
    async fn a_client_that_never_finishes_its_headers_is_closed_and_so_is_an_idle_keep_alive() {
        let limits = Limits {
            header_timeout: Duration::from_millis(200),
            ..Limits::default()
        };
        let (address, _shutdown) = start(limits).await;
        let mut silent = TcpStream::connect(address).await.unwrap();
        silent
            .write_all(b"GET /health HTTP/1.1\r\nHo")
            .await
            .unwrap();
        assert!(closed_within(&mut silent, Duration::from_secs(3)).await);

        let mut idle = TcpStream::connect(address).await.unwrap();
        idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buffer = [0u8; 512];
        let n = idle.read(&mut buffer).await.unwrap();
        assert!(buffer[..n].starts_with(b"HTTP/1.1 200 OK"));
        assert!(closed_within(&mut idle, Duration::from_secs(3)).await);
    }

    #[tokio::test]
    async fn a_connection_over_the_cap_closes_the_oldest_and_health_still_answers() {
        let limits = Limits {
            max_connections: 3,
            ..Limits::default()
        };
        let (address, _shutdown) = start(limits).await;
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(TcpStream::connect(address).await.unwrap());
        }
        // The fourth (a probe) pushes the first out.
        let answer = health(address).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(answer.ends_with("ok\n"), "{answer}");
        assert!(closed_within(&mut held[0], Duration::from_secs(3)).await);
        assert!(!closed_within(&mut held[2], Duration::from_millis(100)).await);
    }

    #[tokio::test]
    async fn a_connection_lives_at_most_its_lifetime() {
        let limits = Limits {
            connection_lifetime: Duration::from_millis(300),
            header_timeout: Duration::from_secs(60),
            ..Limits::default()
        };
        let (address, _shutdown) = start(limits).await;
        let mut slow = TcpStream::connect(address).await.unwrap();
        assert!(closed_within(&mut slow, Duration::from_secs(3)).await);
    }

    #[test]
    fn the_cap_leaves_three_quarters_of_the_descriptors_to_the_syncs() {
        let limits = Limits::for_this_process();
        let (soft, _) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        assert!(limits.max_connections <= MAX_CONNECTIONS);
        assert!(limits.max_connections as u64 <= (soft / 4).max(4));
    }
}
