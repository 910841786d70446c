-- The Midjourney queue lives in the task table: holds_slot marks a job running at Discord.
ALTER TABLE task ADD COLUMN holds_slot TINYINT NOT NULL DEFAULT 0;
CREATE INDEX ix_task_msg ON task (msg_id);

-- One row per provider queue: the counters every admission reads and every slot change
-- moves, locked for the length of the transaction (so limits hold across processes).
CREATE TABLE provider_queue (
  name VARCHAR(32) NOT NULL,
  running INT NOT NULL DEFAULT 0,
  waiting INT NOT NULL DEFAULT 0,
  PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO provider_queue (name, running, waiting) VALUES ('midjourney',
  (SELECT COUNT(*) FROM task WHERE provider = 'midjourney' AND holds_slot = 1),
  (SELECT COUNT(*) FROM task WHERE provider = 'midjourney' AND status = 'NOT_START'));
