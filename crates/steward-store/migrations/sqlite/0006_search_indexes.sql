-- Indexes for search filters: a clause such as `metrics.auc > 0.9` or `params.model = 'gbm'`
-- becomes an index range over (key, value) that yields the matching runs directly.
CREATE INDEX latest_metrics_by_key_value ON latest_metrics (key, value);
CREATE INDEX params_by_key_value ON params (key, value);
CREATE INDEX tags_by_key_value ON tags (key, value);
-- Covers the run scan of a search (experiment, lifecycle stage, default order) without
-- touching the table.
CREATE INDEX runs_search ON runs (experiment_id, lifecycle_stage, start_time, run_uuid);
