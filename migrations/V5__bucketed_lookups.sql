-- Lookups by leaf hash and by evidence digest through btree indexes whose
-- keys begin with the entry's bucket of positions, so that an append
-- touches only the newest bucket's pages. docs/storage.md explains the
-- choice and gives the measured costs.
--
-- A hash index places each new key on a random page of the whole index:
-- at a million entries, each of the three indexes on `entries` was about
-- 36 MB, and every append missed the CPU's caches in each of them. These
-- two lookups need not be spread that way. Their key is
--
--   (idx >> 16) << 32  |  the first 4 bytes of the hash, unsigned
--
-- one 8-byte integer: the bucket of 65,536 positions, then a 32-bit
-- prefix of the hash. Every append falls in the last bucket, a few MB of
-- index that stays in cache whatever the log's size. A lookup probes one
-- key per bucket (= ANY over an array: 16 probes at a million entries) and
-- checks the full hash against the entry, which a 32-bit prefix shared
-- by chance within a bucket cannot pass. The log ID is not in the key:
-- the lookups check it on the entry, as they check the hash.
--
-- The dedup key keeps its hash index and exclusion constraint: it must be
-- checked against the whole log on every append, in whatever bucket.
--
-- Queries must spell the key's expression exactly (crates/storage/src/
-- postgres.rs), or PostgreSQL would not use the index.
--
-- fillfactor 100: only the last bucket's pages receive keys, so pages of
-- the buckets before it, as built here, are never split again.
DROP INDEX entries_by_leaf_hash;
CREATE INDEX entries_by_leaf_hash ON entries ((
    ((idx >> 16) << 32)
    | ('x' || encode(substring(sha256('\x00'::bytea || entry) FROM 1 FOR 4), 'hex'))::bit(32)::bigint
)) WITH (fillfactor = 100);

-- Version-1 entries hold the evidence digest at bytes 1..32
-- (docs/entry-format.md), so its first 4 bytes are bytes 1..4.
DROP INDEX entries_by_evidence_v1;
CREATE INDEX entries_by_evidence_v1 ON entries ((
    ((idx >> 16) << 32)
    | ('x' || encode(substring(entry FROM 2 FOR 4), 'hex'))::bit(32)::bigint
)) WITH (fillfactor = 100)
WHERE substring(entry FROM 1 FOR 1) = '\x01'::bytea;

ANALYZE entries;
