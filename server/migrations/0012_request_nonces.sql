-- Used request nonces keyed by the signed timestamp first (issue 16). A replay is
-- the same signed request, so it carries the same timestamp and hits the same
-- key. Keyed by (device, nonce), every insert went to a random page of the
-- index; keyed by time, inserts go to its end and the sweep deletes from its
-- start, with no separate expiry index.
--
-- `used_nonces` stays, unwritten, until its rows expire: the nonces it holds
-- from before this migration are still checked (by device and nonce), so the
-- upgrade opens no replay window.
CREATE TABLE request_nonces (
    signed_at BIGINT NOT NULL,
    device_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    PRIMARY KEY (signed_at, device_id, nonce)
);
