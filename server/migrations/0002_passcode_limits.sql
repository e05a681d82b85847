-- Failed passcode validations per user (`/v1/rp/validate`, offline responses):
-- a fixed window that starts at the first failure; a success resets it.
ALTER TABLE users ADD COLUMN otp_fail_window_start BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN otp_fail_count BIGINT NOT NULL DEFAULT 0;
