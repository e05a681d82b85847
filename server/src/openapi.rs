//! The OpenAPI 3.1 document of the relying-party API, served at `/openapi.json`.

use axum::Json;

/// Serves the document.
pub async fn handler() -> Json<serde_json::Value> {
    Json(document())
}

/// The document (hand-written; the integration tests check every RP route is in it).
pub fn document() -> serde_json::Value {
    serde_json::json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Countersign relying-party API",
            "version": env!("CARGO_PKG_VERSION")
        },
        "paths": {}
    })
}
