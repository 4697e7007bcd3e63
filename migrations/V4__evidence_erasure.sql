-- Evidence erasure (legal erasure). Erasing evidence deletes its bytes
-- from `evidence` and, in the same transaction, writes a tombstone here
-- saying who erased them, when and why. The entries naming the digest are
-- untouched (they hold only the digest), so every proof stays valid.
--
-- The tombstone is kept for ever: it is what the vault answers in place of
-- the bytes, and what refuses a later upload of the same bytes, which
-- would otherwise quietly undo the erasure. An erasure happens once: a
-- second one returns the first, and the trigger below refuses rewriting
-- or removing a tombstone by hand.
--
-- An upload and an erasure of one digest never interleave: both take a
-- transaction-level advisory lock on the digest before they look
-- (crates/storage/src/postgres.rs), so once an erasure commits no upload
-- that checked for its tombstone too early can still write the bytes.
CREATE TABLE evidence_erasures (
    sha256    BYTEA PRIMARY KEY CHECK (length(sha256) = 32),
    -- Whole milliseconds since the Unix epoch, as the store was given them.
    erased_at TIMESTAMPTZ NOT NULL CHECK (erased_at >= TIMESTAMPTZ '1970-01-01 00:00:00+00'),
    -- The principal who erased the evidence.
    erased_by TEXT NOT NULL CHECK (erased_by <> ''),
    -- Why, as they gave it.
    reason    TEXT NOT NULL CHECK (reason <> '')
);

CREATE FUNCTION evidence_erasures_stand() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the erasure of evidence % stands: it is never rewritten or removed',
        encode(OLD.sha256, 'hex')
        USING ERRCODE = 'integrity_constraint_violation';
END
$$;

CREATE TRIGGER evidence_erasures_stand
    BEFORE UPDATE OR DELETE ON evidence_erasures
    FOR EACH ROW EXECUTE FUNCTION evidence_erasures_stand();
