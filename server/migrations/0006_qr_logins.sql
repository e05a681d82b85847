-- QR logins (issue 14): the login page shows a QR naming one of these; the app
-- that scans it claims it over its signed channel, and the server seals an
-- ordinary challenge for that device (tx_id). Secrets are kept as SHA-256
-- hashes: the QR's one-time secret, and the browser handle only the page polls
-- with. user_id NULL: usernameless, any active device of the RP may claim it.
CREATE TABLE qr_logins (
    id TEXT PRIMARY KEY,
    rp_id TEXT NOT NULL REFERENCES relying_parties(id) ON DELETE CASCADE,
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    secret_hash TEXT NOT NULL,
    handle_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    verification TEXT NOT NULL,
    -- 'off', or 'show': the phone shows `number` and the user types it on the page.
    number_mode TEXT NOT NULL,
    number TEXT,
    number_failures BIGINT NOT NULL DEFAULT 0,
    number_entered_at BIGINT,
    -- Context (rp, ip, location, user_agent) and text, JSON.
    request TEXT NOT NULL,
    -- Set once, when a device claims the login.
    device_id TEXT,
    tx_id TEXT
);
CREATE INDEX qr_logins_expires ON qr_logins (expires_at);
