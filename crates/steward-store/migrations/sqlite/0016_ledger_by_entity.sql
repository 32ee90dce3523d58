-- Reading the ledger by entity (a model version's document: its own entries and its model's
-- aliases') is an index range in sequence order, not a scan of the whole ledger. SQLite's
-- default (BINARY) collation is byte order, which the alias-prefix range relies on.
CREATE INDEX audit_ledger_by_entity ON audit_ledger (entity_id, seq);
