-- The events the ingester stores: one row per event the apps sent.
CREATE TABLE events (
    event_id  bigint      PRIMARY KEY,
    payload   text        NOT NULL,
    -- When the app sent it (added to the Redis stream).
    sent_at   timestamptz NOT NULL,
    -- When the ingester took it from the stream.
    taken_at  timestamptz NOT NULL,
    -- When PostgreSQL stored it.
    stored_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- How many rows `events` holds, kept by PostgreSQL in the inserting
-- transaction itself: counting the table every few milliseconds while it
-- grows would cost the database more than the ingester's writes.
CREATE TABLE events_count (stored bigint NOT NULL);
INSERT INTO events_count VALUES (0);

CREATE FUNCTION count_stored_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE events_count SET stored = stored + (SELECT count(*) FROM added);
    RETURN NULL;
END
$$;

CREATE TRIGGER events_counted AFTER INSERT ON events
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION count_stored_events();
