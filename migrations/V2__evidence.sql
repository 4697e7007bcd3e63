-- Evidence bytes, content-addressed by SHA-256, stored beside the log when
-- a client uploads them. Entries hold only the digest, so erasing the bytes
-- (legal erasure) never breaks a proof.
CREATE TABLE evidence (
    sha256    BYTEA PRIMARY KEY CHECK (length(sha256) = 32),
    content   BYTEA NOT NULL,
    stored_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
