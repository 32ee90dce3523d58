-- Quality monitors judge windows of labelled predictions in the order their labels arrived: a
-- second cursor per monitor, over (feedback time, prediction id).
ALTER TABLE monitors ADD COLUMN label_cursor_time BIGINT NOT NULL DEFAULT 0;
ALTER TABLE monitors ADD COLUMN label_cursor_id TEXT NOT NULL DEFAULT '';
CREATE INDEX prediction_feedback_by_time ON prediction_feedback (time, prediction_id);
