//! `--listen`: `/health` (the process is alive), `/ready` (every resource synced and the
//! backend reachable) and `/metrics` (Prometheus text format). Plain HTTP/1.1 on a loopback
//! or pod address; nothing secret is ever served.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::telemetry::Telemetry;

/// Binds `address` (so a port conflict fails start-up) and serves until `shutdown`.
pub async fn bind(
    address: SocketAddr,
    telemetry: Arc<Telemetry>,
    shutdown: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(address).await?;
    info!(address = %listener.local_addr()?, "serving /health, /ready and /metrics");
    Ok(tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        debug!(error = %error, "accept failed");
                        continue;
                    }
                },
                _ = shutdown.cancelled() => return,
            };
            let telemetry = Arc::clone(&telemetry);
            tokio::spawn(async move {
                let service = service_fn(move |request| respond(request, Arc::clone(&telemetry)));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }))
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
