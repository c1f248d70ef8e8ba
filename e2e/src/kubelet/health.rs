//! The `/healthz` endpoint: 200 once the node is registered and the pod watch has synced.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;

/// Serves `/healthz` on `addr` until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    healthy: Arc<AtomicBool>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .with_state(healthy);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.changed().await;
        })
        .await
}

async fn healthz(State(healthy): State<Arc<AtomicBool>>) -> (StatusCode, &'static str) {
    if healthy.load(Ordering::SeqCst) {
        (StatusCode::OK, "ok")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: node not registered or pods not listed yet",
        )
    }
}
