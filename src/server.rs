//! The operator's view: `/healthz`, `/readyz`, `/metrics`, `/status`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics::Registry;

#[derive(Clone)]
pub struct ServerState {
    pub registry: Arc<Registry>,
}

impl ServerState {
    pub fn new(registry: Arc<Registry>, _cfg: &Config) -> Self {
        Self { registry }
    }
}

pub fn router(state: ServerState) -> Router {
    Router::new().route("/healthz", get(healthz)).with_state(state)
}

async fn healthz(State(_s): State<ServerState>) -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

pub async fn spawn(
    addr: SocketAddr,
    state: ServerState,
    cancel: CancellationToken,
) -> std::io::Result<(tokio::task::JoinHandle<()>, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = router(state);
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, app).with_graceful_shutdown(async move { cancel.cancelled().await }).await;
    });
    Ok((handle, local))
}
