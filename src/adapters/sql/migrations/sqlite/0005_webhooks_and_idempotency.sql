-- The outbox of client callbacks: a row per event per hook, written in the transaction that
-- moves the task; senders claim due rows (SKIP LOCKED) and record each attempt.
CREATE TABLE webhook_delivery (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  webhook_id VARCHAR(40) NOT NULL,
  task_id VARCHAR(32) NOT NULL,
  event VARCHAR(32) NOT NULL,
  url VARCHAR(2048) NOT NULL,
  style VARCHAR(16) NOT NULL,
  status VARCHAR(16) NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TEXT NOT NULL,
  payload TEXT DEFAULT NULL,
  last_status INTEGER DEFAULT NULL,
  last_error VARCHAR(255) DEFAULT NULL,
  created_at TEXT NOT NULL,
  delivered_at TEXT DEFAULT NULL,
  CONSTRAINT uiq_webhook_id UNIQUE (webhook_id)
);
CREATE INDEX ix_webhook_due ON webhook_delivery (status, next_attempt_at);
CREATE INDEX ix_webhook_task ON webhook_delivery (task_id, id);

-- Idempotency-Key: claimed in the transaction of the debit it guards, its answer kept.
CREATE TABLE idempotency_key (
  account_id INTEGER NOT NULL,
  idem_key VARCHAR(255) NOT NULL,
  request_hash VARCHAR(64) NOT NULL,
  claim_id VARCHAR(32) NOT NULL,
  state VARCHAR(16) NOT NULL,
  task_id VARCHAR(32) DEFAULT NULL,
  response_status INTEGER DEFAULT NULL,
  response_body TEXT DEFAULT NULL,
  created_at TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  PRIMARY KEY (account_id, idem_key)
);
CREATE INDEX ix_idempotency_expiry ON idempotency_key (expires_at);
