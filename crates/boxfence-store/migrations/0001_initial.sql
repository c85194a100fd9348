-- boxfence schema, version 1. Plain SQL that SQLite and PostgreSQL both
-- accept: JSON documents are TEXT, timestamps are RFC 3339 TEXT.

CREATE TABLE apps (
    name        TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL
);

CREATE TABLE app_policies (
    id          TEXT PRIMARY KEY,
    app         TEXT NOT NULL REFERENCES apps (name) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    -- the validated policy without its id (the id column is authoritative)
    body        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    -- one policy per name and app: concurrent applies upsert onto it
    UNIQUE (app, name)
);

CREATE TABLE machines (
    id              TEXT PRIMARY KEY,
    app             TEXT NOT NULL REFERENCES apps (name) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    runtime         TEXT,
    metadata        TEXT NOT NULL,
    network_policy  TEXT NOT NULL,
    -- unique: an address is never given to two machines at once
    ipv4            TEXT NOT NULL UNIQUE,
    ipv6            TEXT NOT NULL UNIQUE,
    -- bumped on every change, for optimistic read-modify-write
    version         BIGINT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (app, name)
);

CREATE INDEX machines_by_app ON machines (app);

CREATE TABLE tokens (
    id           TEXT PRIMARY KEY,
    -- NULL for admin tokens
    app          TEXT REFERENCES apps (name) ON DELETE CASCADE,
    -- SHA-256 of the secret part, hex; the secret itself is never stored
    secret_hash  TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
