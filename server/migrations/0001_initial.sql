-- Countersign server schema v1. One file for SQLite and PostgreSQL: only TEXT and
-- BIGINT columns (binary values are base64url; booleans are 0/1), application-made
-- ids, and statements both dialects accept.

CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE relying_parties (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    webhook_url TEXT,
    -- HMAC key for webhooks, sealed with the master key.
    webhook_secret TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    key_id TEXT PRIMARY KEY,
    rp_id TEXT NOT NULL REFERENCES relying_parties(id) ON DELETE CASCADE,
    -- SHA-256 of the 256-bit random secret (a slow hash adds nothing for random keys).
    key_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    rp_id TEXT NOT NULL REFERENCES relying_parties(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    push_window_start BIGINT NOT NULL DEFAULT 0,
    push_count BIGINT NOT NULL DEFAULT 0,
    denial_streak BIGINT NOT NULL DEFAULT 0,
    suppressed BIGINT NOT NULL DEFAULT 0,
    fraud_reports BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    UNIQUE (rp_id, name)
);

CREATE TABLE enrollment_offers (
    -- The offer id (8 Crockford base32 characters).
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- The offer secret, sealed with the master key (the activation proof is an
    -- HMAC keyed with it, so the server needs the secret itself, not a hash).
    secret TEXT NOT NULL,
    issuer TEXT,
    label TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    used_at BIGINT,
    device_id TEXT
);

CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    -- The account id the device holds (one per enrollment).
    account_id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL DEFAULT '',
    platform TEXT NOT NULL DEFAULT '',
    -- Public keys: base64url SEC1 uncompressed.
    possession_key TEXT NOT NULL,
    possession_key_id TEXT NOT NULL UNIQUE,
    verification_key TEXT,
    kem_key TEXT NOT NULL,
    kem_key_id TEXT NOT NULL,
    push_provider TEXT NOT NULL DEFAULT 'none',
    push_token TEXT,
    status TEXT NOT NULL DEFAULT 'active',
    -- OTP seed, sealed (AES-256-GCM) with the master key.
    otp_seed TEXT NOT NULL,
    otp_algorithm TEXT NOT NULL,
    otp_digits BIGINT NOT NULL,
    otp_period BIGINT NOT NULL,
    hotp_counter BIGINT NOT NULL DEFAULT 0,
    totp_last_step BIGINT NOT NULL DEFAULT -1,
    totp_drift BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    removed_at BIGINT,
    removed_reason TEXT
);
CREATE INDEX devices_user ON devices (user_id);

CREATE TABLE challenges (
    id TEXT PRIMARY KEY,
    rp_id TEXT NOT NULL REFERENCES relying_parties(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    number_mode TEXT NOT NULL,
    number TEXT,
    verification TEXT NOT NULL,
    -- The RP's request (context and display), JSON.
    request TEXT NOT NULL,
    -- Sealed webhook target snapshot is not kept: webhooks use the RP's current settings.
    answered_at BIGINT,
    answered_by TEXT,
    deny_reason TEXT,
    -- The push OTP the device returned with an approval, sealed with the master key.
    push_otp TEXT,
    push_otp_used BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX challenges_user_state ON challenges (user_id, state);

-- One sealed copy per target device (each device has its own KEM key).
CREATE TABLE challenge_deliveries (
    tx_id TEXT NOT NULL REFERENCES challenges(id) ON DELETE CASCADE,
    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    -- SHA-256 of the challenge plaintext exactly as sealed for this device, and
    -- the plaintext itself (base64url) to rebuild the expectation for the answer.
    display_hash TEXT NOT NULL,
    plaintext TEXT NOT NULL,
    -- The signed, sealed challenge as sent to the device (JSON).
    sealed TEXT NOT NULL,
    kem_key_id TEXT NOT NULL,
    fetched_at BIGINT,
    PRIMARY KEY (tx_id, device_id)
);
CREATE INDEX challenge_deliveries_device ON challenge_deliveries (device_id);

-- OATH tokens that are not Countersign devices (imported hardware or soft tokens):
-- checked by passcode validation like a device's OTP seed.
CREATE TABLE oath_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    secret TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    digits BIGINT NOT NULL,
    period BIGINT NOT NULL,
    hotp_counter BIGINT NOT NULL DEFAULT 0,
    totp_last_step BIGINT NOT NULL DEFAULT -1,
    totp_drift BIGINT NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'active',
    created_at BIGINT NOT NULL
);
CREATE INDEX oath_tokens_user ON oath_tokens (user_id);

CREATE TABLE offline_challenges (
    id TEXT PRIMARY KEY,
    rp_id TEXT NOT NULL REFERENCES relying_parties(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    suite TEXT NOT NULL,
    question TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    used_at BIGINT
);

-- Device request nonces, kept until their timestamp can no longer be accepted.
CREATE TABLE used_nonces (
    device_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, nonce)
);
CREATE INDEX used_nonces_expiry ON used_nonces (expires_at);

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    rp_id TEXT,
    user_id TEXT,
    device_id TEXT,
    tx_id TEXT,
    event TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_user ON audit_log (user_id, at);
