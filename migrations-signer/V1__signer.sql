-- The signer's record: the last tree head it signed for each origin, and
-- the checkpoint it signed for it. Kept in a database of its own, never
-- the log's (docs/storage.md): restoring the log's database from a backup
-- must not roll this back with it. The schema history of this database is
-- `signer_schema_history`, so it never mixes with the log's.

CREATE TABLE signed_heads (
    origin     TEXT PRIMARY KEY,
    size       BIGINT NOT NULL CHECK (size >= 0),
    root       BYTEA NOT NULL CHECK (length(root) = 32),
    checkpoint BYTEA NOT NULL,
    signed_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The record only moves forward, and is never removed: a head once
-- signed stays the floor of every later signature. The signer checks this
-- itself; the trigger refuses the same mistake made by hand in SQL.
CREATE FUNCTION signed_heads_only_grow() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'the signer''s record of % is never deleted', OLD.origin
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.origin <> OLD.origin
        OR NEW.size < OLD.size
        OR (NEW.size = OLD.size AND (NEW.root <> OLD.root OR NEW.checkpoint <> OLD.checkpoint)) THEN
        RAISE EXCEPTION 'the signer''s record of % only grows: size % cannot replace size %',
            OLD.origin, NEW.size, OLD.size
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER signed_heads_only_grow
    BEFORE UPDATE OR DELETE ON signed_heads
    FOR EACH ROW EXECUTE FUNCTION signed_heads_only_grow();
