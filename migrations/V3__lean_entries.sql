-- The lean log: entries keep only what cannot be derived, lookups go
-- through hash indexes over expressions, and tiles are full tiles only.
-- docs/storage.md explains each choice and gives the measured sizes.
--
-- Existing logs are rewritten into new tables which then take the old
-- names: an in-place ALTER TABLE ... DROP COLUMN would leave the dropped
-- bytes in every row, and DELETE would leave dead tuples behind, so only a
-- rewrite gives the space back.

-- Entries: (log, index) → entry bytes and dedup key. The leaf hash and the
-- evidence digest are functions of the entry bytes and are not stored; the
-- indexes below are built on those functions instead.
--
-- No foreign key to logs: every insert happens in the transaction that
-- moves the log's tree_heads row by compare-and-swap, and that row
-- references logs, so the log exists; a per-row foreign-key check would
-- cost a quarter of the insert time for nothing.
--
-- fillfactor 100: rows are never updated, so no page keeps room for
-- updated versions.
CREATE TABLE entries_v3 (
    log_id    BIGINT NOT NULL,
    idx       BIGINT NOT NULL CONSTRAINT entries_idx_check CHECK (idx >= 0),
    entry     BYTEA NOT NULL CONSTRAINT entries_entry_check CHECK (length(entry) <= 65535),
    -- Idempotency: the same principal's same statement is logged once.
    dedup_key BYTEA NOT NULL CONSTRAINT entries_dedup_key_check CHECK (length(dedup_key) = 32),
    CONSTRAINT entries_v3_pkey PRIMARY KEY (log_id, idx) WITH (fillfactor = 100)
) WITH (fillfactor = 100);

INSERT INTO entries_v3 (log_id, idx, entry, dedup_key)
SELECT log_id, idx, entry, dedup_key FROM entries ORDER BY log_id, idx;

DROP TABLE entries;
ALTER TABLE entries_v3 RENAME TO entries;
ALTER TABLE entries RENAME CONSTRAINT entries_v3_pkey TO entries_pkey;

-- A dedup key is logged once per log, enforced by the database. A unique
-- btree would hold every 32-byte key again, with the log ID, in a tree
-- whose pages split at random; a hash index holds a 4-byte hash code per
-- row, and an exclusion constraint with = over it is exactly a uniqueness
-- constraint (violations are SQLSTATE 23P01, not 23505). The log ID is
-- part of the hashed value (dedup_key is exactly 32 bytes, so the
-- concatenation is unambiguous), which lets a lookup name one log without
-- a second condition the planner could answer from the primary key.
ALTER TABLE entries ADD CONSTRAINT entries_dedup_key_once
    EXCLUDE USING hash ((dedup_key || int8send(log_id)) WITH =)
    WITH (fillfactor = 100);

-- Lookup by leaf hash, SHA-256(0x00 ‖ entry), computed by the index.
-- Queries must spell the same expression:
--   WHERE sha256('\x00'::bytea || entry) || int8send(log_id) = $leaf || int8send($log)
CREATE INDEX entries_by_leaf_hash ON entries
    USING hash ((sha256('\x00'::bytea || entry) || int8send(log_id)))
    WITH (fillfactor = 100);

-- Lookup by evidence digest: a version-1 entry (first byte 0x01) holds it
-- at bytes 1..32 (docs/entry-format.md). The index covers version-1
-- entries only; a later entry version whose digest sits elsewhere adds an
-- index of its own, and its lookup query a branch of its own.
CREATE INDEX entries_by_evidence_v1 ON entries
    USING hash ((substring(entry FROM 2 FOR 32) || int8send(log_id)))
    WITH (fillfactor = 100)
    WHERE substring(entry FROM 1 FOR 1) = '\x01'::bytea;

-- Tiles: full tiles only, each inserted once and never updated. Partial
-- tiles are derived when read (from the entries at level 0, from the full
-- tiles below at levels above), so the rows that batches used to rewrite
-- are gone, and with them the bloat of their dead versions.
CREATE TABLE tiles_v3 (
    log_id BIGINT NOT NULL CONSTRAINT tiles_log_id_fkey REFERENCES logs (id),
    level  SMALLINT NOT NULL CONSTRAINT tiles_level_check CHECK (level BETWEEN 0 AND 7),
    idx    BIGINT NOT NULL CONSTRAINT tiles_idx_check CHECK (idx >= 0),
    -- A full tile: 256 hashes of 32 bytes.
    hashes BYTEA NOT NULL CONSTRAINT tiles_hashes_check CHECK (length(hashes) = 8192),
    CONSTRAINT tiles_v3_pkey PRIMARY KEY (log_id, level, idx) WITH (fillfactor = 100)
) WITH (fillfactor = 100);
-- 8 KiB of hashes cannot sit in an 8 KiB page, so they always go to the
-- TOAST table; they are random bytes, so compressing them first only
-- spends CPU. EXTERNAL: out of line, uncompressed.
ALTER TABLE tiles_v3 ALTER COLUMN hashes SET STORAGE EXTERNAL;

INSERT INTO tiles_v3 (log_id, level, idx, hashes)
SELECT log_id, level, idx, hashes FROM tiles
WHERE length(hashes) = 8192
ORDER BY log_id, level, idx;

DROP TABLE tiles;
ALTER TABLE tiles_v3 RENAME TO tiles;
ALTER TABLE tiles RENAME CONSTRAINT tiles_v3_pkey TO tiles_pkey;

-- Statistics on the index expressions from the start, so the planner
-- knows each lookup finds about one row.
ANALYZE entries;
ANALYZE tiles;
