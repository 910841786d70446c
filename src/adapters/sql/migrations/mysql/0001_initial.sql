-- Accounts keep the seed's user_info columns; app_key holds the SHA-256 hex digest.
-- utf8mb4_bin: names and codes compare exactly, as on SQLite and PostgreSQL.
CREATE TABLE user_info (
  id BIGINT NOT NULL AUTO_INCREMENT,
  user_name VARCHAR(64) NOT NULL DEFAULT '',
  app_key VARCHAR(64) NOT NULL DEFAULT '',
  token_total INT NOT NULL DEFAULT 0,
  token_use INT NOT NULL DEFAULT 0,
  created_at DATETIME(6) DEFAULT NULL,
  updated_at DATETIME(6) DEFAULT NULL,
  password_hash VARCHAR(255) DEFAULT NULL,
  disabled TINYINT NOT NULL DEFAULT 0,
  deleted_at DATETIME(6) DEFAULT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uiq_user_name (user_name),
  UNIQUE KEY uiq_app_key (app_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT='Midjourney 用户信息表';

CREATE TABLE ledger_entry (
  id BIGINT NOT NULL AUTO_INCREMENT,
  account_id BIGINT NOT NULL,
  delta INT NOT NULL,
  kind VARCHAR(16) NOT NULL,
  reference VARCHAR(128) NOT NULL DEFAULT '',
  created_at DATETIME(6) NOT NULL,
  PRIMARY KEY (id),
  KEY ix_ledger_account (account_id, id),
  CONSTRAINT fk_ledger_account FOREIGN KEY (account_id) REFERENCES user_info (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE redemption_code (
  code CHAR(16) NOT NULL,
  credits INT NOT NULL,
  created_at DATETIME(6) NOT NULL,
  expires_at DATETIME(6) DEFAULT NULL,
  redeemed_by BIGINT DEFAULT NULL,
  redeemed_at DATETIME(6) DEFAULT NULL,
  PRIMARY KEY (code),
  CONSTRAINT fk_code_account FOREIGN KEY (redeemed_by) REFERENCES user_info (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE task (
  id BIGINT NOT NULL AUTO_INCREMENT,
  task_id VARCHAR(32) NOT NULL,
  account_id BIGINT NOT NULL,
  provider VARCHAR(16) NOT NULL,
  action VARCHAR(32) NOT NULL,
  prompt TEXT NOT NULL,
  params TEXT NOT NULL,
  parent_task_id VARCHAR(32) DEFAULT NULL,
  status VARCHAR(16) NOT NULL,
  progress INT NOT NULL DEFAULT 0,
  image_url TEXT DEFAULT NULL,
  fail_reason TEXT DEFAULT NULL,
  trigger_id VARCHAR(64) DEFAULT NULL,
  msg_id VARCHAR(32) DEFAULT NULL,
  msg_hash VARCHAR(64) DEFAULT NULL,
  provider_ref VARCHAR(128) DEFAULT NULL,
  result TEXT NOT NULL,
  cost INT NOT NULL,
  refunded TINYINT NOT NULL DEFAULT 0,
  created_at DATETIME(6) NOT NULL,
  started_at DATETIME(6) DEFAULT NULL,
  finished_at DATETIME(6) DEFAULT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uiq_task_id (task_id),
  KEY ix_task_account (account_id, id),
  KEY ix_task_trigger (trigger_id),
  KEY ix_task_status (provider, status),
  CONSTRAINT fk_task_account FOREIGN KEY (account_id) REFERENCES user_info (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE mjcore_setting (
  name VARCHAR(64) NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
