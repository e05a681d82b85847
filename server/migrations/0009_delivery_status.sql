-- Wake-up delivery per targeted device (issue 15), shown in the RP's challenge
-- status: the provider the wake-up went through (`none`: the device long-polls),
-- its outcome (`pending` while queued, `sent`, `failed`, `not_configured`: no
-- push token or no sender for its provider), when, and a short reason on
-- failure (never a token or endpoint). `fetched_at` (0001) says whether the
-- device fetched the challenge.
ALTER TABLE challenge_deliveries ADD COLUMN wake_provider TEXT NOT NULL DEFAULT 'none';
ALTER TABLE challenge_deliveries ADD COLUMN wake_state TEXT NOT NULL DEFAULT 'not_configured';
ALTER TABLE challenge_deliveries ADD COLUMN wake_at BIGINT;
ALTER TABLE challenge_deliveries ADD COLUMN wake_error TEXT;
