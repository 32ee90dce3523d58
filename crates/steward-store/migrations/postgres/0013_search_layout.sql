-- PostgreSQL counterpart of SQLite's 0013: every metric filter tests is_nan, so the
-- latest-metric search index carries it; the key/value indexes carry run_uuid so a filter is
-- answered by an index-only scan.
DROP INDEX latest_metrics_by_key_value;
CREATE INDEX latest_metrics_by_key_value ON latest_metrics (key, is_nan, value, run_uuid);
DROP INDEX params_by_key_value;
CREATE INDEX params_by_key_value ON params (key, value, run_uuid);
DROP INDEX tags_by_key_value;
CREATE INDEX tags_by_key_value ON tags (key, value, run_uuid);
CREATE INDEX runs_by_id_for_search ON runs (run_uuid, experiment_id, lifecycle_stage, start_time);
