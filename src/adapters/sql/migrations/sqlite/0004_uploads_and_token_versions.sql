-- Bumped by set-password and rotate-key: a JWT carries the version it was issued under,
-- so those end every session at once.
ALTER TABLE user_info ADD COLUMN token_version INTEGER NOT NULL DEFAULT 0;

-- Who uploaded what: /describe and /message act only on the caller's own uploads.
CREATE TABLE upload (
  trigger_id VARCHAR(64) NOT NULL PRIMARY KEY,
  account_id INTEGER NOT NULL REFERENCES user_info (id),
  upload_filename VARCHAR(256) NOT NULL,
  created_at TEXT NOT NULL
);
