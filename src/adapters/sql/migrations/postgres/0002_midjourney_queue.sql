-- The Midjourney queue lives in the task table: holds_slot marks a job running at Discord.
ALTER TABLE task ADD COLUMN holds_slot SMALLINT NOT NULL DEFAULT 0;
CREATE INDEX ix_task_slot ON task (provider, holds_slot);
CREATE INDEX ix_task_msg ON task (msg_id);

-- One row per provider queue; admissions lock it so limits hold across processes.
CREATE TABLE provider_queue (
  name VARCHAR(32) NOT NULL PRIMARY KEY,
  version BIGINT NOT NULL DEFAULT 0
);
INSERT INTO provider_queue (name, version) VALUES ('midjourney', 0);
