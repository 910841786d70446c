-- The Midjourney queue lives in the task table: holds_slot marks a job running at Discord.
ALTER TABLE task ADD COLUMN holds_slot SMALLINT NOT NULL DEFAULT 0;
-- msg_id is set when a job ends: only those rows need the index
CREATE INDEX ix_task_msg ON task (msg_id) WHERE msg_id IS NOT NULL;

-- One row per provider queue: the counters every admission reads and every slot change
-- moves, locked for the length of the transaction (so limits hold across processes).
CREATE TABLE provider_queue (
  name VARCHAR(32) NOT NULL PRIMARY KEY,
  running INTEGER NOT NULL DEFAULT 0,
  waiting INTEGER NOT NULL DEFAULT 0
);
INSERT INTO provider_queue (name, running, waiting) VALUES ('midjourney',
  (SELECT COUNT(*) FROM task WHERE provider = 'midjourney' AND holds_slot = 1),
  (SELECT COUNT(*) FROM task WHERE provider = 'midjourney' AND status = 'NOT_START'));
