-- The log: one row per origin, its tree head (the compare-and-swap point),
-- its entries, its hash tiles and its published checkpoints; and, kept apart,
-- what signer last signed.

CREATE TABLE logs (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    origin     TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Exactly one row per log. Integration moves it with
-- UPDATE ... WHERE size = <old> AND root = <old>, in the same transaction
-- as the entries and tiles: two sequencers can never both commit.
CREATE TABLE tree_heads (
    log_id     BIGINT PRIMARY KEY REFERENCES logs (id),
    size       BIGINT NOT NULL CHECK (size >= 0),
    root       BYTEA NOT NULL CHECK (length(root) = 32),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE entries (
    log_id          BIGINT NOT NULL REFERENCES logs (id),
    idx             BIGINT NOT NULL CHECK (idx >= 0),
    entry           BYTEA NOT NULL CHECK (length(entry) <= 65535),
    leaf_hash       BYTEA NOT NULL CHECK (length(leaf_hash) = 32),
    -- Idempotency: the same principal's same statement is logged once.
    dedup_key       BYTEA NOT NULL CHECK (length(dedup_key) = 32),
    evidence_sha256 BYTEA CHECK (length(evidence_sha256) = 32),
    PRIMARY KEY (log_id, idx),
    UNIQUE (log_id, dedup_key)
);
CREATE INDEX entries_by_leaf_hash ON entries (log_id, leaf_hash, idx);
CREATE INDEX entries_by_evidence ON entries (log_id, evidence_sha256, idx)
    WHERE evidence_sha256 IS NOT NULL;

-- The latest version of each tile (a partial tile is overwritten as it
-- grows; a full one never changes again).
CREATE TABLE tiles (
    log_id BIGINT NOT NULL REFERENCES logs (id),
    level  SMALLINT NOT NULL CHECK (level BETWEEN 0 AND 7),
    idx    BIGINT NOT NULL CHECK (idx >= 0),
    hashes BYTEA NOT NULL CHECK (length(hashes) BETWEEN 32 AND 8192 AND length(hashes) % 32 = 0),
    PRIMARY KEY (log_id, level, idx)
);

CREATE TABLE checkpoints (
    log_id       BIGINT NOT NULL REFERENCES logs (id),
    size         BIGINT NOT NULL CHECK (size >= 0),
    note         BYTEA NOT NULL,
    published_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (log_id, size)
);

-- Signer's memory of the last checkpoint it signed per origin. Tree never
-- writes here; in a hardened deployment signer uses its own database role.
CREATE TABLE signer_heads (
    origin     TEXT PRIMARY KEY,
    size       BIGINT NOT NULL CHECK (size >= 0),
    root       BYTEA NOT NULL CHECK (length(root) = 32),
    checkpoint BYTEA NOT NULL,
    signed_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
