-- Two-phase activation (issue 12). `POST /v1/device/activate` stores the device
-- with status 'pending' and the offer it came from; the signed confirmation
-- (`POST /v1/device/activate/confirm`) marks the offer used and the device
-- 'active' in one transaction. A later activate for the same offer deletes the
-- earlier pending device of that offer, and the janitor deletes pending devices
-- of expired or used offers. Devices activated before this migration have no
-- offer_id (they are active already).
ALTER TABLE devices ADD COLUMN offer_id TEXT;
CREATE INDEX devices_offer ON devices (offer_id);
