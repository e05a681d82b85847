//! The OpenAPI 3.1 document of both HTTP APIs, served at `/openapi.json`: the
//! relying-party API (API key) and the device API (requests signed by the
//! device, docs/PROTOCOL.md §7 and §12). Hand-written; every status and error
//! code a route can answer is listed, with the input constraints the server
//! enforces. The test command checks it against the running server with
//! requests generated from it (schemathesis), and `tests/flows.rs` checks that
//! it lists exactly the router's routes.

use axum::Json;
use countersign_protocol::api::ErrorCode;
use serde_json::{Map, Value, json};

/// Serves the document.
pub async fn handler() -> Json<Value> {
    Json(document())
}

/// Statuses every route may answer: malformed input (400), a body that fits
/// no schema (422), a body too large (413), not JSON (415), too slow (408).
const COMMON: &[u16] = &[400, 408, 413, 415, 422];

fn reference(schema: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{schema}")})
}

/// How a caller authenticates to an operation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// `Authorization: Bearer csk_…` (the document's default).
    ApiKey,
    /// The four headers of a signed device request.
    Device,
    /// Nothing (health, this document, activation: its body proves the offer).
    Public,
    /// `Authorization: Bearer <browser handle>` of a QR login.
    Browser,
}

/// An operation: `ok` is the 200 body's schema, `errors` the statuses beyond
/// [`COMMON`] (each with the error body).
struct Op<'a> {
    summary: &'a str,
    description: &'a str,
    body: Option<&'a str>,
    ok: &'a str,
    errors: &'a [u16],
    params: Vec<Value>,
    auth: Auth,
}

impl Op<'_> {
    fn build(self) -> Value {
        let mut responses = Map::new();
        responses.insert(
            "200".into(),
            json!({"description": "OK", "content": {"application/json": {"schema": reference(self.ok)}}}),
        );
        let mut statuses: Vec<u16> = COMMON.iter().chain(self.errors).copied().collect();
        statuses.sort_unstable();
        statuses.dedup();
        for status in statuses {
            responses.insert(
                status.to_string(),
                json!({"$ref": "#/components/responses/Error"}),
            );
        }
        let mut params = self.params;
        if self.auth == Auth::Device {
            params.extend(device_headers());
        }
        let mut op = json!({
            "summary": self.summary,
            "description": self.description,
            "parameters": params,
            "responses": responses,
        });
        match self.auth {
            Auth::ApiKey => {}
            Auth::Browser => op["security"] = json!([{"browserHandle": []}]),
            // Devices authenticate by signature (headers), not by API key.
            Auth::Device | Auth::Public => op["security"] = json!([]),
        }
        if let Some(body) = self.body {
            op["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": reference(body)}}
            });
        }
        op
    }
}

fn path_param(name: &str, description: &str, max: u32) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description,
           "schema": {"type": "string", "minLength": 1, "maxLength": max}})
}

fn wait_param(what: &str) -> Value {
    json!({"name": "wait", "in": "query", "required": false,
        "description": format!("seconds to long-poll while {what} (0: answer at once; capped by the server's policy.long_poll_max_secs, 60 by default)"),
        "schema": {"type": "integer", "minimum": 0, "maximum": 4_294_967_295u64}})
}

/// The four headers of a signed device request (docs/PROTOCOL.md §7).
fn device_headers() -> Vec<Value> {
    [
        ("Countersign-Device", "the device id"),
        (
            "Countersign-Timestamp",
            "unix seconds, plain decimal; within ±300 s of the server's clock",
        ),
        (
            "Countersign-Nonce",
            "base64url of 16–32 random bytes, never reused",
        ),
        (
            "Countersign-Signature",
            "base64url r‖s of the request by the device's possession key Dp",
        ),
    ]
    .into_iter()
    .map(|(name, description)| {
        json!({"name": name, "in": "header", "required": true, "description": description,
               "schema": {"type": "string"}})
    })
    .collect()
}

fn text(max: u32) -> Value {
    json!({"type": "string", "maxLength": max, "description": format!("at most {max} bytes of UTF-8, no control characters")})
}

fn user_name() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 128,
           "description": "the relying party's user name: 1–128 bytes of UTF-8, no control characters"})
}

/// The schemas of QR login (§13), static passwords, the Web Push key and transfers (§14),
/// apart: one `json!` holds only so many.
fn qr_password_webpush_schemas() -> Value {
    json!({
        "TransferRequest": {"type": "object", "additionalProperties": false, "properties": {
            "remove_old": {"type": "boolean", "description": "remove this device once the new phone is active (default false)"}}},
        "TransferStarted": {"type": "object", "additionalProperties": false, "required": ["offer_id", "offer_uri", "code", "expires_at"], "properties": {
            "offer_id": {"type": "string"}, "offer_uri": {"type": "string"}, "code": {"type": "string"},
            "expires_at": {"type": "integer"}}},
        "QrLoginRequest": {"type": "object", "additionalProperties": false, "properties": {
            "user": user_name(), "context": reference("Context"),
            "text": {"type": "string", "maxLength": 1024, "description": "shown on the phone; at most 1024 bytes"},
            "verification": {"type": "string", "enum": ["none", "pin", "biometric"]},
            "number_matching": {"type": "string", "enum": ["off", "show"], "default": "off",
                "description": "show: the phone shows a number and the user types it on the page (POST /v1/logins/{id}/number) before the login is approved"},
            "digits": {"type": "integer", "minimum": 2, "maximum": 8, "default": 6},
            "timeout_secs": {"type": "integer", "minimum": 10, "maximum": 600, "default": 120}},
            "description": "without `user` the login is usernameless: any active device of the relying party may scan it"},
        "QrLoginCreated": {"type": "object", "additionalProperties": false,
            "required": ["login_id", "uri", "qr_svg", "qr_png", "browser_handle", "expires_at"], "properties": {
            "login_id": {"type": "string"}, "uri": {"type": "string", "description": "countersign://login?… (QR code or deep link)"},
            "qr_svg": {"type": "string"}, "qr_png": {"type": "string", "description": "base64 PNG"},
            "browser_handle": {"type": "string", "description": "only the page polls with it (Authorization: Bearer); never put it in the QR"},
            "expires_at": {"type": "integer"}}},
        "QrLoginStatus": {"type": "object", "additionalProperties": false,
            "required": ["login_id", "state", "expires_at", "user", "device_id", "deny_reason"], "properties": {
            "login_id": {"type": "string"},
            "state": {"type": "string", "enum": ["waiting", "scanned", "number_required", "approved", "denied", "expired"]},
            "expires_at": {"type": "integer"},
            "user": {"type": ["string", "null"], "description": "the user whose device scanned the login"},
            "device_id": {"type": ["string", "null"]},
            "deny_reason": {"type": ["string", "null"], "enum": ["not_me", "mistake", "wrong_number", null]}}},
        "QrNumber": {"type": "object", "additionalProperties": false, "required": ["number"], "properties": {
            "number": {"type": "string", "maxLength": 16}}},
        "LoginClaim": {"type": "object", "additionalProperties": false, "required": ["secret"], "properties": {
            "secret": {"type": "string", "description": "the QR's secret: base64url of 16–32 bytes"}}},
        "PasswordRequest": {"type": "object", "required": ["password"], "additionalProperties": false, "properties": {
            "password": {"type": "string", "minLength": 1, "maxLength": 120,
                "description": "1–120 bytes of UTF-8 without NUL (400 otherwise); stored as an Argon2id hash"}}},
        "PasswordStatus": {"type": "object", "additionalProperties": false, "required": ["user", "password"], "properties": {
            "user": {"type": "string"}, "password": {"type": "string", "enum": ["set", "removed"]}}},
        "WebPushKey": {"type": "object", "additionalProperties": false, "required": ["vapid_public_key"], "properties": {
            "vapid_public_key": {"type": ["string", "null"], "description": "base64url of the VAPID key's 65-byte uncompressed P-256 point"}}}
    })
}

fn schemas() -> Value {
    let mut all = schemas_main();
    if let (Some(all), Value::Object(more)) = (all.as_object_mut(), qr_password_webpush_schemas()) {
        all.extend(more);
    }
    all
}

fn schemas_main() -> Value {
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    json!({
        "Error": {"type": "object", "required": ["error"], "additionalProperties": false, "properties": {"error": {
            "type": "object", "required": ["code", "message"], "additionalProperties": false, "properties": {
                "code": {"type": "string", "enum": codes, "description": "machine-readable; branch on this, never on the message"},
                "message": {"type": "string", "description": "for humans; never secrets or echoed input"}}}}},
        "EnrollmentRequest": {"type": "object", "required": ["user"], "additionalProperties": false, "properties": {
            "user": user_name(), "label": text(128), "issuer": text(128)}},
        "EnrollmentResponse": {"type": "object", "additionalProperties": false,
            "required": ["offer_id", "offer_uri", "code", "qr_svg", "qr_png_base64", "expires_at"], "properties": {
            "offer_id": {"type": "string"}, "offer_uri": {"type": "string", "description": "countersign://activate?… (QR code or deep link); single use"},
            "code": {"type": "string", "description": "the typed activation code"},
            "qr_svg": {"type": "string"}, "qr_png_base64": {"type": "string"}, "expires_at": {"type": "integer"}}},
        "Context": {"type": "object", "additionalProperties": false, "properties": {
            "rp": text(64), "ip": text(64), "location": text(64), "user_agent": text(256)}},
        "Transaction": {"type": "object", "required": ["amount", "currency", "payee"], "additionalProperties": false, "properties": {
            "amount": text(32), "currency": text(8), "payee": text(128)}},
        "PushRequest": {"type": "object", "additionalProperties": false, "properties": {
            "user": user_name(), "context": reference("Context"),
            "text": {"type": "string", "maxLength": 1024, "description": "shown on the phone; at most 1024 bytes"},
            "transaction": reference("Transaction"),
            "verification": {"type": "string", "enum": ["none", "pin", "biometric"]},
            "number_matching": {"type": "string", "enum": ["off", "pick", "type"], "default": "type",
                "description": "type: the user types the number shown on the login page (3 wrong entries end the challenge, configurable); pick: the user picks it among 3 (one wrong pick ends it)"},
            "digits": {"type": "integer", "minimum": 2, "maximum": 8, "default": 2},
            "profile": {"type": "string", "enum": ["nist"], "description": "type 6 digits (NIST SP 800-63B-4)"},
            "timeout_secs": {"type": "integer", "minimum": 1, "maximum": 600, "default": 30},
            "device_id": {"type": "string", "minLength": 1, "maxLength": 64, "description": "only this one of the user's active devices (see GET /v1/rp/users/{user}/devices); default: all of them. 404 `not_found` when it is not one of them"}},
            "description": "`user` is required for POST /v1/rp/push and ignored inside ValidateRequest.push"},
        "PushStarted": {"type": "object", "additionalProperties": false, "required": ["tx_id", "number", "expires_at", "devices"], "properties": {
            "tx_id": {"type": "string"}, "number": {"type": ["string", "null"], "description": "show it on the login page"},
            "expires_at": {"type": "integer"}, "devices": {"type": "integer", "minimum": 1}}},
        "ChallengeStatus": {"type": "object", "additionalProperties": false,
            "required": ["tx_id", "state", "expires_at", "answered_at", "device_id", "deny_reason", "fraud_reported", "push_otp", "delivery"], "properties": {
            "tx_id": {"type": "string"}, "state": {"type": "string", "enum": ["pending", "approved", "denied", "expired"]},
            "expires_at": {"type": "integer"}, "answered_at": {"type": ["integer", "null"]},
            "device_id": {"type": ["string", "null"], "description": "the device that answered (or entered the last wrong number)"},
            "deny_reason": {"type": ["string", "null"], "enum": ["not_me", "mistake", "wrong_number", null]},
            "fraud_reported": {"type": "boolean", "description": "the user answered \"it was not me\"; pushes to the user are locked"},
            "push_otp": {"type": ["string", "null"], "description": "the approval's push OTP; accepted by /v1/rp/validate with this tx_id only"},
            "delivery": {"type": "array", "description": "one entry per device the challenge was sealed for, by device_id", "items": reference("Delivery")}}},
        "Delivery": {"type": "object", "additionalProperties": false,
            "required": ["device_id", "provider", "state", "at", "error", "fetched", "fetched_at"], "properties": {
            "device_id": {"type": "string"},
            "provider": {"type": "string", "description": "none (the device long-polls), fcm, apns, unifiedpush"},
            "state": {"type": "string", "enum": ["pending", "sent", "failed", "not_configured"], "description": "the wake-up: pending while queued, sent when the provider accepted it, failed, or not_configured (no push token or no sender for its provider)"},
            "at": {"type": ["integer", "null"], "description": "when the wake-up was sent or failed"},
            "error": {"type": ["string", "null"], "description": "why it failed, in short (no token or endpoint)"},
            "fetched": {"type": "boolean", "description": "the device fetched the challenge"},
            "fetched_at": {"type": ["integer", "null"]}}},
        "ValidateRequest": {"type": "object", "required": ["user", "passcode"], "additionalProperties": false, "properties": {
            "user": user_name(),
            "passcode": {"type": "string", "description": "a TOTP/HOTP code or push OTP (digits), or a push trigger: empty, one character, or `push` in any case. A trigger passes the same fatigue rules as any push: it lifts no suppression or lock."},
            "tx_id": {"type": "string", "description": "the push login this passcode completes: a push OTP is accepted only with its own tx_id"},
            "push": reference("PushRequest")}},
        "ValidateResponse": {"oneOf": [
            {"type": "object", "additionalProperties": false, "required": ["result", "method", "credential_id"], "properties": {
                "result": {"const": "accepted"}, "method": {"type": "string", "enum": ["totp", "hotp", "push_otp"]},
                "credential_id": {"type": "string"}}},
            {"type": "object", "additionalProperties": false, "required": ["result", "tx_id", "number", "expires_at", "devices"], "properties": {
                "result": {"const": "push_started"}, "tx_id": {"type": "string"}, "number": {"type": ["string", "null"]},
                "expires_at": {"type": "integer"}, "devices": {"type": "integer"}}}]},
        "OfflineRequest": {"type": "object", "required": ["user"], "additionalProperties": false, "properties": {
            "user": user_name(), "device_id": {"type": "string"}, "timeout_secs": {"type": "integer", "minimum": 30, "maximum": 600}}},
        "OfflineResponse": {"type": "object", "additionalProperties": false, "required": ["id", "question", "qr_payload", "qr_svg", "expires_at"], "properties": {
            "id": {"type": "string"}, "question": {"type": "string"}, "qr_payload": {"type": "string"},
            "qr_svg": {"type": "string"}, "expires_at": {"type": "integer"}}},
        "OfflineVerifyRequest": {"type": "object", "required": ["response"], "additionalProperties": false, "properties": {
            "response": {"type": "string", "description": "the OCRA response the user typed"}}},
        "Accepted": {"type": "object", "additionalProperties": false, "required": ["result", "device_id"], "properties": {
            "result": {"const": "accepted"}, "device_id": {"type": "string"}}},
        "DeviceList": {"type": "array", "items": {"type": "object", "additionalProperties": false,
            "required": ["device_id", "name", "platform", "push_provider", "status", "created_at", "last_seen_at"], "properties": {
            "device_id": {"type": "string"}, "name": {"type": "string"}, "platform": {"type": "string"},
            "push_provider": {"type": "string", "enum": ["none", "fcm", "apns", "unifiedpush"]},
            "status": {"type": "string", "enum": ["active", "removed"]},
            "created_at": {"type": "integer"}, "last_seen_at": {"type": "integer"}}}},
        "Removed": {"type": "object", "additionalProperties": false, "required": ["device_id", "status"], "properties": {
            "device_id": {"type": "string"}, "status": {"const": "removed"}}},
        "OathTokenRequest": {"type": "object", "required": ["kind", "secret_base32"], "additionalProperties": false, "properties": {
            "kind": {"type": "string", "enum": ["hotp", "totp"]},
            "secret_base32": {"type": "string", "description": "RFC 4648 base32 of 10–128 bytes"},
            "algorithm": {"type": "string", "enum": ["SHA1", "SHA256", "SHA512"]},
            "digits": {"type": "integer", "minimum": 6, "maximum": 8}, "period": {"type": "integer", "minimum": 0, "maximum": 4_294_967_295u64},
            "counter": {"type": "integer", "minimum": 0}}},
        "TokenCreated": {"type": "object", "additionalProperties": false, "required": ["token_id"], "properties": {"token_id": {"type": "string"}}},
        "Health": {"type": "object", "additionalProperties": false, "required": ["status"], "properties": {"status": {"type": "string"}}},
        "OpenApi": {"type": "object", "required": ["openapi", "paths"]},
        "SignedMessage": {"type": "object", "required": ["v", "kid", "payload", "sig"], "additionalProperties": false,
            "description": "docs/PROTOCOL.md §2: a payload and its signature, at most 64 KiB",
            "properties": {"v": {"const": 1}, "kid": {"type": "string"}, "payload": {"type": "string"}, "sig": {"type": "string"}}},
        "PendingList": {"type": "object", "additionalProperties": false, "required": ["challenges"], "properties": {
            "challenges": {"type": "array", "items": {"type": "object", "additionalProperties": false, "required": ["tx", "exp"], "properties": {
                "tx": {"type": "string"}, "exp": {"type": "integer"}}}}}},
        "AnswerAccepted": {"type": "object", "additionalProperties": false, "required": ["state"], "properties": {
            "state": {"type": "string", "enum": ["approved", "denied"]},
            "kem_kid": {"type": "string", "description": "the KEM key the server now seals this device's challenges to"}}},
        "PushRegistration": {"oneOf": [
            {"type": "object", "additionalProperties": false, "required": ["type", "token"], "properties": {
                "type": {"type": "string", "enum": ["fcm", "apns"]}, "token": {"type": "string", "minLength": 1, "maxLength": 4096}}},
            {"type": "object", "additionalProperties": false, "required": ["type", "endpoint", "p256dh", "auth"], "properties": {
                "type": {"const": "unifiedpush"}, "endpoint": {"type": "string", "maxLength": 2048},
                "p256dh": {"type": "string"}, "auth": {"type": "string"}}},
            {"type": "object", "additionalProperties": false, "required": ["type"], "properties": {"type": {"const": "none"}}}]},
        "PushProvider": {"type": "object", "additionalProperties": false, "required": ["push_provider"], "properties": {
            "push_provider": {"type": "string", "enum": ["none", "fcm", "apns", "unifiedpush"]}}},
        "KemKeyUpdate": {"type": "object", "additionalProperties": false, "required": ["kem_key"], "properties": {
            "kem_key": {"type": "string", "description": "base64url SEC1 of a P-256 KEM public key the device holds"}}},
        "KemKeyAccepted": {"type": "object", "additionalProperties": false, "required": ["kem_kid"], "properties": {"kem_kid": {"type": "string"}}},
        "Empty": {"type": "object", "additionalProperties": false},
        "ActivationConfirmed": {"type": "object", "additionalProperties": false, "required": ["device_id", "status"], "properties": {
            "device_id": {"type": "string"}, "status": {"type": "string", "enum": ["active", "awaiting_approval"]},
            "tx_id": {"type": "string", "description": "the old device's approval challenge (awaiting_approval only, §14)"}}},
        "Deregistration": {"type": "object", "additionalProperties": false, "required": ["reason"], "properties": {
            "reason": {"type": "string", "enum": ["wiped_on_device"]}}},
        "Resumed": {"type": "object", "additionalProperties": false, "required": ["status"], "properties": {"status": {"const": "resumed"}}},
        "Deregistered": {"type": "object", "additionalProperties": false, "required": ["status"], "properties": {"status": {"const": "removed"}}}
    })
}

/// The document.
pub fn document() -> Value {
    let tx = path_param("tx", "a transaction id", 64);
    let user = path_param("user", "the relying party's user name", 128);
    let mut paths = Map::new();
    let mut add = |path: &str, method: &str, op: Op<'_>| {
        let entry = paths.entry(path.to_owned()).or_insert_with(|| json!({}));
        entry[method] = op.build();
    };
    let with = |auth| {
        move |summary, description, body, ok, errors, params| Op {
            summary,
            description,
            body,
            ok,
            errors,
            params,
            auth,
        }
    };
    let (rp, device, public) = (with(Auth::ApiKey), with(Auth::Device), with(Auth::Public));
    let browser = with(Auth::Browser);
    let login_id = path_param("id", "a QR login id", 64);

    add(
        "/healthz",
        "get",
        public(
            "Health",
            "200 `{\"status\":\"ok\"}` while the database answers, else 503 `{\"status\":\"database unavailable\"}`.",
            None,
            "Health",
            &[503],
            vec![],
        ),
    );
    add(
        "/openapi.json",
        "get",
        public("This document", "", None, "OpenApi", &[], vec![]),
    );
    add(
        "/v1/rp/enrollments",
        "post",
        rp(
            "Create a single-use activation offer",
            "Creates the user if needed. The offer (URI, QR as SVG and PNG, typed code) is single use and lives at most 600 s.",
            Some("EnrollmentRequest"),
            "EnrollmentResponse",
            &[401],
            vec![],
        ),
    );
    add(
        "/v1/rp/push",
        "post",
        rp(
            "Start a push login or transaction approval",
            "Refused with 403 `locked` after a \"not me\" report (until the lock's time passes or an operator unlocks), 429 `suppressed` after repeated misses (denials, wrong numbers, timeouts; lifted by a valid OTP or offline code, an \"it was me\" from an enrolled device, or an operator), 429 `rate_limited` inside the growing wait after misses, over the push window or with too many pending challenges, 404 `no_device` for a user without an active device, 404 `not_found` when `device_id` is not one of the user's active devices.",
            Some("PushRequest"),
            "PushStarted",
            &[401, 403, 404, 429],
            vec![],
        ),
    );
    add(
        "/v1/rp/challenges/{tx}",
        "get",
        rp(
            "Challenge status (long-poll with ?wait=N)",
            "Answers at once when the challenge is no longer pending; holds no database connection while waiting. `device_id` names the device that answered; `delivery` lists, per device the challenge was sealed for, its wake-up's outcome and whether it fetched the challenge.",
            None,
            "ChallengeStatus",
            &[401, 404],
            vec![tx.clone(), wait_param("the challenge is pending")],
        ),
    );
    add(
        "/v1/rp/validate",
        "post",
        rp(
            "Validate a passcode, or start a push",
            "A push OTP needs the `tx_id` of its own login. A trigger (empty, one character, `push`) starts a push under the same rules as /v1/rp/push. Failed passcodes are limited per user (429 `rate_limited`).",
            Some("ValidateRequest"),
            "ValidateResponse",
            &[401, 403, 404, 429],
            vec![],
        ),
    );
    add(
        "/v1/rp/offline",
        "post",
        rp(
            "Create a signed offline QR (OCRA) challenge",
            "",
            Some("OfflineRequest"),
            "OfflineResponse",
            &[401, 404],
            vec![],
        ),
    );
    add(
        "/v1/rp/offline/{id}/verify",
        "post",
        rp(
            "Verify the OCRA response the user typed",
            "Single use, 5 attempts; a verified response also lifts a suppression after misses.",
            Some("OfflineVerifyRequest"),
            "Accepted",
            &[401, 403, 404, 409, 410, 429],
            vec![path_param("id", "the offline challenge id", 64)],
        ),
    );
    add(
        "/v1/rp/users/{user}/devices",
        "get",
        rp(
            "List a user's devices",
            "Oldest first, with their status (`active`, `removed`; unconfirmed activations are not listed), to choose one for `device_id` in POST /v1/rp/push.",
            None,
            "DeviceList",
            &[401, 404],
            vec![user.clone()],
        ),
    );
    add(
        "/v1/rp/users/{user}/devices/{device}",
        "delete",
        rp(
            "Remove a device",
            "Its next request gets 410 `device_removed` and its app wipes the account.",
            None,
            "Removed",
            &[401, 404],
            vec![user.clone(), path_param("device", "the device id", 64)],
        ),
    );
    add(
        "/v1/rp/users/{user}/oath-tokens",
        "post",
        rp(
            "Import a HOTP/TOTP token for passcode validation",
            "",
            Some("OathTokenRequest"),
            "TokenCreated",
            &[401, 404],
            vec![user.clone()],
        ),
    );
    add(
        "/v1/rp/users/{user}/password",
        "put",
        rp(
            "Set a user's static password",
            "The first factor of RADIUS clients in `password_otp` mode (docs/SERVER.md). Creates the user if needed; replaces an earlier password.",
            Some("PasswordRequest"),
            "PasswordStatus",
            &[401],
            vec![user.clone()],
        ),
    );
    add(
        "/v1/rp/users/{user}/password",
        "delete",
        rp(
            "Remove a user's static password",
            "RADIUS `password_otp` sign-ins of the user fail until a new one is set. 404 for an unknown user.",
            None,
            "PasswordStatus",
            &[401, 404],
            vec![user],
        ),
    );

    add(
        "/v1/device/activate",
        "post",
        public(
            "Redeem an activation offer (docs/PROTOCOL.md §3)",
            "The body is the signed activation request (§3.3); the answer is the activation result signed by the server key S (§3.4). Not a signed HTTP request: the request carries its own key and the offer proof.",
            Some("SignedMessage"),
            "SignedMessage",
            &[401, 403, 404, 409, 410, 429],
            vec![],
        ),
    );
    add(
        "/v1/device/activate/confirm",
        "post",
        device(
            "Confirm an activation (phase two, §3.5)",
            "Signed by the Dp of the activation request. Makes the pending device active and uses up the offer; a repeat gets the same answer. 410 `expired` once the offer expired, 401 when a newer activation replaced the pending device. For a transfer's offer (§14): 202 `awaiting_approval` with the old device's challenge (the same on a repeat) until the old device approves; 410 `transfer_denied` after it denied or did not answer in time.",
            Some("Empty"),
            "ActivationConfirmed",
            &[401, 409, 410],
            vec![],
        ),
    );
    add(
        "/v1/device/challenges",
        "get",
        device(
            "Pending challenges (long-poll with ?wait=N&known=…)",
            "Oldest first; answers as soon as the pending set differs from `known` (at once when it already does; without `known`, at once when one is pending). 410 `device_removed` after removal.",
            None,
            "PendingList",
            &[401, 409, 410],
            vec![
                wait_param("the pending set equals `known`"),
                json!({"name": "known", "in": "query", "required": false,
                    "description": "the pending challenge ids the device already holds, comma-separated (at most 64 ids of 1–64 base64url characters; absent or empty: none)",
                    "schema": {"type": "string", "maxLength": 4159,
                        "pattern": "^([A-Za-z0-9_-]{1,64}(,[A-Za-z0-9_-]{1,64}){0,63})?$"}}),
            ],
        ),
    );
    add(
        "/v1/device/challenges/{tx}",
        "get",
        device(
            "Fetch a challenge sealed for this device, signed by S (§4)",
            "",
            None,
            "SignedMessage",
            &[401, 404, 409, 410],
            vec![tx.clone()],
        ),
    );
    add(
        "/v1/device/challenges/{tx}/answer",
        "post",
        device(
            "Answer a challenge (§5)",
            "403 `wrong_number` while tries remain and when the last one ends the challenge; the same answer posted again gets the same acceptance (§5.1).",
            Some("SignedMessage"),
            "AnswerAccepted",
            &[401, 403, 404, 409, 410, 429],
            vec![tx],
        ),
    );
    add(
        "/v1/rp/logins",
        "post",
        rp(
            "Create a QR login (§13)",
            "The page shows `uri` as a QR code; the app that scans it claims the login and shows the request with this context. 404 `no_device` for an unknown user.",
            Some("QrLoginRequest"),
            "QrLoginCreated",
            &[401, 404],
            vec![],
        ),
    );
    add(
        "/v1/logins/{id}",
        "get",
        browser(
            "QR login state for the page (long-poll with ?wait=N)",
            "Answers at once unless the login is `waiting` or `scanned`. An unknown id and a wrong handle both answer 404 `not_found`.",
            None,
            "QrLoginStatus",
            &[401, 404],
            vec![
                login_id.clone(),
                wait_param("the login is waiting or scanned"),
            ],
        ),
    );
    add(
        "/v1/logins/{id}/number",
        "post",
        browser(
            "Type the number the phone shows (reverse number matching)",
            "400 unless the login is `number_required`; 403 `wrong_number` with tries left; the last wrong number ends it `denied`.",
            Some("QrNumber"),
            "QrLoginStatus",
            &[401, 403, 404],
            vec![login_id.clone()],
        ),
    );
    add(
        "/v1/device/logins/{id}/claim",
        "post",
        device(
            "Claim a scanned QR login; get its challenge (§13)",
            "The answer is the challenge sealed for this device and signed by S, as GET /v1/device/challenges/{tx} returns it; answer it there. The same device claiming again gets the same challenge. 404 for an unknown id or a wrong secret, 409 `already_answered` when another device claimed it, 410 `expired`, 403 `wrong_account` for another relying party's or user's device.",
            Some("LoginClaim"),
            "SignedMessage",
            &[401, 403, 404, 409, 410],
            vec![login_id],
        ),
    );
    add(
        "/v1/device/push",
        "put",
        device(
            "Update the push registration",
            "",
            Some("PushRegistration"),
            "PushProvider",
            &[401, 409, 410],
            vec![],
        ),
    );
    add(
        "/v1/device/webpush",
        "get",
        public(
            "The VAPID public key for UnifiedPush registrations",
            "The key (base64url of the uncompressed P-256 point) a device passes to its UnifiedPush distributor before it registers `{\"type\":\"unifiedpush\",…}`; `null` when the server sends no Web Push. It changes when the operator rotates the VAPID key: a device that registered with another key re-registers (docs/PROTOCOL.md §12.4).",
            None,
            "WebPushKey",
            &[],
            vec![],
        ),
    );
    add(
        "/v1/device/kem",
        "put",
        device(
            "Name the KEM key to seal to from now on (§7.1)",
            "",
            Some("KemKeyUpdate"),
            "KemKeyAccepted",
            &[401, 409, 410],
            vec![],
        ),
    );
    add(
        "/v1/device/resume",
        "post",
        device(
            "\"It was me\": lift the user's push suppression (§12.6)",
            "Does not lift a lock after a \"not me\" report.",
            Some("Empty"),
            "Resumed",
            &[401, 409, 410],
            vec![],
        ),
    );
    add(
        "/v1/device/transfers",
        "post",
        device(
            "Move this account to a new phone (§14)",
            "Body `{\"remove_old\":bool}` (or empty). The answer is an activation offer for the user (URI for the QR, typed code, expiry); the new phone activates with it, and this device approves the new phone with a signed answer to a `transfer` challenge.",
            Some("TransferRequest"),
            "TransferStarted",
            &[401, 409, 410],
            vec![],
        ),
    );
    add(
        "/v1/device",
        "delete",
        device(
            "Deregister this device (§7.3)",
            "An empty body, or `{\"reason\":\"wiped_on_device\"}` after a local wipe. The device's pending challenges end (`expired`) unless another active device of the user can answer them.",
            Some("Deregistration"),
            "Deregistered",
            &[401, 409, 410],
            vec![],
        ),
    );
    add(
        "/metrics",
        "get",
        public(
            "Prometheus metrics",
            "This instance's counters, gauges and histograms in the OpenMetrics text format (pushes by outcome, wake-ups by provider, push-to-answer latency, waiting long-polls, database errors, RADIUS requests). Served while the configuration's `metrics` is true (the default). See docs/SERVER.md.",
            None,
            "Health",
            &[],
            vec![],
        ),
    );
    if let Some(confirm) = paths.get_mut("/v1/device/activate/confirm") {
        // A transfer's new phone waits for the old device's approval (§14).
        confirm["post"]["responses"]["202"] = json!({"description": "Awaiting the old device's approval",
            "content": {"application/json": {"schema": reference("ActivationConfirmed")}}});
    }
    if let Some(transfers) = paths.get_mut("/v1/device/transfers") {
        // An empty body is `{"remove_old":false}`.
        transfers["post"]["requestBody"]["required"] = json!(false);
    }
    if let Some(delete) = paths.get_mut("/v1/device") {
        // The reason is optional: an empty body deregisters too.
        delete["delete"]["requestBody"]["required"] = json!(false);
    }

    if let Some(get) = paths.get_mut("/metrics") {
        // Text, not JSON.
        get["get"]["responses"]["200"] = json!({"description": "OpenMetrics text",
            "content": {"application/openmetrics-text": {"schema": {"type": "string"}}}});
    }
    // The health check's 503 carries its own body, not the error shape.
    if let Some(get) = paths.get_mut("/healthz") {
        get["get"]["responses"]["503"] = json!({"description": "database unavailable",
            "content": {"application/json": {"schema": reference("Health")}}});
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Countersign API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The relying-party API (`/v1/rp/…`, `Authorization: Bearer csk_<key id>.<secret>`) and the device API (`/v1/device/…`, requests signed by the device: docs/PROTOCOL.md §7 and §12). Every error is `{\"error\":{\"code\",\"message\"}}`; unknown routes answer 404 `not_found`, wrong methods 405 `method_not_allowed`. Every response carries `x-request-id`: the request's own when it is 1–64 visible ASCII characters, else a fresh `req_…`; the server's log lines of the request carry it."
        },
        "security": [{"apiKey": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"},
                "browserHandle": {"type": "http", "scheme": "bearer", "description": "the browser_handle of a QR login"}},
            "responses": {"Error": {"description": "Error", "content": {"application/json": {"schema": reference("Error")}}}},
            "schemas": schemas()
        }
    })
}
