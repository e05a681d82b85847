-- Retention (issue 16): the background pruning finds old rows by these.
CREATE INDEX challenges_expiry ON challenges (expires_at);
CREATE INDEX enrollment_offers_expiry ON enrollment_offers (expires_at);
CREATE INDEX offline_challenges_expiry ON offline_challenges (expires_at);
CREATE INDEX audit_log_at ON audit_log (at);
