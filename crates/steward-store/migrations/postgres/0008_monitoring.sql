-- Monitors (one per deployment: spec as JSON with the reference profile, and the position of
-- the last prediction already judged), their metric time series and the alerts they raised.
CREATE TABLE monitors (
    deployment TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    cursor_time BIGINT NOT NULL,
    cursor_id TEXT NOT NULL,
    creation_time BIGINT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE monitor_metrics (
    deployment TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    window_end BIGINT NOT NULL,
    metric TEXT NOT NULL,
    feature TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (deployment, window_end, metric, feature)
);
CREATE TABLE alerts (
    id TEXT PRIMARY KEY,
    deployment TEXT NOT NULL,
    time BIGINT NOT NULL,
    kind TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    threshold DOUBLE PRECISION NOT NULL,
    message TEXT NOT NULL,
    delivered BIGINT NOT NULL DEFAULT 0,
    attempts BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX alerts_by_deployment_time ON alerts (deployment, time);
