-- Scheduled deliveries. A schedule's definition is its spec (oneo_dashboards::ScheduleSpec);
-- `next_fire_at` is the first fire not yet claimed. A scheduler claims a due schedule with
-- FOR UPDATE SKIP LOCKED, writes the fire's delivery and moves `next_fire_at` on in the same
-- transaction, so two server processes never claim one fire twice.
CREATE TABLE oneo.schedules (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES oneo.workspaces (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    spec         jsonb NOT NULL,
    -- Who owns it: the API key that created it.
    owner_key_id uuid NOT NULL,
    -- NULL when paused, or when the expression never fires again.
    next_fire_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schedules_workspace ON oneo.schedules (workspace_id);
CREATE INDEX schedules_due ON oneo.schedules (next_fire_at) WHERE next_fire_at IS NOT NULL;

-- The delivery log: one row per fire (or per "send now"), with every attempt. A delivery
-- being sent is held with FOR NO KEY UPDATE by the process sending it; a process that dies
-- mid-send releases it, and the next attempt is another's.
CREATE TABLE oneo.deliveries (
    id              uuid PRIMARY KEY,
    -- Kept when the schedule is deleted: the log outlives it.
    schedule_id     uuid REFERENCES oneo.schedules (id) ON DELETE SET NULL,
    workspace_id    uuid NOT NULL REFERENCES oneo.workspaces (id) ON DELETE CASCADE,
    schedule_name   text NOT NULL,
    -- The schedule's spec when the fire was claimed: what this delivery sends.
    spec            jsonb NOT NULL,
    fire_at         timestamptz NOT NULL,
    -- A "send now" (POST /v1/schedules/{id}/run) rather than a fire of the expression.
    manual          boolean NOT NULL DEFAULT false,
    status          text NOT NULL CHECK (status IN ('pending', 'retrying', 'sent', 'failed', 'skipped')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    recipients      text[] NOT NULL,
    formats         text[] NOT NULL,
    -- [{name, format, bytes, linked}] of the last attempt that rendered.
    files           jsonb NOT NULL DEFAULT '[]',
    -- The lake position the numbers reflect.
    lsn             text,
    error           text,
    -- Earlier fires this one stands for: missed while no server ran, folded into it.
    missed          integer NOT NULL DEFAULT 0,
    -- [{at, outcome, error}], one per attempt.
    attempt_log     jsonb NOT NULL DEFAULT '[]',
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE UNIQUE INDEX deliveries_once ON oneo.deliveries (schedule_id, fire_at) WHERE NOT manual;
CREATE INDEX deliveries_due ON oneo.deliveries (next_attempt_at) WHERE status IN ('pending', 'retrying');
CREATE INDEX deliveries_workspace ON oneo.deliveries (workspace_id, created_at DESC);

-- Files too large to attach, served by a signed, expiring link.
CREATE TABLE oneo.delivery_files (
    id           uuid PRIMARY KEY,
    delivery_id  uuid NOT NULL REFERENCES oneo.deliveries (id) ON DELETE CASCADE,
    workspace_id uuid NOT NULL,
    name         text NOT NULL,
    content_type text NOT NULL,
    body         bytea NOT NULL,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX delivery_files_delivery ON oneo.delivery_files (delivery_id);
