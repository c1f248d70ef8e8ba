//! The admin HTTP server: `/metrics`, `/healthz`, `/readyz` and `/progress`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;

use crate::metrics::TaskMetrics;

#[derive(Clone)]
struct AdminState {
    metrics: Arc<TaskMetrics>,
    stall_after: Duration,
}

/// Builds the admin routes.
pub fn router(metrics: Arc<TaskMetrics>, stall_after: Duration) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route(ferry_crds::contract::PROGRESS_PATH, get(progress))
        .with_state(AdminState {
            metrics,
            stall_after,
        })
}

async fn metrics_handler(State(s): State<AdminState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

async fn healthz(State(s): State<AdminState>) -> Response {
    let p = s.metrics.progress(s.stall_after);
    if p.stalled {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "stalled: work is waiting and nothing was written or committed for {}s\n",
                s.metrics.since_progress().as_secs()
            ),
        )
            .into_response()
    } else {
        (StatusCode::OK, "ok\n").into_response()
    }
}

async fn readyz(State(s): State<AdminState>) -> Response {
    if s.metrics.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: connecting to Kafka and the external system\n",
        )
            .into_response()
    }
}

async fn progress(State(s): State<AdminState>) -> Response {
    let p = s.metrics.progress(s.stall_after);
    match serde_json::to_string(&p) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Binds `addr` and serves the admin routes until `shutdown` turns true.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<TaskMetrics>,
    stall_after: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = router(metrics, stall_after);
    Ok(tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "admin server stopped");
        }
    }))
}
