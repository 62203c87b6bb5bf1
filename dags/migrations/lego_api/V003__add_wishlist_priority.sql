-- Wishlist items gain a priority for sorting. The column is NOT NULL with a default, so blue's
-- code (which never writes it) keeps inserting rows unchanged while green starts reading it.
CREATE TABLE IF NOT EXISTS wishlist_items (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     text        NOT NULL,
    set_number  text        NOT NULL,
    title       text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, set_number)
);

ALTER TABLE wishlist_items ADD COLUMN IF NOT EXISTS priority smallint NOT NULL DEFAULT 0;

DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_constraint
        WHERE conname = 'wishlist_items_priority_range' AND conrelid = 'wishlist_items'::regclass
    ) THEN
        ALTER TABLE wishlist_items
            ADD CONSTRAINT wishlist_items_priority_range CHECK (priority BETWEEN 0 AND 5);
    END IF;
END
$$;

CREATE INDEX IF NOT EXISTS wishlist_items_user_priority_idx ON wishlist_items (user_id, priority DESC);
