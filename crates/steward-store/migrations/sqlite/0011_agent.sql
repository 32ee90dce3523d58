-- The agent's record: incidents it opened (with their evidence) and the actions it took or
-- queued for a human, with who decided and why. Every change is also a ledger entry.
CREATE TABLE incidents (
    id TEXT PRIMARY KEY,
    deployment TEXT NOT NULL,
    trigger_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    evidence TEXT NOT NULL,
    status TEXT NOT NULL,
    opened BIGINT NOT NULL
);
CREATE INDEX incidents_by_deployment ON incidents (deployment, opened);
CREATE TABLE agent_actions (
    id TEXT PRIMARY KEY,
    incident_id TEXT,
    deployment TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    requested BIGINT NOT NULL,
    decided_by TEXT,
    decision_reason TEXT,
    updated BIGINT NOT NULL
);
CREATE INDEX agent_actions_by_status ON agent_actions (status, requested);
