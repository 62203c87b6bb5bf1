-- MOC (My Own Creation) instructions: the core table behind GET /api/mocs.
-- Expand-only and re-runnable, because blue keeps serving from this database while green rolls out.
CREATE TABLE IF NOT EXISTS mocs (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      text        NOT NULL,
    title        text        NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description  text,
    theme        text,
    piece_count  integer     CHECK (piece_count IS NULL OR piece_count >= 0),
    instructions_s3_key text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS mocs_user_id_created_at_idx ON mocs (user_id, created_at DESC);
CREATE INDEX IF NOT EXISTS mocs_theme_idx ON mocs (theme);
