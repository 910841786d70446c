-- Accounts keep the seed's user_info columns; app_key holds the SHA-256 hex digest.
CREATE TABLE user_info (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  user_name VARCHAR(64) NOT NULL DEFAULT '',
  app_key VARCHAR(64) NOT NULL DEFAULT '',
  token_total INTEGER NOT NULL DEFAULT 0,
  token_use INTEGER NOT NULL DEFAULT 0,
  created_at TEXT DEFAULT NULL,
  updated_at TEXT DEFAULT NULL,
  password_hash VARCHAR(255) DEFAULT NULL,
  disabled INTEGER NOT NULL DEFAULT 0,
  deleted_at TEXT DEFAULT NULL
);
CREATE UNIQUE INDEX uiq_user_name ON user_info (user_name);
CREATE UNIQUE INDEX uiq_app_key ON user_info (app_key);

CREATE TABLE ledger_entry (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  account_id INTEGER NOT NULL REFERENCES user_info (id),
  delta INTEGER NOT NULL,
  kind VARCHAR(16) NOT NULL,
  reference VARCHAR(128) NOT NULL DEFAULT '',
  created_at TEXT NOT NULL
);
CREATE INDEX ix_ledger_account ON ledger_entry (account_id, id);

CREATE TABLE redemption_code (
  code CHAR(16) NOT NULL PRIMARY KEY,
  credits INTEGER NOT NULL,
  created_at TEXT NOT NULL,
  expires_at TEXT DEFAULT NULL,
  redeemed_by INTEGER DEFAULT NULL REFERENCES user_info (id),
  redeemed_at TEXT DEFAULT NULL
);

CREATE TABLE task (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  task_id VARCHAR(32) NOT NULL,
  account_id INTEGER NOT NULL REFERENCES user_info (id),
  provider VARCHAR(16) NOT NULL,
  action VARCHAR(32) NOT NULL,
  prompt TEXT NOT NULL,
  params TEXT NOT NULL,
  parent_task_id VARCHAR(32) DEFAULT NULL,
  status VARCHAR(16) NOT NULL,
  progress INTEGER NOT NULL DEFAULT 0,
  image_url TEXT DEFAULT NULL,
  fail_reason TEXT DEFAULT NULL,
  trigger_id VARCHAR(64) DEFAULT NULL,
  msg_id VARCHAR(32) DEFAULT NULL,
  msg_hash VARCHAR(64) DEFAULT NULL,
  provider_ref VARCHAR(128) DEFAULT NULL,
  result TEXT NOT NULL,
  cost INTEGER NOT NULL,
  refunded INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL,
  started_at TEXT DEFAULT NULL,
  finished_at TEXT DEFAULT NULL
);
CREATE UNIQUE INDEX uiq_task_id ON task (task_id);
CREATE INDEX ix_task_account ON task (account_id, id);
CREATE INDEX ix_task_trigger ON task (trigger_id);
CREATE INDEX ix_task_status ON task (provider, status);

CREATE TABLE mjcore_setting (
  name VARCHAR(64) NOT NULL PRIMARY KEY,
  value TEXT NOT NULL
);
