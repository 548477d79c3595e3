-- Predictive models (issue 23): a definition per model, its trained versions, and the
-- scores of its deployed version.
CREATE TABLE oneo.models (
    id            uuid PRIMARY KEY,
    workspace_id  uuid NOT NULL REFERENCES oneo.workspaces (id) ON DELETE CASCADE,
    name          text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('lead_score', 'win_probability', 'churn_risk')),
    horizon_days  integer NOT NULL,
    -- API names of the scored object's fields added as features.
    fields        jsonb NOT NULL DEFAULT '[]',
    -- The version scoring uses; null until one is deployed.
    deployed      integer,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, name)
);

CREATE TABLE oneo.model_versions (
    model_id        uuid NOT NULL REFERENCES oneo.models (id) ON DELETE CASCADE,
    version         integer NOT NULL,
    workspace_id    uuid NOT NULL REFERENCES oneo.workspaces (id) ON DELETE CASCADE,
    status          text NOT NULL CHECK (status IN ('training', 'validated', 'failed', 'deployed', 'archived')),
    -- What training is doing now, or why it failed.
    progress        text,
    error           text,
    -- The validation metrics, each feature's importance, the rows it learned from.
    metrics         jsonb,
    importance      jsonb,
    train_rows      integer,
    validation_rows integer,
    -- The Delta version of every lake table read: the version can be trained again exactly.
    table_versions  jsonb,
    -- Population stability per feature between the training rows and the records last
    -- scored, and when.
    drift           jsonb,
    drift_at        timestamptz,
    -- The artifact's path under the lake's root.
    artifact        text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    deployed_at     timestamptz,
    PRIMARY KEY (model_id, version)
);

-- One row per scored record and model: the deployed version's latest score.
CREATE TABLE oneo.scores (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES oneo.workspaces (id) ON DELETE CASCADE,
    model_id     uuid NOT NULL REFERENCES oneo.models (id) ON DELETE CASCADE,
    model        text NOT NULL,
    kind         text NOT NULL,
    object       text NOT NULL,
    record_id    uuid NOT NULL,
    version      integer NOT NULL,
    score        integer NOT NULL CHECK (score BETWEEN 1 AND 99),
    probability  numeric(9, 6) NOT NULL,
    factors      jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (model_id, record_id)
);
CREATE INDEX scores_record ON oneo.scores (workspace_id, object, record_id);

-- Scores stream into each workspace's lake as the system object `score`
-- (oneo_catalog::system), read as `oneo.scores`. Short rows: the factors stay in
-- PostgreSQL (the lake gets the columns the system object names).
ALTER PUBLICATION oneo_changes ADD TABLE oneo.scores;
