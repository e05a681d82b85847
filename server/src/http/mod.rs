//! The HTTP layer: routes, extractors that authenticate the caller, and the
//! mapping of service results and [`ApiError`]s to responses. Handlers parse,
//! call one service and map its result; they hold no business logic and no SQL.

pub mod auth;
pub mod demo;
pub mod device;
pub mod edge;
pub mod extract;
pub mod login;
pub mod openapi;
pub mod request_id;
pub mod rp;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};

use crate::AppState;
use crate::error::{ApiError, ErrorBody, ErrorDetail};

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let database = self.is_database();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(body)).into_response();
        if database {
            response.extensions_mut().insert(DatabaseFailure);
        }
        response
    }
}

/// Marks a response that answers a failed database statement, so that
/// [`observe`] counts it with the state it has (the error itself has none).
#[derive(Debug, Clone, Copy)]
struct DatabaseFailure;

/// Counts the database errors answered on any route: the one place where an
/// HTTP request's failed statement is counted.
async fn observe(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    if response.extensions().get::<DatabaseFailure>().is_some() {
        state.metrics.database_error();
    }
    response
}

/// Answers only once the request's writes are committed: on SQLite several
/// requests share one commit (see `store::Durability`); a failed commit turns
/// the answer into the storage error it is.
async fn durable(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let durability = crate::store::Durability::default();
    let response = durability.scope(next.run(request)).await;
    match durability.wait().await {
        Ok(()) => response,
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `GET /metrics`: this instance's Prometheus metrics (config `metrics`).
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    match state.metrics.render() {
        Ok(text) => ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

/// Every route of the server.
pub fn router(state: Arc<AppState>) -> Router {
    let mut router = Router::new();
    if state.config.metrics {
        router = router.route("/metrics", get(metrics));
    }
    router
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi::handler))
        .route("/v1/rp/enrollments", post(rp::create_enrollment))
        .route("/v1/rp/push", post(rp::start_push))
        .route("/v1/rp/challenges/{tx}", get(rp::challenge_status))
        .route("/v1/rp/validate", post(rp::validate))
        .route("/v1/rp/offline", post(rp::create_offline))
        .route("/v1/rp/offline/{id}/verify", post(rp::verify_offline))
        .route("/v1/rp/users/{user}/devices", get(rp::list_devices))
        .route(
            "/v1/rp/users/{user}/devices/{device}",
            delete(rp::remove_device),
        )
        .route("/v1/rp/users/{user}/oath-tokens", post(rp::add_oath_token))
        .route(
            "/v1/rp/users/{user}/password",
            put(rp::set_password).delete(rp::remove_password),
        )
        .route("/v1/rp/logins", post(rp::create_login))
        .route("/v1/logins/{id}", get(login::status))
        .route("/v1/logins/{id}/number", post(login::number))
        .route("/v1/device/activate", post(device::activate))
        .route(
            "/v1/device/activate/confirm",
            post(device::confirm_activation),
        )
        .route("/v1/device/challenges", get(device::poll))
        .route("/v1/device/challenges/{tx}", get(device::fetch))
        .route("/v1/device/challenges/{tx}/answer", post(device::answer))
        .route("/v1/device/logins/{id}/claim", post(device::claim_login))
        .route("/v1/device/push", put(device::update_push))
        .route("/v1/device/webpush", get(device::webpush_key))
        .route("/v1/device/kem", put(device::update_kem_key))
        .route("/v1/device/resume", post(device::resume_pushes))
        .route("/v1/device/transfers", post(device::start_transfer))
        .route("/v1/device", delete(device::deregister))
        .merge(demo::router(state.clone()))
        // After every route and merge: the fallbacks and layers cover exactly
        // the routes present when they are added.
        .fallback(extract::not_found)
        .method_not_allowed_fallback(extract::method_not_allowed)
        .layer(axum::middleware::from_fn(durable))
        .layer(axum::extract::DefaultBodyLimit::max(
            state.config.http.max_body_bytes,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(state.config.http.clone()),
            edge::read_body,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        // Outermost: every response of the router carries the id.
        .layer(axum::middleware::from_fn(request_id::layer))
        .with_state(state)
}

async fn healthz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    match state.db.ping().await {
        Ok(()) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "ok"})),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({"status": "database unavailable"})),
            )
        }
    }
}

/// A JSON body that is already serialised (signed messages, byte for byte).
fn signed_json(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}
