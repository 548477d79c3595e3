-- Dashboards: a spec (widgets, layout, global filters) per row; their materialized answers
-- live in the lake's object store, not here.
CREATE TABLE oneo.dashboards (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES oneo.workspaces (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    spec         jsonb NOT NULL,
    -- Set for a dashboard loaded from a file (`file:<name>`): the file stays its source,
    -- and loading it again replaces the row rather than adding one.
    source       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dashboards_workspace ON oneo.dashboards (workspace_id);
CREATE UNIQUE INDEX dashboards_source ON oneo.dashboards (workspace_id, source) WHERE source IS NOT NULL;

-- Secrets the server signs with (share links), made once per database.
CREATE TABLE oneo.server_secrets (
    name   text PRIMARY KEY,
    secret bytea NOT NULL
);
