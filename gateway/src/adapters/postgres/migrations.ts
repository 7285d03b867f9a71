/**
 * The database schema, as numbered migrations applied in order at start (under an advisory lock,
 * one replica at a time) or by `keygate-gateway db migrate`. A released migration is never
 * edited: change the schema with a new one. Every table is prefixed `keygate_`, so the schema can
 * share a database.
 */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'change feed',
    sql: `
      CREATE TABLE keygate_changes (
        seq bigserial PRIMARY KEY,
        at timestamptz NOT NULL DEFAULT now(),
        kind text NOT NULL,
        subject jsonb NOT NULL
      );
      CREATE INDEX keygate_changes_at ON keygate_changes (at);
      CREATE FUNCTION keygate_announce_change() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify('keygate_changes',
          json_build_object('seq', NEW.seq::text, 'kind', NEW.kind, 'subject', NEW.subject)::text);
        RETURN NEW;
      END $$;
      CREATE TRIGGER keygate_changes_notify AFTER INSERT ON keygate_changes
        FOR EACH ROW EXECUTE FUNCTION keygate_announce_change();
    `,
  },
  {
    version: 2,
    name: 'keys',
    sql: `
      CREATE TABLE keygate_keys (
        instance text NOT NULL,
        id text NOT NULL,
        name text NOT NULL,
        description text,
        state smallint NOT NULL,
        creation_date timestamptz NOT NULL,
        last_update_date timestamptz NOT NULL,
        -- The order keys were created in (list() answers oldest first, as the file store does).
        created_seq bigserial NOT NULL,
        PRIMARY KEY (instance, id)
      );
      -- Key Protect: one live key per name and instance (destroyed ones free the name).
      CREATE UNIQUE INDEX keygate_keys_live_name ON keygate_keys (instance, name) WHERE state <> 5;
      CREATE TABLE keygate_key_versions (
        instance text NOT NULL,
        key_id text NOT NULL,
        id text NOT NULL,
        position integer NOT NULL,
        creation_date timestamptz NOT NULL,
        PRIMARY KEY (instance, key_id, id),
        UNIQUE (instance, key_id, position),
        FOREIGN KEY (instance, key_id) REFERENCES keygate_keys (instance, id) ON DELETE CASCADE
      );
    `,
  },
  {
    version: 3,
    name: 'identities',
    sql: `
      -- Changed at run time by the admin API and CLI; every change is announced (kind 'identity').
      CREATE TABLE keygate_identities (
        name text PRIMARY KEY,
        cert_identities text[] NOT NULL CHECK (cardinality(cert_identities) > 0),
        roles jsonb NOT NULL CHECK (jsonb_typeof(roles) = 'object'),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE keygate_api_keys (
        id text PRIMARY KEY,
        -- Only the SHA-256 of a key is stored; the key is shown once, when created.
        hash text NOT NULL UNIQUE CHECK (hash ~ '^sha256:[0-9a-f]{64}$'),
        identity text NOT NULL REFERENCES keygate_identities (name) ON DELETE CASCADE,
        label text,
        created_at timestamptz NOT NULL DEFAULT now(),
        revoked_at timestamptz
      );
      CREATE INDEX keygate_api_keys_identity ON keygate_api_keys (identity);
      -- Token signing key ids each replica verifies with (replicas must share them).
      CREATE TABLE keygate_signing_keys (
        kid text PRIMARY KEY,
        first_seen timestamptz NOT NULL DEFAULT now(),
        last_seen timestamptz NOT NULL DEFAULT now()
      );
    `,
  },
  {
    version: 4,
    name: 'audit chain',
    // One hash chain for every replica (docs/audit.md "PostgreSQL"): a batch locks the head row,
    // appends its record lines after it and moves it, in one transaction. `line` is the exact
    // record line (what the chain hashes); `hash` its line hash; `replica` and `at` are for
    // operators only (not covered by the chain). Rows are append-only: a trigger refuses UPDATE,
    // DELETE and TRUNCATE, and `audit verify --postgres` finds any change made around it.
    sql: `
      CREATE TABLE keygate_audit (
        seq bigint PRIMARY KEY CHECK (seq >= 1),
        hash text NOT NULL,
        type text NOT NULL,
        replica text NOT NULL,
        at timestamptz NOT NULL DEFAULT now(),
        line text NOT NULL
      );
      CREATE TABLE keygate_audit_head (
        id smallint PRIMARY KEY CHECK (id = 1),
        seq bigint NOT NULL,
        hash text NOT NULL,
        boot integer NOT NULL,
        since_checkpoint integer NOT NULL
      );
      INSERT INTO keygate_audit_head VALUES (1, 0, repeat('0', 64), 0, 0);
      CREATE FUNCTION keygate_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'keygate_audit is append-only' USING ERRCODE = 'insufficient_privilege';
      END $$;
      CREATE TRIGGER keygate_audit_no_change BEFORE UPDATE OR DELETE ON keygate_audit
        FOR EACH ROW EXECUTE FUNCTION keygate_audit_append_only();
      CREATE TRIGGER keygate_audit_no_truncate BEFORE TRUNCATE ON keygate_audit
        FOR EACH STATEMENT EXECUTE FUNCTION keygate_audit_append_only();
    `,
  },
  {
    version: 5,
    name: 'encryptions reserved per key version',
    // AES-GCM usage limits (docs/gateway.md "Usage limits"): replicas reserve blocks of
    // encryptions per key version with one UPDATE … RETURNING each; the total is an upper bound
    // on the encryptions made under the version.
    sql: `
      ALTER TABLE keygate_key_versions
        ADD COLUMN encryptions_reserved bigint NOT NULL DEFAULT 0 CHECK (encryptions_reserved >= 0);
    `,
  },
  {
    version: 6,
    name: 'fleet',
    // The fleet view (docs/fleet.md): the latest shim report per node (newest last_seen wins,
    // whichever replica heard it), key uses counted per minute (replicas add their buffered
    // counts), and the rotations `keys rotate` started.
    sql: `
      CREATE TABLE keygate_fleet_nodes (
        cluster text NOT NULL,
        node text NOT NULL,
        instance text NOT NULL,
        crk text NOT NULL,
        shim_version text NOT NULL,
        kms_key_id text,
        key_version text,
        apis text NOT NULL,
        cache_size integer NOT NULL CHECK (cache_size >= 0),
        health text NOT NULL,
        last_seen timestamptz NOT NULL,
        replica text NOT NULL,
        PRIMARY KEY (cluster, node, instance, crk)
      );
      CREATE TABLE keygate_fleet_usage (
        cluster text NOT NULL,
        instance text NOT NULL,
        crk text NOT NULL,
        version text NOT NULL,
        op text NOT NULL CHECK (op IN ('wrap', 'unwrap', 'rewrap')),
        minute timestamptz NOT NULL,
        count bigint NOT NULL CHECK (count >= 0),
        PRIMARY KEY (cluster, instance, crk, version, op, minute)
      );
      CREATE INDEX keygate_fleet_usage_minute ON keygate_fleet_usage (minute);
      CREATE TABLE keygate_fleet_rotations (
        instance text NOT NULL,
        crk text NOT NULL,
        from_version text NOT NULL,
        to_version text NOT NULL,
        started_at timestamptz NOT NULL,
        started_by text NOT NULL,
        PRIMARY KEY (instance, crk, started_at, to_version)
      );
    `,
  },
  {
    version: 7,
    name: 'disabled key versions',
    // Guided rotation (docs/rotation.md): a version disabled by `keys disable-version` keeps its
    // HSM object, but blobs under it are not unwrapped until it is enabled again (NULL: enabled).
    sql: `
      ALTER TABLE keygate_key_versions ADD COLUMN disabled_at timestamptz;
    `,
  },
  {
    version: 8,
    name: 'onboarded clusters',
    // `keygate-gateway clusters add` (docs/clusters.md): what was issued for a cluster whose
    // identity (same name) and API key are in keygate_identities / keygate_api_keys. Deleting the
    // identity deletes the row.
    sql: `
      CREATE TABLE keygate_clusters (
        name text PRIMARY KEY REFERENCES keygate_identities (name) ON DELETE CASCADE,
        instance text NOT NULL,
        crk text NOT NULL,
        roles jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        gateway_urls jsonb NOT NULL,
        cert_serial text NOT NULL,
        cert_fingerprint text NOT NULL,
        cert_not_after timestamptz NOT NULL
      );
    `,
  },
];
