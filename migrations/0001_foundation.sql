-- Oneo's operational schema. Metadata lives in `oneo`; each object's records live in their
-- own typed table `oneo_records.o<object id>` with one column `f<field id>` per stored field,
-- created when the object or field is defined (never per write). See ARCHITECTURE.md.

CREATE SCHEMA oneo;
CREATE SCHEMA oneo_records;

CREATE TABLE oneo.workspaces (
    id                      uuid PRIMARY KEY,
    name                    text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    fiscal_year_start_month smallint NOT NULL DEFAULT 1 CHECK (fiscal_year_start_month BETWEEN 1 AND 12),
    time_zone               text NOT NULL DEFAULT 'UTC',
    created_at              timestamptz NOT NULL DEFAULT now()
);

-- Keys are stored only as SHA-256 hashes: they are 256-bit random tokens, so a slow password
-- hash would add latency to every request without adding safety.
CREATE TABLE oneo.api_keys (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES oneo.workspaces (id) ON DELETE CASCADE,
    name         text NOT NULL,
    role         text NOT NULL CHECK (role IN ('admin', 'member', 'analyst', 'viewer')),
    key_hash     bytea NOT NULL UNIQUE,
    key_prefix   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
CREATE INDEX api_keys_workspace ON oneo.api_keys (workspace_id);

CREATE TABLE oneo.objects (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES oneo.workspaces (id) ON DELETE CASCADE,
    api_name     text NOT NULL,
    label        text NOT NULL,
    is_standard  boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, api_name)
);

-- `definition` is the catalog's FieldDef as JSON; the columns beside it are what SQL needs.
CREATE TABLE oneo.fields (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    object_id    bigint NOT NULL REFERENCES oneo.objects (id) ON DELETE CASCADE,
    workspace_id uuid NOT NULL REFERENCES oneo.workspaces (id) ON DELETE CASCADE,
    api_name     text NOT NULL,
    field_type   text NOT NULL,
    definition   jsonb NOT NULL,
    is_standard  boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (object_id, api_name)
);
CREATE INDEX fields_workspace ON oneo.fields (workspace_id);

-- Every update of a record bumps its version and updated_at, whoever issues it (the API, or a
-- lookup being cleared by ON DELETE SET NULL), so optimistic concurrency can trust `version`.
CREATE FUNCTION oneo.touch_record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.id := OLD.id;
    NEW.created_at := OLD.created_at;
    NEW.version := OLD.version + 1;
    NEW.updated_at := clock_timestamp();
    RETURN NEW;
END $$;

-- Adds a stored field's column. `col_type` comes from Oneo's fixed type mapping, never from a
-- user; a default value arrives as a bound parameter and is quoted by PostgreSQL (%L), so a
-- required field can be added to a populated table without rewriting it.
CREATE FUNCTION oneo.add_field_column(tbl regclass, col text, col_type text, not_null boolean, default_value text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF default_value IS NULL THEN
        EXECUTE format('ALTER TABLE %s ADD COLUMN %I %s%s', tbl, col, col_type,
                       CASE WHEN not_null THEN ' NOT NULL' ELSE '' END);
    ELSE
        EXECUTE format('ALTER TABLE %s ADD COLUMN %I %s%s DEFAULT %L::%s', tbl, col, col_type,
                       CASE WHEN not_null THEN ' NOT NULL' ELSE '' END, default_value, col_type);
    END IF;
END $$;

-- One publication carries every committed change the lake needs: all record tables (present
-- and future, by schema) and the metadata that gives their columns meaning.
CREATE PUBLICATION oneo_changes FOR TABLE oneo.workspaces, oneo.objects, oneo.fields, TABLES IN SCHEMA oneo_records;
