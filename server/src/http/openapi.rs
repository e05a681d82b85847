//! The OpenAPI 3.1 document of the relying-party API, served at `/openapi.json`.
//! Hand-written; the integration tests check that every RP route is listed.

use axum::Json;
use serde_json::{Value, json};

/// Serves the document.
pub async fn handler() -> Json<Value> {
    Json(document())
}

fn error_responses() -> Value {
    json!({
        "400": {"$ref": "#/components/responses/Error"},
        "401": {"$ref": "#/components/responses/Error"},
        "403": {"$ref": "#/components/responses/Error"},
        "404": {"$ref": "#/components/responses/Error"},
        "405": {"$ref": "#/components/responses/Error"},
        "408": {"$ref": "#/components/responses/Error"},
        "409": {"$ref": "#/components/responses/Error"},
        "410": {"$ref": "#/components/responses/Error"},
        "413": {"$ref": "#/components/responses/Error"},
        "415": {"$ref": "#/components/responses/Error"},
        "422": {"$ref": "#/components/responses/Error"},
        "429": {"$ref": "#/components/responses/Error"}
    })
}

fn op(summary: &str, body: Option<&str>, ok: &str, params: Value) -> Value {
    let mut responses = error_responses();
    responses["200"] = json!({
        "description": "OK",
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{ok}")}}}
    });
    let mut o = json!({ "summary": summary, "parameters": params, "responses": responses });
    if let Some(b) = body {
        o["requestBody"] = json!({
            "required": true,
            "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{b}")}}}
        });
    }
    o
}

fn path_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
}

/// The document.
pub fn document() -> Value {
    let wait = json!({"name": "wait", "in": "query", "required": false,
        "description": "seconds to long-poll while pending (capped by the server)",
        "schema": {"type": "integer", "minimum": 0}});
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Countersign relying-party API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Push authentication, OTP validation and device management. Authenticate with `Authorization: Bearer csk_<key id>.<secret>`."
        },
        "security": [{"apiKey": []}],
        "paths": {
            "/v1/rp/enrollments": {"post": op("Create a single-use activation offer (URI, QR SVG/PNG, typed code; ≤10 min)", Some("EnrollmentRequest"), "EnrollmentResponse", json!([]))},
            "/v1/rp/push": {"post": op("Start a push login or transaction approval", Some("PushRequest"), "PushStarted", json!([]))},
            "/v1/rp/challenges/{tx}": {"get": op("Challenge status (long-poll with ?wait=N)", None, "ChallengeStatus", json!([path_param("tx"), wait]))},
            "/v1/rp/validate": {"post": op("Validate a passcode (TOTP/HOTP/push OTP); empty, 1-char or `push` starts a push", Some("ValidateRequest"), "ValidateResponse", json!([]))},
            "/v1/rp/offline": {"post": op("Create a signed offline QR (OCRA) challenge", Some("OfflineRequest"), "OfflineResponse", json!([]))},
            "/v1/rp/offline/{id}/verify": {"post": op("Verify the OCRA response the user typed", Some("OfflineVerifyRequest"), "Accepted", json!([path_param("id")]))},
            "/v1/rp/users/{user}/devices": {"get": op("List a user's devices", None, "DeviceList", json!([path_param("user")]))},
            "/v1/rp/users/{user}/devices/{device}": {"delete": op("Remove a device (its app wipes the account on next contact)", None, "Removed", json!([path_param("user"), path_param("device")]))},
            "/v1/rp/users/{user}/oath-tokens": {"post": op("Import a HOTP/TOTP token for passcode validation", Some("OathTokenRequest"), "TokenCreated", json!([path_param("user")]))}
        },
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            "responses": {"Error": {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string", "enum": ["bad_request", "unauthorized", "forbidden", "not_found", "expired", "replayed", "bad_signature", "wrong_number", "wrong_display_hash", "wrong_account", "otp_reused", "invalid_otp", "rate_limited", "suppressed", "device_removed", "already_answered", "no_device", "unsupported", "payload_too_large", "method_not_allowed", "unsupported_media_type", "invalid_body", "internal"]},
                    "message": {"type": "string"}}}}},
                "EnrollmentRequest": {"type": "object", "required": ["user"], "properties": {"user": {"type": "string"}, "label": {"type": "string"}, "issuer": {"type": "string"}}},
                "EnrollmentResponse": {"type": "object", "properties": {"offer_id": {"type": "string"}, "offer_uri": {"type": "string"}, "code": {"type": "string"}, "qr_svg": {"type": "string"}, "qr_png_base64": {"type": "string"}, "expires_at": {"type": "integer"}}},
                "Context": {"type": "object", "properties": {"rp": {"type": "string"}, "ip": {"type": "string"}, "location": {"type": "string"}, "user_agent": {"type": "string"}}},
                "Transaction": {"type": "object", "required": ["amount", "currency", "payee"], "properties": {"amount": {"type": "string"}, "currency": {"type": "string"}, "payee": {"type": "string"}}},
                "PushRequest": {"type": "object", "required": ["user"], "properties": {
                    "user": {"type": "string"}, "context": {"$ref": "#/components/schemas/Context"},
                    "text": {"type": "string"}, "transaction": {"$ref": "#/components/schemas/Transaction"},
                    "verification": {"type": "string", "enum": ["none", "pin", "biometric"]},
                    "number_matching": {"type": "string", "enum": ["off", "pick", "type"], "default": "type"},
                    "digits": {"type": "integer", "minimum": 2, "maximum": 8, "default": 2},
                    "profile": {"type": "string", "enum": ["nist"], "description": "type 6 digits (NIST SP 800-63B-4)"},
                    "timeout_secs": {"type": "integer", "minimum": 1, "maximum": 600, "default": 30}}},
                "PushStarted": {"type": "object", "properties": {"tx_id": {"type": "string"}, "number": {"type": ["string", "null"]}, "expires_at": {"type": "integer"}, "devices": {"type": "integer"}}},
                "ChallengeStatus": {"type": "object", "properties": {"tx_id": {"type": "string"}, "state": {"type": "string", "enum": ["pending", "approved", "denied", "expired"]}, "expires_at": {"type": "integer"}, "answered_at": {"type": ["integer", "null"]}, "device_id": {"type": ["string", "null"]}, "deny_reason": {"type": ["string", "null"], "enum": ["not_me", "mistake", null]}, "push_otp": {"type": ["string", "null"]}}},
                "ValidateRequest": {"type": "object", "required": ["user", "passcode"], "properties": {"user": {"type": "string"}, "passcode": {"type": "string"}, "push": {"$ref": "#/components/schemas/PushRequest"}}},
                "ValidateResponse": {"type": "object", "properties": {"result": {"type": "string", "enum": ["accepted", "push_started"]}, "method": {"type": "string", "enum": ["totp", "hotp", "push_otp"]}, "credential_id": {"type": "string"}, "tx_id": {"type": "string"}, "number": {"type": ["string", "null"]}, "expires_at": {"type": "integer"}}},
                "OfflineRequest": {"type": "object", "required": ["user"], "properties": {"user": {"type": "string"}, "device_id": {"type": "string"}, "timeout_secs": {"type": "integer", "minimum": 30, "maximum": 600}}},
                "OfflineResponse": {"type": "object", "properties": {"id": {"type": "string"}, "question": {"type": "string"}, "qr_payload": {"type": "string"}, "qr_svg": {"type": "string"}, "expires_at": {"type": "integer"}}},
                "OfflineVerifyRequest": {"type": "object", "required": ["response"], "properties": {"response": {"type": "string"}}},
                "Accepted": {"type": "object", "properties": {"result": {"type": "string"}, "device_id": {"type": "string"}}},
                "DeviceList": {"type": "array", "items": {"type": "object", "properties": {"device_id": {"type": "string"}, "name": {"type": "string"}, "platform": {"type": "string"}, "push_provider": {"type": "string"}, "status": {"type": "string", "enum": ["active", "removed"]}, "created_at": {"type": "integer"}, "last_seen_at": {"type": "integer"}}}},
                "Removed": {"type": "object", "properties": {"device_id": {"type": "string"}, "status": {"type": "string"}}},
                "OathTokenRequest": {"type": "object", "required": ["kind", "secret_base32"], "properties": {"kind": {"type": "string", "enum": ["hotp", "totp"]}, "secret_base32": {"type": "string"}, "algorithm": {"type": "string", "enum": ["SHA1", "SHA256", "SHA512"]}, "digits": {"type": "integer"}, "period": {"type": "integer"}, "counter": {"type": "integer"}}},
                "TokenCreated": {"type": "object", "properties": {"token_id": {"type": "string"}}}
            }
        }
    })
}
