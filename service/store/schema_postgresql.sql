-- Orders and their change log in PostgreSQL; the same model as schema_sqlite.sql.
-- Change tracking lives in a trigger, so writes by psql or any other program are
-- tracked exactly like writes through the service.
--
-- `changes` holds one row per order id: its latest version or a tombstone. `seq` comes
-- from one sequence and is the `_updated` value served to Sesam.
--
-- No lost change under concurrency. A PostgreSQL sequence hands out values when a
-- transaction writes, not when it commits: if change 41 could commit after change 42 was
-- already served, a reader continuing from since=42 would skip 41 forever. So the
-- trigger takes a transaction-level advisory lock before it draws a sequence value.
-- The lock is held until commit, and PostgreSQL makes a commit visible before it
-- releases the transaction's locks, so the next writer draws its value only after the
-- previous writer's changes are visible: sequence order is commit order, and a reader
-- that sees change N sees every change below N. Readers take no lock at all, so they
-- are never serialised behind writers; only writers of orders queue on each other.

CREATE TABLE IF NOT EXISTS orders (
    id        bigint PRIMARY KEY CHECK (id > 0),
    username  text NOT NULL CHECK (left(username, 1) <> '~'),
    orders    text NOT NULL CHECK (left(orders, 1) <> '~'),
    -- numeric keeps 12.10 as 12.10; the upper bound also refuses 'NaN' and 'Infinity'.
    total_sum numeric NOT NULL CHECK (total_sum >= 0 AND total_sum < 'Infinity')
);

CREATE SEQUENCE IF NOT EXISTS change_seq;

-- `entity` is the complete entity JSON, `_id` and `_updated` included, made once at write
-- time, so a full sync streams ready-made text.
CREATE TABLE IF NOT EXISTS changes (
    seq      bigint PRIMARY KEY,
    order_id bigint NOT NULL UNIQUE,
    entity   text NOT NULL
);

CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL);

-- An order as the order API shows it: the entity without `_id` and `_updated`. The same
-- bytes SQLite's json_object makes: compact, keys in this order.
CREATE OR REPLACE FUNCTION order_document(o orders) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT '{"id":' || o.id || ',"Username":' || to_json(o.username)::text
        || ',"Orders":' || to_json(o.orders)::text || ',"TotalSum":' || o.total_sum::text || '}'
$$;

-- Record a change: `document` is the order's JSON, or NULL for a tombstone.
CREATE OR REPLACE FUNCTION orders_record_change(order_id bigint, document text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    next_seq bigint;
BEGIN
    -- The lock key is the change table's own oid: one queue per schema.
    PERFORM pg_advisory_xact_lock('changes'::regclass::oid::bigint);
    next_seq := nextval('change_seq');
    INSERT INTO changes (seq, order_id, entity) VALUES (next_seq, order_id,
        '{"_id":"' || order_id || '","_updated":' || next_seq || ','
        || coalesce(substr(document, 2), '"_deleted":true}'))
    ON CONFLICT ON CONSTRAINT changes_order_id_key
    DO UPDATE SET seq = excluded.seq, entity = excluded.entity;
END $$;

CREATE OR REPLACE FUNCTION orders_track() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- An update that changes nothing records nothing: Sesam would only receive noise.
    -- total_sum is compared as text, so 8000 -> 8000.0 (equal numbers) is still served.
    IF TG_OP = 'UPDATE' AND OLD.id = NEW.id AND OLD.username = NEW.username
       AND OLD.orders = NEW.orders AND OLD.total_sum::text = NEW.total_sum::text THEN
        RETURN NULL;
    END IF;
    -- A delete, or a changed key (possible with plain SQL), leaves a tombstone.
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND OLD.id <> NEW.id) THEN
        PERFORM orders_record_change(OLD.id, NULL);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM orders_record_change(NEW.id, order_document(NEW));
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS orders_track ON orders;
CREATE TRIGGER orders_track AFTER INSERT OR UPDATE OR DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION orders_track();
