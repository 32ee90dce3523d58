-- Alerts have a lifecycle (Alertmanager's model): one per condition, firing while windows show
-- it, resolved by the first window that does not. Alerts from before were point-in-time
-- notices: they are recorded as resolved when they were raised.
ALTER TABLE alerts ADD COLUMN status TEXT NOT NULL DEFAULT 'firing';
ALTER TABLE alerts ADD COLUMN last_seen BIGINT NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN notified_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN resolved_at BIGINT;
UPDATE alerts SET status = 'resolved', last_seen = time, notified_at = time, resolved_at = time;
CREATE INDEX alerts_open ON alerts (deployment, status);
