//! Extractors whose rejections are [`ApiError`]s, so that every refusal of a
//! malformed request is JSON in the one error shape, and the router's fallbacks
//! for unknown routes (404) and wrong methods (405).
//!
//! axum's own rejections are `text/plain` and some quote the input (serde's
//! "invalid type: string \"…\""). These wrappers map them by kind and write
//! their own messages: nothing the client sent is echoed, except a schema field
//! name in "missing field `user`".

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ErrorCode};

/// A JSON body (`Content-Type: application/json`) deserialised into `T`;
/// refusals are 415 `unsupported_media_type`, 413 `payload_too_large`,
/// 400 `bad_request` (not JSON) or 422 `invalid_body` (JSON of another shape).
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// An optional JSON body: `None` without a `Content-Type`, else like [`Json`].
impl<T, S> OptionalFromRequest<S> for Json<T>
where
    axum::Json<T>: OptionalFromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let json = <axum::Json<T> as OptionalFromRequest<S>>::from_request(req, state).await?;
        Ok(json.map(|axum::Json(value)| Self(value)))
    }
}

/// A query string deserialised into `T`; refusals are 400 `bad_request`.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// Path parameters deserialised into `T`; refusals are 400 `bad_request`.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// The raw body (bounded by the router's body limit); refusals are 413
/// `payload_too_large` or 400 `bad_request`.
#[derive(Debug, Clone, Default)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(Bytes::from_request(req, state).await?))
    }
}

/// The code of a rejection by its HTTP status (axum's rejection enums are
/// non-exhaustive; the status is their stable classification).
fn code_for(status: StatusCode) -> ErrorCode {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::UNPROCESSABLE_ENTITY => ErrorCode::InvalidBody,
        s if s.is_server_error() => ErrorCode::Internal,
        _ => ErrorCode::BadRequest,
    }
}

/// A fixed message per code: rejection texts quote the input.
fn body_error(code: ErrorCode) -> ApiError {
    let message = match code {
        ErrorCode::PayloadTooLarge => "the request body is too large",
        ErrorCode::UnsupportedMediaType => "expected Content-Type: application/json",
        ErrorCode::InvalidBody => "the JSON body does not fit the schema",
        ErrorCode::Internal => "internal error",
        _ => "the request body could not be read",
    };
    ApiError::new(code, message)
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        body_error(code_for(rejection.status()))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonSyntaxError(_) => {
                Self::bad_request("the request body is not valid JSON")
            }
            JsonRejection::JsonDataError(e) => match missing_field(&e) {
                Some(detail) => Self::new(
                    ErrorCode::InvalidBody,
                    format!("the JSON body does not fit the schema: {detail}"),
                ),
                None => body_error(ErrorCode::InvalidBody),
            },
            other => body_error(code_for(other.status())),
        }
    }
}

/// serde's "missing field `name`" (or "duplicate field `name`"): the name is
/// the schema's, not the client's. Every other serde message may quote input
/// (values, unknown field or variant names), and the error's path may hold
/// map keys the client chose, so both are dropped.
fn missing_field(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(e) = e.downcast_ref::<serde_path_to_error::Error<serde_json::Error>>() {
            let text = e.inner().to_string();
            for prefix in ["missing field `", "duplicate field `"] {
                if let Some(rest) = text.strip_prefix(prefix)
                    && let Some(end) = rest.find('`')
                {
                    return Some(format!("{prefix}{}`", &rest[..end]));
                }
            }
            return None;
        }
        next = e.source();
    }
    None
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        match code_for(rejection.status()) {
            ErrorCode::Internal => body_error(ErrorCode::Internal),
            _ => Self::bad_request("invalid query string"),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        match code_for(rejection.status()) {
            ErrorCode::Internal => body_error(ErrorCode::Internal),
            _ => Self::bad_request("invalid path parameter"),
        }
    }
}

/// The router's fallback: 404 `not_found` for a path no route matches.
pub async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route")
}

/// The fallback of every route: 405 `method_not_allowed` for a method the
/// route does not serve.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this route does not serve that method",
    )
}
