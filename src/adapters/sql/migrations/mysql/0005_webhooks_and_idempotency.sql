-- The outbox of client callbacks: a row per event per hook, written in the transaction that
-- moves the task; senders claim due rows (SKIP LOCKED) and record each attempt.
CREATE TABLE webhook_delivery (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  webhook_id VARCHAR(40) NOT NULL,
  task_id VARCHAR(32) NOT NULL,
  event VARCHAR(32) NOT NULL,
  url VARCHAR(2048) NOT NULL,
  style VARCHAR(16) NOT NULL,
  status VARCHAR(16) NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at DATETIME(6) NOT NULL,
  payload MEDIUMTEXT DEFAULT NULL,
  last_status INTEGER DEFAULT NULL,
  last_error VARCHAR(255) DEFAULT NULL,
  created_at DATETIME(6) NOT NULL,
  delivered_at DATETIME(6) DEFAULT NULL,
  CONSTRAINT uiq_webhook_id UNIQUE (webhook_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX ix_webhook_due ON webhook_delivery (status, next_attempt_at);
CREATE INDEX ix_webhook_task ON webhook_delivery (task_id, id);

-- Idempotency-Key: claimed in the transaction of the debit it guards, its answer kept.
CREATE TABLE idempotency_key (
  account_id BIGINT NOT NULL,
  idem_key VARCHAR(255) NOT NULL,
  request_hash VARCHAR(64) NOT NULL,
  claim_id VARCHAR(32) NOT NULL,
  state VARCHAR(16) NOT NULL,
  task_id VARCHAR(32) DEFAULT NULL,
  response_status INTEGER DEFAULT NULL,
  response_body MEDIUMTEXT DEFAULT NULL,
  created_at DATETIME(6) NOT NULL,
  expires_at DATETIME(6) NOT NULL,
  PRIMARY KEY (account_id, idem_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX ix_idempotency_expiry ON idempotency_key (expires_at);
