-- Running workflows. A run is claimed by a worker with FOR NO KEY UPDATE SKIP LOCKED and
-- held while one step is done; the step's effect, its log row and the run's new position
-- commit together, so a step whose effects are rows is done exactly once.
ALTER TABLE oneo.workflow_runs
    -- The step the run is at (oneo_workflows::Position); null before the first.
    ADD COLUMN position   jsonb,
    -- {"steps": {key: output}, "items": {loop key: [records]}}: what later steps read.
    ADD COLUMN context    jsonb NOT NULL DEFAULT '{}',
    -- A waiting run is claimable again from this instant ('infinity': only a decision wakes
    -- it, an approval without a timeout).
    ADD COLUMN wake_at    timestamptz,
    -- What a waiting run waits for: {"path", "kind": wait|condition|approval|retry, ...}.
    ADD COLUMN waiting    jsonb,
    -- The current step's attempt, counted from 1.
    ADD COLUMN attempt    integer NOT NULL DEFAULT 1,
    -- The run whose writes started this one (loops between workflows are cut by depth).
    ADD COLUMN parent_run uuid,
    ADD COLUMN started_at timestamptz,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

-- The clock's marks: a schedule's next fire, and how far a time-based trigger's record
-- times are scanned. Null: from now (a new, changed or re-enabled workflow has no backlog).
ALTER TABLE oneo.workflows
    ADD COLUMN next_fire_at  timestamptz,
    ADD COLUMN scanned_until timestamptz;

CREATE INDEX workflow_runs_due ON oneo.workflow_runs (coalesce(wake_at, created_at))
    WHERE status IN ('pending', 'running', 'waiting');

-- One row per attempt of each step of each run: its input, output, timing and error.
CREATE TABLE oneo.workflow_steps (
    -- Kept across the attempt's updates: its row in the lake.
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    run_id       uuid NOT NULL REFERENCES oneo.workflow_runs (id) ON DELETE CASCADE,
    workspace_id uuid NOT NULL REFERENCES oneo.workspaces (id) ON DELETE CASCADE,
    workflow_id  uuid NOT NULL,
    -- The step's key, or `loop[item].key` inside a loop.
    path         text NOT NULL,
    step_type    text NOT NULL,
    attempt      integer NOT NULL,
    -- `started` is written (and committed) before an email or HTTP call goes out; a row
    -- still `started` after a crash is an outcome nobody knows, which is never sent again.
    status       text NOT NULL CHECK (status IN ('started', 'succeeded', 'failed', 'waiting', 'unknown')),
    input        jsonb,
    output       jsonb,
    error        text,
    started_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (run_id, path, attempt)
);
CREATE INDEX workflow_steps_workspace ON oneo.workflow_steps (workspace_id, started_at);

-- The runs and their steps stream like every other change: into each workspace's lake as
-- the system objects `workflow_run` and `workflow_step` (oneo_catalog::system), and to the
-- workflow intake, which reads a step row written beside a record write to know which run
-- wrote it (and how deep it is). The replica identity is the primary key (`id`): what the
-- lake gets is short (errors are cut to 1,000 characters), so no value of it is TOASTed and
-- left out of an update's new row, and a delete names its row by id.
ALTER PUBLICATION oneo_changes ADD TABLE oneo.workflow_runs, oneo.workflow_steps;
