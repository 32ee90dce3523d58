-- Reading the ledger by entity (a model version's document: its own entries and its model's
-- aliases') is an index range in sequence order, not a scan of the whole ledger. The index is
-- in byte order (collation "C"), as the queries compare: an alias-prefix range is then exact
-- whatever the database's collation.
CREATE INDEX audit_ledger_by_entity ON audit_ledger (entity_id COLLATE "C", seq);
