-- Monitors read predictions and labels in the order they were committed, not by their time:
-- a record written late (the log writes in batches, behind a queue) must not fall behind a
-- cursor that already passed its time. Every prediction and every label gets a sequence
-- number from a counter row, taken first in its writing transaction: the row's lock holds
-- other writers until commit, so sequence order is commit order. Existing rows are numbered
-- in (time, id) order; monitors' cursors move to the numbers they had reached.
ALTER TABLE predictions ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
UPDATE predictions SET seq = n.seq FROM (SELECT id, row_number() OVER (ORDER BY time, id) AS seq FROM predictions) n WHERE n.id = predictions.id;
CREATE INDEX predictions_by_deployment_seq ON predictions (deployment, seq);
ALTER TABLE prediction_feedback ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
UPDATE prediction_feedback SET seq = n.seq FROM (SELECT prediction_id, row_number() OVER (ORDER BY time, prediction_id) AS seq FROM prediction_feedback) n WHERE n.prediction_id = prediction_feedback.prediction_id;
CREATE INDEX prediction_feedback_by_seq ON prediction_feedback (seq);
CREATE TABLE log_sequences (name TEXT PRIMARY KEY, last BIGINT NOT NULL);
INSERT INTO log_sequences (name, last) VALUES ('predictions', (SELECT COALESCE(MAX(seq), 0) FROM predictions));
INSERT INTO log_sequences (name, last) VALUES ('feedback', (SELECT COALESCE(MAX(seq), 0) FROM prediction_feedback));
ALTER TABLE monitors ADD COLUMN cursor_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE monitors ADD COLUMN label_cursor_seq BIGINT NOT NULL DEFAULT 0;
UPDATE monitors SET cursor_seq = (SELECT COALESCE(MAX(p.seq), 0) FROM predictions p WHERE p.deployment = monitors.deployment
    AND (p.time < monitors.cursor_time OR (p.time = monitors.cursor_time AND p.id <= monitors.cursor_id)));
UPDATE monitors SET label_cursor_seq = (SELECT COALESCE(MAX(f.seq), 0) FROM prediction_feedback f JOIN predictions p ON p.id = f.prediction_id
    WHERE p.deployment = monitors.deployment
    AND (f.time < monitors.label_cursor_time OR (f.time = monitors.label_cursor_time AND f.prediction_id <= monitors.label_cursor_id)));
