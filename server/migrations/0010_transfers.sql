-- Moving to a new phone (issue 15, docs/PROTOCOL.md §14). An enrolled device
-- starts a transfer: an ordinary activation offer for its user plus this row.
-- The new phone activates with the offer as usual; its confirmation does not
-- activate it but creates one challenge (kind 'transfer', tx_id) for the old
-- device only. The old device's approval uses the offer and activates the new
-- device (and removes the old one when remove_old); a denial or expiry uses
-- the offer up so nothing becomes active.
CREATE TABLE transfers (
    offer_id TEXT PRIMARY KEY REFERENCES enrollment_offers(id) ON DELETE CASCADE,
    old_device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    remove_old BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    -- 'started' (no confirmation yet), 'awaiting' (challenge sent to the old
    -- device), 'approved', 'denied' (also: expired unanswered).
    state TEXT NOT NULL,
    -- The pending device whose confirmation created tx_id (a newer activation
    -- of the offer replaces both).
    new_device_id TEXT,
    tx_id TEXT,
    decided_at BIGINT
);
CREATE INDEX transfers_tx ON transfers (tx_id);
