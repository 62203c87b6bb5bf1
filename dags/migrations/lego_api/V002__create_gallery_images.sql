-- Gallery images users upload; an image may be linked to one of their MOCs.
-- Deleting a MOC keeps its images (unlinked) so the gallery never loses uploads.
CREATE TABLE IF NOT EXISTS gallery_images (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     text        NOT NULL,
    moc_id      uuid        REFERENCES mocs (id) ON DELETE SET NULL,
    title       text        NOT NULL,
    s3_key      text        NOT NULL UNIQUE,
    tags        text[]      NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS gallery_images_user_id_idx ON gallery_images (user_id, created_at DESC);
CREATE INDEX IF NOT EXISTS gallery_images_moc_id_idx ON gallery_images (moc_id);
CREATE INDEX IF NOT EXISTS gallery_images_tags_idx ON gallery_images USING gin (tags);
