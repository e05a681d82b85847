-- Static passwords (issue 14): the RADIUS `password_otp` mode checks a user's
-- password before the second factor. PHC string of Argon2id, set and removed
-- through `PUT/DELETE /v1/rp/users/{user}/password`; NULL: none set.
ALTER TABLE users ADD COLUMN password_hash TEXT;
