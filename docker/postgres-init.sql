-- Runs once, when the PostgreSQL volume is first initialised: the synthgen catalog
-- (datasets, lineage, privacy ledger, scores, access log) lives next to Airflow's metadata,
-- in its own database.
CREATE DATABASE synthgen_catalog OWNER airflow;
