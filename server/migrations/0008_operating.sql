-- Operating (issue 15).
-- A name an operator gives an API key ("billing backend", "rotated 2026-12").
ALTER TABLE api_keys ADD COLUMN label TEXT NOT NULL DEFAULT '';
-- `revoked_at` may now lie in the future: a rotated key keeps working until
-- the end of its grace period. A key is valid while revoked_at IS NULL OR
-- revoked_at > now.
-- The verification policy new enrollments of this relying party get (the
-- activation result's `policy`, JSON); NULL: the server's default.
ALTER TABLE relying_parties ADD COLUMN account_policy TEXT;
