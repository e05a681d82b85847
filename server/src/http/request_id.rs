//! Request ids: an `x-request-id` on every response, and a tracing span per
//! request so that every log line written while serving it carries the id.

use axum::http::header;
use axum::response::Response;

/// The request id header, on requests (taken when valid) and on every response.
pub const HEADER: &str = "x-request-id";

/// A caller's request id is kept when it is 1–64 visible ASCII characters
/// (a proxy's or load balancer's id, so logs of both line up).
fn valid_request_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Gives each request an id (the caller's `x-request-id` when valid, else a
/// random one), runs it inside a `request` span with the field `request_id`,
/// so every log line of the request carries it, and returns it in the
/// response's `x-request-id`.
pub async fn layer(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use tracing::Instrument;
    let id = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| valid_request_id(v))
        .map(str::to_owned)
        .or_else(|| crate::util::random_id("req_").ok())
        .unwrap_or_else(|| "req_unavailable".to_owned());
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = header::HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}
