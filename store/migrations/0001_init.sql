-- The hub's schema on PostgreSQL, version 1. See store/doc.go.

-- One row per run. high_water, state, digest, rollup and entry always
-- describe exactly records 1..high_water: they are written in the
-- transaction that stores those records, which holds this row's lock.
CREATE TABLE runs (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id     text   NOT NULL UNIQUE,
    project    text   NOT NULL DEFAULT '',
    high_water bigint NOT NULL DEFAULT 0,
    entry      bytea,   -- encoded runlog.v1.HubRun (what ListRuns returns)
    state      bytea,   -- replay.State snapshot after record high_water
    digest     bytea,   -- the running SHA-256 (its MarshalBinary state)
    rollup     bytea,   -- the history tiers' builder (package rollup)
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX runs_project ON runs (project, run_id) WHERE high_water > 0;

-- Every record exactly as the run's log stored it; the primary key is the
-- dedup key (run, seq). step is set for a live history row only: a rewind
-- clears it on the rows it drops. History queries go through the partial
-- index, never through the run's other records.
CREATE TABLE records (
    run  bigint NOT NULL,
    seq  bigint NOT NULL,
    data bytea  NOT NULL,
    step bigint,
    PRIMARY KEY (run, seq)
);
CREATE INDEX records_history ON records (run, step, seq) WHERE step IS NOT NULL;

-- Console output records, for reading a run's output without its metrics.
CREATE TABLE output (
    run bigint NOT NULL,
    seq bigint NOT NULL,
    PRIMARY KEY (run, seq)
);

-- Completed blocks of the history tiers (package rollup).
CREATE TABLE tiers (
    run   bigint   NOT NULL,
    level smallint NOT NULL,
    idx   bigint   NOT NULL,
    block bytea    NOT NULL,
    PRIMARY KEY (run, level, idx)
);
