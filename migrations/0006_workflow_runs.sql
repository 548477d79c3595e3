-- Workflow runs, started by the intake from the change stream (and later by schedules,
-- times and webhooks).
CREATE TABLE oneo.workflow_runs (
    id           uuid PRIMARY KEY,
    workflow_id  uuid NOT NULL REFERENCES oneo.workflows (id) ON DELETE CASCADE,
    workspace_id uuid NOT NULL REFERENCES oneo.workspaces (id) ON DELETE CASCADE,
    -- The workflow version the run follows.
    version      integer NOT NULL,
    status       text NOT NULL CHECK (status IN ('pending', 'running', 'waiting', 'succeeded', 'failed', 'cut')),
    -- What started it. For a record change `<commit LSN>/<record id>/<op>`: unique per
    -- workflow, so a change the stream replays after a crash starts nothing twice.
    source       text NOT NULL,
    -- {object, op, record_id, old, new}: the trigger record as later steps read it.
    trigger      jsonb NOT NULL,
    depth        integer NOT NULL DEFAULT 0,
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE UNIQUE INDEX workflow_runs_once ON oneo.workflow_runs (workflow_id, source);
CREATE INDEX workflow_runs_workspace ON oneo.workflow_runs (workspace_id, created_at DESC);
