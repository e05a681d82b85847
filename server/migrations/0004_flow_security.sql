-- Flow security (issue 12).
-- The growing wait between pushes after denials and timeouts: no push before this.
ALTER TABLE users ADD COLUMN next_push_at BIGINT NOT NULL DEFAULT 0;
-- Pushes locked after a "not me" fraud report until this time (an operator may
-- unlock earlier; the largest BIGINT means "until an operator unlocks").
ALTER TABLE users ADD COLUMN locked_until BIGINT NOT NULL DEFAULT 0;
-- Wrong numbers entered on the phone for this challenge, and the `next_kem` key
-- ids of those answers, space-separated (a retried answer is not counted twice).
ALTER TABLE challenges ADD COLUMN number_failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE challenges ADD COLUMN number_failure_kids TEXT NOT NULL DEFAULT '';
