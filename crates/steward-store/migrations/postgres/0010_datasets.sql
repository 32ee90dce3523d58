-- The dataset registry: versions of a named dataset, each a content-addressed copy in the
-- artifact store with its fingerprint, schema and profile. The same content under one name is
-- one version. `digest` is the fingerprint's first 32 hex digits, what runs log as MLflow's
-- dataset digest, so lineage joins the two.
CREATE TABLE dataset_versions (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    fingerprint TEXT NOT NULL,
    digest TEXT NOT NULL,
    artifact_uri TEXT NOT NULL,
    format TEXT NOT NULL,
    num_rows BIGINT NOT NULL,
    dataset_schema TEXT NOT NULL,
    profile TEXT NOT NULL,
    creation_time BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE UNIQUE INDEX dataset_versions_by_content ON dataset_versions (name, fingerprint);
CREATE INDEX dataset_versions_by_digest ON dataset_versions (digest);
