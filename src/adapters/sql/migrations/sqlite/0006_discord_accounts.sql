-- The pool of Discord accounts that run Midjourney jobs. Tokens are sealed (encrypted)
-- before they are written; running moves with the queue row's lock held.
CREATE TABLE discord_account (
  name VARCHAR(64) NOT NULL PRIMARY KEY,
  guild_id VARCHAR(20) NOT NULL,
  channel_id VARCHAR(20) NOT NULL,
  user_token TEXT NOT NULL,
  bot_token TEXT DEFAULT NULL,
  concurrency INTEGER NOT NULL,
  queue_size INTEGER NOT NULL,
  mode VARCHAR(8) NOT NULL DEFAULT 'any',
  enabled INTEGER NOT NULL DEFAULT 1,
  health VARCHAR(16) NOT NULL DEFAULT 'healthy',
  health_reason VARCHAR(255) DEFAULT NULL,
  last_error VARCHAR(255) DEFAULT NULL,
  running INTEGER NOT NULL DEFAULT 0,
  jobs INTEGER NOT NULL DEFAULT 0,
  failures INTEGER NOT NULL DEFAULT 0,
  last_used_at TEXT DEFAULT NULL,
  created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX uiq_discord_channel ON discord_account (channel_id);

-- Which account ran a job (a follow-up waits for its grid's); which took an upload.
ALTER TABLE task ADD COLUMN worker VARCHAR(64) DEFAULT NULL;
ALTER TABLE upload ADD COLUMN worker VARCHAR(64) DEFAULT NULL;
