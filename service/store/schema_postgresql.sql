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

CREATE TABLE IF NOT EXISTS changes (
    seq      bigint PRIMARY KEY,
    order_id bigint NOT NULL UNIQUE,
    body     text NOT NULL
);

CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL);

CREATE OR REPLACE FUNCTION orders_record_change(order_id bigint, body text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- The lock key is the change table's own oid: one queue per schema.
    PERFORM pg_advisory_xact_lock('changes'::regclass::oid::bigint);
    INSERT INTO changes (seq, order_id, body) VALUES (nextval('change_seq'), order_id, body)
    ON CONFLICT ON CONSTRAINT changes_order_id_key
    DO UPDATE SET seq = excluded.seq, body = excluded.body;
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
        PERFORM orders_record_change(OLD.id, '{"_deleted":true}');
    END IF;
    IF TG_OP <> 'DELETE' THEN
        -- The same bytes SQLite's json_object makes: compact, keys in this order.
        PERFORM orders_record_change(NEW.id,
            '{"id":' || NEW.id || ',"Username":' || to_json(NEW.username)::text
            || ',"Orders":' || to_json(NEW.orders)::text || ',"TotalSum":' || NEW.total_sum::text || '}');
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS orders_track ON orders;
CREATE TRIGGER orders_track AFTER INSERT OR UPDATE OR DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION orders_track();
