-- Workflow definitions. A change to a workflow is a new version; every version is kept, so
-- a run names the version it ran.
CREATE TABLE oneo.workflows (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES oneo.workspaces (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    version      integer NOT NULL,
    enabled      boolean NOT NULL,
    -- The current version's spec (oneo_workflows::WorkflowSpec).
    spec         jsonb NOT NULL,
    -- Who owns it: the API key that created it; runs act with its workspace.
    owner_key_id uuid NOT NULL,
    -- The secret part of a webhook trigger's URL (`/hooks/{id}/{secret}`).
    hook_secret  text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workflows_workspace ON oneo.workflows (workspace_id);

CREATE TABLE oneo.workflow_versions (
    workflow_id uuid NOT NULL REFERENCES oneo.workflows (id) ON DELETE CASCADE,
    version     integer NOT NULL,
    spec        jsonb NOT NULL,
    -- The key that saved this version.
    saved_by    uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workflow_id, version)
);
