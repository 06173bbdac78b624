//! The operator's HTTP endpoints: `/metrics` (Prometheus), `/healthz` (liveness) and `/readyz` (readiness).
//! Plain HTTP on their own addresses: they carry no secrets, and NetworkPolicy limits who reaches them.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::metrics::{Health, Metrics};

#[derive(Clone)]
struct Shared {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

/// Binds the metrics and health addresses (one listener when they are equal) and serves them until
/// `shutdown`. Returns the bound addresses (port 0 picks a free port).
pub async fn serve(
    metrics_addr: SocketAddr,
    health_addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()> + Clone + Send + 'static,
) -> anyhow::Result<(SocketAddr, SocketAddr)> {
    let shared = Shared { metrics, health };
    let metrics_routes = Router::new().route("/metrics", get(metrics_text));
    let health_routes = Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz));
    if metrics_addr == health_addr {
        let bound = spawn(metrics_addr, metrics_routes.merge(health_routes).with_state(shared), shutdown).await?;
        return Ok((bound, bound));
    }
    let metrics_bound = spawn(metrics_addr, metrics_routes.with_state(shared.clone()), shutdown.clone()).await?;
    let health_bound = spawn(health_addr, health_routes.with_state(shared), shutdown).await?;
    Ok((metrics_bound, health_bound))
}

async fn spawn(
    addr: SocketAddr,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(shutdown).await {
            tracing::warn!(error = %e, %bound, "HTTP endpoint stopped");
        }
    });
    Ok(bound)
}

async fn metrics_text(State(shared): State<Shared>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], shared.metrics.encode())
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(shared): State<Shared>) -> (StatusCode, &'static str) {
    if shared.health.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "watch caches not synced yet\n")
    }
}
