-- Written analyses of incidents: the rule-based reasoner's, and an optional language model's
-- (advisory only). One per incident and source; each is also a ledger entry.
CREATE TABLE incident_analyses (
    incident_id TEXT NOT NULL,
    source TEXT NOT NULL,
    body TEXT NOT NULL,
    created BIGINT NOT NULL,
    PRIMARY KEY (incident_id, source)
);
-- What an action's run came to (its outcome or failure), apart from the human's decision reason.
ALTER TABLE agent_actions ADD COLUMN outcome TEXT;
