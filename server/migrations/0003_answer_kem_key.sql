-- The KEM key id an accepted answer rotated the device to: a retry of the same
-- answer (its response was lost) is recognised and gets the same acceptance.
ALTER TABLE challenges ADD COLUMN answer_kem_key_id TEXT;
