-- 0001_init: nanocp's first schema (docs/nanocp.md#what-is-stored). Forward only: a later
-- change is a new file 0002_<what>.sql, never an edit of this one (comments aside). nanocp
-- runs each file in its own transaction and records it in schema_migrations (which nanocp
-- itself creates before the first migration).
-- Times are RFC 3339 UTC text with milliseconds ("2024-05-01T12:00:00.123Z").

-- Apps. A removed app's row is deleted (its hostnames, deployments, env and secrets go with
-- it); the audit and config logs keep its name as text.
CREATE TABLE apps (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    path_prefix   TEXT,                           -- NULL: every path
    is_default    INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
    node_compat   INTEGER NOT NULL DEFAULT 0 CHECK (node_compat IN (0, 1)),
    required_env  TEXT NOT NULL DEFAULT '[]',     -- JSON array of env names
    limits        TEXT NOT NULL,                  -- JSON object, every limit (nano_limits_to_json)
    state         TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'draining')),
    active_deployment_id INTEGER REFERENCES deployments (id),
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
-- At most one app receives the requests for hosts no app claims.
CREATE UNIQUE INDEX apps_one_default ON apps (is_default) WHERE is_default = 1;

-- Hostnames, lowercased without a trailing '.'. path_prefix repeats the app's ('' for none) so
-- that the UNIQUE constraint says it: no two apps claim one hostname + path prefix.
CREATE TABLE hostnames (
    app_id      INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    hostname    TEXT NOT NULL,
    path_prefix TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (app_id, hostname),
    UNIQUE (hostname, path_prefix)
);

-- Code, content-addressed: a module's bytes are stored once however many deployments use them.
CREATE TABLE blobs (
    sha256 TEXT PRIMARY KEY,                      -- hex
    size   INTEGER NOT NULL,
    data   BLOB NOT NULL
);

-- Deployments: version counts 1, 2, ... per app. sha256 identifies the bundle (docs/nanocp.md).
CREATE TABLE deployments (
    id         INTEGER PRIMARY KEY,
    app_id     INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    version    INTEGER NOT NULL CHECK (version > 0),
    sha256     TEXT NOT NULL,
    main       TEXT NOT NULL,
    size       INTEGER NOT NULL,                  -- bytes of every module together
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    UNIQUE (app_id, version)
);

CREATE TABLE deployment_modules (
    deployment_id INTEGER NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    position      INTEGER NOT NULL,
    name          TEXT NOT NULL,                  -- relative path, e.g. "lib/util.js"
    sha256        TEXT NOT NULL REFERENCES blobs (sha256),
    size          INTEGER NOT NULL,
    PRIMARY KEY (deployment_id, name)
);
CREATE INDEX deployment_modules_sha256 ON deployment_modules (sha256);

-- Env vars: the value as JSON text ("\"text\"" for a string).
CREATE TABLE env_vars (
    app_id     INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (app_id, name)
);

-- Secrets: AES-256-GCM under the master key whose id (first 8 hex of sha256(key)) is key_id;
-- the additional data is "APP\0NAME". The plaintext is never stored.
CREATE TABLE secrets (
    app_id     INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    ciphertext BLOB NOT NULL,
    nonce      BLOB NOT NULL CHECK (length(nonce) = 12),
    tag        BLOB NOT NULL CHECK (length(tag) = 16),
    key_id     TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (app_id, name)
);

-- Data-plane nodes (filled by the distribution layer): what each last reported.
CREATE TABLE nodes (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    version      TEXT NOT NULL DEFAULT '',
    addr         TEXT NOT NULL DEFAULT '',
    applied_seq  INTEGER NOT NULL DEFAULT 0,
    apps         TEXT NOT NULL DEFAULT '{}',      -- JSON: {app: {state, version, in_flight}}
    first_seen   TEXT NOT NULL,
    last_seen    TEXT NOT NULL
);

-- Every change as numbered deltas: the sequence the data planes follow (docs/distribution.md).
-- payload is compact JSON; a secret in it is encrypted exactly as in secrets.
CREATE TABLE config_log (
    seq     INTEGER PRIMARY KEY,
    at      TEXT NOT NULL,
    op      TEXT NOT NULL CHECK (op IN ('app.put', 'code.put', 'env.put', 'env.del',
                                        'secret.put', 'secret.del', 'app.drain', 'app.remove')),
    app     TEXT NOT NULL,
    payload TEXT NOT NULL
);

-- App removals waiting for the nodes (docs/distribution.md#drains), with per-node progress.
CREATE TABLE drains (
    id          INTEGER PRIMARY KEY,
    app_id      INTEGER REFERENCES apps (id) ON DELETE SET NULL,
    app         TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    timeout_ms  INTEGER NOT NULL,
    state       TEXT NOT NULL DEFAULT 'draining'
                CHECK (state IN ('draining', 'done', 'timed_out')),
    finished_at TEXT
);

CREATE TABLE drain_nodes (
    drain_id  INTEGER NOT NULL REFERENCES drains (id) ON DELETE CASCADE,
    node_id   INTEGER NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    state     TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'acked', 'timed_out')),
    acked_at  TEXT,
    PRIMARY KEY (drain_id, node_id)
);

-- Who changed what: names only, never an env or secret value.
CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY,
    at     TEXT NOT NULL,
    actor  TEXT NOT NULL,
    via    TEXT NOT NULL,
    op     TEXT NOT NULL,
    app    TEXT,
    detail TEXT NOT NULL DEFAULT '{}'             -- JSON
);

-- Admin API tokens: sha256 (hex) of the token, never the token.
CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    hash       TEXT NOT NULL UNIQUE CHECK (length(hash) = 64),
    created_at TEXT NOT NULL
);
