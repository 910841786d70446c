-- A running job's latest event: the idle timeout counts from it, not from the start.
ALTER TABLE task ADD COLUMN last_event_at DATETIME(6) DEFAULT NULL;

-- Leases: one holder at a time per name (e.g. the Discord listener of a channel),
-- taken over by another process once expires_at has passed.
CREATE TABLE lease (
  name VARCHAR(128) NOT NULL,
  holder VARCHAR(128) NOT NULL,
  expires_at DATETIME(6) NOT NULL,
  PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
