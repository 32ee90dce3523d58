-- Serving: deployments (their spec as JSON), the prediction log and ground-truth feedback.
-- The prediction log is data, not a control action: it is not in the audit ledger, but every
-- deployment change is.
CREATE TABLE deployments (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    creation_time BIGINT NOT NULL,
    last_updated_time BIGINT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE predictions (
    id TEXT PRIMARY KEY,
    deployment TEXT NOT NULL,
    model TEXT NOT NULL,
    version BIGINT NOT NULL,
    route TEXT NOT NULL,
    parent_id TEXT,
    time BIGINT NOT NULL,
    latency_us BIGINT NOT NULL,
    inputs TEXT NOT NULL,
    outputs TEXT NOT NULL,
    context TEXT
);
CREATE INDEX predictions_by_deployment_time ON predictions (deployment, time);
CREATE TABLE prediction_feedback (
    prediction_id TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    time BIGINT NOT NULL
);
