-- Saved report specs. The spec is the JSON the API validated (by running it) when saved.
CREATE TABLE oneo.reports (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES oneo.workspaces (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    spec         jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reports_workspace ON oneo.reports (workspace_id);
