-- Orders and their change log in PostgreSQL; the same model as schema_sqlite.sql.
-- Change tracking lives in a trigger, so writes by psql or any other program are
-- tracked exactly like writes through the service.
--
-- `changes` holds one row per order id: its latest version or a tombstone. `seq` comes
-- from one sequence and is the `_updated` value served to Sesam. The sequence follows the
-- clock: before a statement draws values, it is moved up to now in microseconds since
-- the epoch, so a database created anew or restored from a backup hands out values
-- above any that the earlier one served (store/base.py).
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

-- numeric keeps 12.10 as 12.10. What another program may write that the API refuses
-- is refused here too (tests/store/test_constraints.py writes each both ways): an id that is
-- not positive; a text that is empty or blank (ASCII white space), longer than 1,000
-- characters or starts with `~` (Sesam would read a typed value); a TotalSum that is
-- negative, NaN or infinite (the upper bound refuses both), or has more than 28 digits
-- before or 10 after the point. Invalid UTF-8 never gets in: PostgreSQL checks it. A
-- TotalSum of -0 is 0 here, so the API takes it as 0 too.
CREATE TABLE IF NOT EXISTS orders (
    id        bigint PRIMARY KEY CHECK (id > 0),
    username  text NOT NULL,
    orders    text NOT NULL,
    total_sum numeric NOT NULL
);
-- Named, and replaced on every migration, so a database made by an earlier version gets
-- these too. (Migrations run only when the schema version changes: this scans the table.)
ALTER TABLE orders
    DROP CONSTRAINT IF EXISTS orders_username_check,
    DROP CONSTRAINT IF EXISTS orders_orders_check,
    DROP CONSTRAINT IF EXISTS orders_total_sum_check,
    ADD CONSTRAINT orders_username_check CHECK (left(username, 1) <> '~'
        AND char_length(username) <= 1000 AND btrim(username, E' \t\n\r') <> ''),
    ADD CONSTRAINT orders_orders_check CHECK (left(orders, 1) <> '~'
        AND char_length(orders) <= 1000 AND btrim(orders, E' \t\n\r') <> ''),
    ADD CONSTRAINT orders_total_sum_check CHECK (total_sum >= 0 AND total_sum < 1e28
        AND scale(total_sum) <= 10);

CREATE SEQUENCE IF NOT EXISTS change_seq;
-- JSON clients read numbers as doubles: past 2**53 two offsets could read as one. A cache
-- of 1: with more, a session holds numbers it drew earlier, and sequence order would no
-- longer be commit order (see the top of this file).
ALTER SEQUENCE change_seq MAXVALUE 9007199254740991 CACHE 1;

-- `entity` is the complete entity JSON, `_id` and `_updated` included, made once at write
-- time, so a full sync streams ready-made text.
CREATE TABLE IF NOT EXISTS changes (
    seq      bigint PRIMARY KEY,
    order_id bigint NOT NULL UNIQUE,
    entity   text NOT NULL
);
-- A live change also keeps the order's values its entity was made from (NULL in a
-- tombstone; TotalSum as its text): the verification compares them with the table's,
-- column by column, instead of building every order's JSON again (store/verify.py).
-- Version 4's changes get them at the end of this file.
ALTER TABLE changes ADD COLUMN IF NOT EXISTS username text,
    ADD COLUMN IF NOT EXISTS orders text, ADD COLUMN IF NOT EXISTS total_sum text;

-- The schema's version, and the oldest version of the code that can run on it: a release
-- rolled back one version keeps working where the schema allows it (store/base.py).
CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL, oldest_code integer);
ALTER TABLE schema_version ADD COLUMN IF NOT EXISTS oldest_code integer;

-- The receiver of Sesam's JSON push protocol (store/receiver.py, store/README.md).
-- `feed_delivered`: the highest `_updated` a pull has delivered in full (one row): what
-- Sesam may have seen of the feed. `pushed_versions`: for each order the receiver wrote,
-- the `_updated` of the change it wrote, so Sesam knows that version too. `push_state`:
-- the last full and the last incremental push sequence, as JSON. `push_seen`: the order
-- ids the open full sequence has sent so far, kept here so memory stays flat.
CREATE TABLE IF NOT EXISTS feed_delivered (max_updated bigint NOT NULL);
INSERT INTO feed_delivered SELECT 0 WHERE NOT EXISTS (SELECT FROM feed_delivered);
CREATE TABLE IF NOT EXISTS pushed_versions (order_id bigint PRIMARY KEY, seq bigint NOT NULL);
CREATE TABLE IF NOT EXISTS push_state (kind text PRIMARY KEY, state text NOT NULL);
CREATE TABLE IF NOT EXISTS push_seen (order_id bigint PRIMARY KEY);

-- The feed's verification against the table (store/verify.py): when it last started and
-- ended and what it found, one row; a run claims it, so one runs at a time across workers
-- and instances.
CREATE TABLE IF NOT EXISTS verifications (started_us bigint NOT NULL, result text);
INSERT INTO verifications SELECT 0, NULL WHERE NOT EXISTS (SELECT FROM verifications);

-- Who this store is: its generation is made once, when the schema is first created
-- (store/postgresql.py); a restore records its own id and offset (python -m service restored).
CREATE TABLE IF NOT EXISTS store_identity (
    generation     text NOT NULL,
    restore_uuid   text,
    restore_offset bigint
);
-- Where the store lives (store/postgresql.py): the cluster's system identifier, the
-- database's and the orders table's oids, the timeline. Found different at a start, the
-- store was restored or copied elsewhere, and records a restore by itself.
ALTER TABLE store_identity ADD COLUMN IF NOT EXISTS lives_in jsonb;

-- An order as the order API shows it: the entity without `_id` and `_updated`. The same
-- bytes SQLite's json_object makes: compact, keys in this order. STABLE, as to_json is:
-- declared IMMUTABLE, PostgreSQL would not inline it, and comparing a million orders with
-- the feed (store/verify.py) took three times as long.
CREATE OR REPLACE FUNCTION order_document(o orders) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT '{"id":' || o.id || ',"Username":' || to_json(o.username)::text
        || ',"Orders":' || to_json(o.orders)::text || ',"TotalSum":' || o.total_sum::text || '}'
$$;

-- The entity of a change: `document` is the order's JSON, or NULL for a tombstone.
CREATE OR REPLACE FUNCTION change_entity(seq bigint, order_id bigint, document text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT '{"_id":"' || order_id || '","_updated":' || seq || ','
        || coalesce(substr(document, 2), '"_deleted":true}')
$$;

-- The clock the sequence follows: now, in microseconds since the epoch.
CREATE OR REPLACE FUNCTION clock_us() RETURNS bigint
LANGUAGE sql VOLATILE AS $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint $$;

-- Taken before a statement draws sequence values, held until commit (see the top of this
-- file). The lock key is the change table's own oid: one queue per schema. Under the lock
-- no other writer draws values, so moving the sequence up to the clock here keeps every
-- value max(previous + 1, now): unique, increasing, and in commit order.
CREATE OR REPLACE FUNCTION lock_changes() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock('changes'::regclass::oid::bigint);
    PERFORM setval('change_seq', clock_us()) FROM change_seq
        WHERE clock_us() > last_value;
END $$;

-- One trigger per kind of statement (a trigger with transition tables takes one event).
-- Each records all of its statement's changes in one INSERT ... SELECT that streams from
-- the transition tables: set-based, and within work_mem-sized buffers however many rows
-- the statement wrote. Sequence values go out in the order the statement wrote its rows
-- (as version 1's row trigger did), an update's tombstones first. The INSERT is written
-- out in each function because transition tables are visible only to the trigger's own
-- statements; handing the rows to one shared function meant gathering them into arrays,
-- which took 68-196 MB of backend memory for a 300,000-row UPDATE.
CREATE OR REPLACE FUNCTION orders_track_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM new_rows) THEN
        RETURN NULL;  -- no sequence value, so no lock
    END IF;
    PERFORM lock_changes();
    INSERT INTO changes (seq, order_id, entity, username, orders, total_sum)
    SELECT seq, id, change_entity(seq, id, document), username, orders, total_sum
    FROM (SELECT nextval('change_seq') AS seq, n.id, order_document(n::orders) AS document,
                 n.username, n.orders, n.total_sum::text AS total_sum
          FROM new_rows n) AS numbered
    ON CONFLICT ON CONSTRAINT changes_order_id_key
    DO UPDATE SET seq = excluded.seq, entity = excluded.entity, username = excluded.username,
        orders = excluded.orders, total_sum = excluded.total_sum;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION orders_track_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM old_rows) THEN
        RETURN NULL;
    END IF;
    -- A statement that touched rows takes the lock even if it changed nothing.
    PERFORM lock_changes();
    INSERT INTO changes (seq, order_id, entity, username, orders, total_sum)
    SELECT seq, id, change_entity(seq, id, document), username, orders, total_sum
    FROM (SELECT nextval('change_seq') AS seq, id, document, username, orders, total_sum FROM (
            -- A changed key (possible with plain SQL) leaves a tombstone for the old id.
            SELECT 0 AS kind, o.id, NULL::text AS document, NULL AS username, NULL AS orders,
                   NULL AS total_sum FROM old_rows o
            WHERE NOT EXISTS (SELECT FROM new_rows n WHERE n.id = o.id)
            UNION ALL
            -- A row that changes nothing records nothing: Sesam would only receive noise.
            -- total_sum is compared as text, so 8000 -> 8000.0 (equal numbers) is served.
            SELECT 1, n.id, order_document(n::orders), n.username, n.orders, n.total_sum::text
            FROM new_rows n
            WHERE NOT EXISTS (SELECT FROM old_rows o WHERE o.id = n.id
                              AND o.username = n.username AND o.orders = n.orders
                              AND o.total_sum::text = n.total_sum::text)
            ORDER BY kind, id) AS ordered) AS numbered
    ON CONFLICT ON CONSTRAINT changes_order_id_key
    DO UPDATE SET seq = excluded.seq, entity = excluded.entity, username = excluded.username,
        orders = excluded.orders, total_sum = excluded.total_sum;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION orders_track_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM old_rows) THEN
        RETURN NULL;
    END IF;
    PERFORM lock_changes();
    INSERT INTO changes (seq, order_id, entity, username, orders, total_sum)
    SELECT seq, id, change_entity(seq, id, NULL), NULL, NULL, NULL
    FROM (SELECT nextval('change_seq') AS seq, o.id FROM old_rows o) AS numbered
    ON CONFLICT ON CONSTRAINT changes_order_id_key
    DO UPDATE SET seq = excluded.seq, entity = excluded.entity, username = excluded.username,
        orders = excluded.orders, total_sum = excluded.total_sum;
    RETURN NULL;
END $$;

-- Schema version 1 recorded changes row by row (about 86 us a row); drop its trigger.
DROP TRIGGER IF EXISTS orders_track ON orders;
DROP FUNCTION IF EXISTS orders_track();
DROP FUNCTION IF EXISTS orders_record_change(bigint, text);

DROP TRIGGER IF EXISTS orders_track_insert ON orders;
CREATE TRIGGER orders_track_insert AFTER INSERT ON orders
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION orders_track_insert();
DROP TRIGGER IF EXISTS orders_track_update ON orders;
CREATE TRIGGER orders_track_update AFTER UPDATE ON orders
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION orders_track_update();
DROP TRIGGER IF EXISTS orders_track_delete ON orders;
CREATE TRIGGER orders_track_delete AFTER DELETE ON orders
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION orders_track_delete();

-- TRUNCATE fires no DELETE trigger: before it empties the table, a tombstone for every
-- order it removes (rather than refusing it: an operator's TRUNCATE then means what it
-- says in Sesam too, and a program that truncates and reloads shows only what changed
-- once the reload's own changes follow).
CREATE OR REPLACE FUNCTION orders_track_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM lock_changes();
    INSERT INTO changes (seq, order_id, entity, username, orders, total_sum)
    SELECT seq, id, change_entity(seq, id, NULL), NULL, NULL, NULL
    FROM (SELECT nextval('change_seq') AS seq, o.id FROM orders o ORDER BY o.id) AS numbered
    ON CONFLICT ON CONSTRAINT changes_order_id_key
    DO UPDATE SET seq = excluded.seq, entity = excluded.entity, username = excluded.username,
        orders = excluded.orders, total_sum = excluded.total_sum;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS orders_track_truncate ON orders;
CREATE TRIGGER orders_track_truncate BEFORE TRUNCATE ON orders
    FOR EACH STATEMENT EXECUTE FUNCTION orders_track_truncate();

-- The triggers fire in every session_replication_role, replica included (logical
-- replication, pg_restore --disable-triggers' sessions, some migration tools): a write
-- that goes around them is a change Sesam never hears of. The service checks this at
-- every start and verification, since ENABLE TRIGGER sets a trigger back to ORIGIN.
ALTER TABLE orders ENABLE ALWAYS TRIGGER orders_track_insert,
    ENABLE ALWAYS TRIGGER orders_track_update, ENABLE ALWAYS TRIGGER orders_track_delete,
    ENABLE ALWAYS TRIGGER orders_track_truncate;

-- Before version 5, changes did not keep their values: they are taken where the entity is
-- the one the order's values make (a change already differing keeps NULLs, and the
-- verification finds it differing, as it did). Nothing to do in a new database.
UPDATE changes c SET username = o.username, orders = o.orders, total_sum = o.total_sum::text
FROM orders o WHERE o.id = c.order_id AND c.username IS NULL
AND c.entity = change_entity(c.seq, o.id, order_document(o));
