-- The per-run key/value tables become WITHOUT ROWID tables clustered on (run_uuid, key): a
-- run's metrics, params and tags are read with one B-tree descent instead of an index probe
-- followed by a table probe, and every secondary index carries run_uuid, so a search filter
-- such as `params.model = 'gbm'` is answered from the index alone. The latest-metric index also
-- carries is_nan, which every metric filter tests. `runs` keeps its rowid: it is the parent of
-- foreign keys, which a rebuild inside a migration's transaction cannot carry over; its search
-- index gains the columns the filter joins read.
CREATE TABLE latest_metrics_new (
    run_uuid TEXT NOT NULL REFERENCES runs (run_uuid),
    key TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    timestamp BIGINT NOT NULL,
    step BIGINT NOT NULL,
    is_nan BIGINT NOT NULL,
    PRIMARY KEY (run_uuid, key)
) WITHOUT ROWID;
INSERT INTO latest_metrics_new (run_uuid, key, value, timestamp, step, is_nan)
    SELECT run_uuid, key, value, timestamp, step, is_nan FROM latest_metrics;
DROP TABLE latest_metrics;
ALTER TABLE latest_metrics_new RENAME TO latest_metrics;
CREATE INDEX latest_metrics_by_key_value ON latest_metrics (key, is_nan, value);

CREATE TABLE params_new (
    run_uuid TEXT NOT NULL REFERENCES runs (run_uuid),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_uuid, key)
) WITHOUT ROWID;
INSERT INTO params_new (run_uuid, key, value) SELECT run_uuid, key, value FROM params;
DROP TABLE params;
ALTER TABLE params_new RENAME TO params;
CREATE INDEX params_by_key_value ON params (key, value);

CREATE TABLE tags_new (
    run_uuid TEXT NOT NULL REFERENCES runs (run_uuid),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_uuid, key)
) WITHOUT ROWID;
INSERT INTO tags_new (run_uuid, key, value) SELECT run_uuid, key, value FROM tags;
DROP TABLE tags;
ALTER TABLE tags_new RENAME TO tags;
CREATE INDEX tags_by_key_value ON tags (key, value);

-- A filter joined by run id reads the run's experiment, stage and start time from here.
CREATE INDEX runs_by_id_for_search ON runs (run_uuid, experiment_id, lifecycle_stage, start_time);
