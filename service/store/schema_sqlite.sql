-- Orders and their change log. The change tracking lives here, in triggers, so a row
-- written by any program (the sqlite3 shell, another application) is tracked exactly
-- like a write through the service.
--
-- `changes` holds one row per order id: the latest version of the order, or a tombstone.
-- Its `seq` comes from the one-row `change_counter`, which only ever grows, so it is
-- unique, strictly increasing and never reused, and it is the `_updated` value served to
-- Sesam. SQLite has one writer at a time, and a writer holds the lock from its first
-- write until it commits, so change N+1 can never be visible while change N is still
-- uncommitted: a reader that continues from `since=N` cannot skip anything.
--
-- The counter follows the clock: each change takes max(previous + 1, now in microseconds
-- since the epoch). So a store created anew (its file lost with its container) or
-- restored from a backup hands out values above any that the earlier store served, and
-- a pipe's old offset can never silently match a later change (store/base.py).
--
-- `entity` is the complete entity JSON, `_id` and `_updated` included, made once at
-- write time, so a full sync streams ready-made text instead of serialising every row.

-- What another program may write here that the API refuses, and what becomes of it
-- (tests/store/test_constraints.py writes each through the API and through plain SQL):
-- refused by the CHECKs below, as the API refuses them: an id that is not a positive
-- integer; a text that is empty or blank (ASCII white space), longer than 1,000
-- characters, or starts with `~` (Sesam would read a typed value); a TotalSum that is
-- not plain decimal notation (negative, ' -5', '1e999', 'NaN', text), or has more than
-- 28 digits before or 10 after the point. Control characters: served, escaped by
-- json_object. Invalid UTF-8: SQLite keeps any bytes as TEXT and no CHECK can test
-- them, so it is served as a valid entity with U+FFFD in its place (store/sqlite.py).
-- (`_` is refused by the API in field names only; a table's columns are fixed.)
CREATE TABLE IF NOT EXISTS orders (
    id        INTEGER PRIMARY KEY CHECK (typeof(id) = 'integer' AND id > 0),
    username  TEXT NOT NULL CHECK (typeof(username) = 'text' AND length(username) <= 1000
        AND trim(username, char(32, 9, 10, 13)) <> '' AND substr(username, 1, 1) <> '~'),
    orders    TEXT NOT NULL CHECK (typeof(orders) = 'text' AND length(orders) <= 1000
        AND trim(orders, char(32, 9, 10, 13)) <> '' AND substr(orders, 1, 1) <> '~'),
    -- Kept as the decimal text it was given, so 12.10 never becomes a float artefact.
    total_sum TEXT NOT NULL CHECK (
        json_valid(total_sum)
        AND json_type(total_sum) IN ('integer', 'real')
        AND total_sum NOT GLOB '*[^0-9.]*'
        AND instr(total_sum || '.', '.') - 1 <= 28
        AND length(total_sum) - instr(total_sum || '.', '.') <= 10)
);

-- A live change also keeps the order's values its entity was made from (NULL in a
-- tombstone): the verification compares them with the table's, column by column, instead
-- of building every order's JSON again (store/verify.py). Version 3's changes get them in
-- the migration (store/sqlite.py).
CREATE TABLE IF NOT EXISTS changes (
    seq       INTEGER PRIMARY KEY,
    order_id  INTEGER NOT NULL UNIQUE,
    entity    TEXT NOT NULL,
    username  TEXT,
    orders    TEXT,
    total_sum TEXT
);

-- JSON clients read numbers as doubles: past 2**53 two offsets could read as one. (A
-- CHECK, not a trigger: a trigger on every counter update cost a third of a bulk load.)
CREATE TABLE IF NOT EXISTS change_counter (
    value INTEGER NOT NULL
        CONSTRAINT "the change counter has reached 2**53" CHECK (value <= 9007199254740991)
);
INSERT INTO change_counter SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM change_counter);

-- The clock the counter follows, to the millisecond SQLite keeps ('now' is fixed within
-- one statement step; the counter's +1 keeps values apart). 210866760000000 is the Unix
-- epoch in milliseconds of the Julian day count that julianday() returns.
CREATE VIEW IF NOT EXISTS clock AS
    SELECT (CAST(round(julianday('now') * 86400000) AS INTEGER) - 210866760000000) * 1000
        AS now_us;


-- Who this store is: its generation is made once, when the schema is first created
-- (store/sqlite.py); a restore records its own id and offset (python -m service restored).
CREATE TABLE IF NOT EXISTS store_identity (
    generation     TEXT NOT NULL,
    restore_uuid   TEXT,
    restore_offset INTEGER
);

-- The schema's version, and the oldest version of the code that can run on it: a release
-- rolled back one version keeps working where the schema allows it (store/base.py).
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, oldest_code INTEGER);

-- The receiver of Sesam's JSON push protocol (store/receiver.py, store/README.md).
-- `feed_delivered`: the highest `_updated` a pull has delivered in full (one row): what
-- Sesam may have seen of the feed. `pushed_versions`: for each order the receiver wrote,
-- the `_updated` of the change it wrote, so Sesam knows that version too. `push_state`:
-- the last full and the last incremental push sequence, as JSON. `push_seen`: the order
-- ids the open full sequence has sent so far, kept here so memory stays flat.
CREATE TABLE IF NOT EXISTS feed_delivered (max_updated INTEGER NOT NULL);
INSERT INTO feed_delivered SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM feed_delivered);
CREATE TABLE IF NOT EXISTS pushed_versions (order_id INTEGER PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS push_state (kind TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS push_seen (order_id INTEGER PRIMARY KEY);

-- The feed's verification against the table (store/verify.py): when it last started and
-- ended and what it found, one row; a run claims it, so one runs at a time across workers
-- and instances.
CREATE TABLE IF NOT EXISTS verifications (started_us INTEGER NOT NULL, result TEXT);
INSERT INTO verifications SELECT 0, NULL WHERE NOT EXISTS (SELECT 1 FROM verifications);

-- A migration from version 1 copies the old orders in here, before the triggers exist.
-- @triggers

-- The views are made anew at every start, as the triggers are.
DROP VIEW IF EXISTS next_entities;
DROP VIEW IF EXISTS order_documents;

-- An order as the order API shows it: the entity without `_id` and `_updated`. The one
-- place an order's JSON is built; the change log's entities are made from it.
CREATE VIEW order_documents AS
    SELECT id, json_object('id', id, 'Username', username, 'Orders', orders,
                           'TotalSum', json(total_sum)) AS document,
           username, orders, total_sum
    FROM orders;

-- Each order's next change as it is recorded: `_id`, the counter's value as `_updated`,
-- then the document, and the values it was made from. The one place a live entity is
-- built (SQLite flattens the view into each trigger's statement, so it costs nothing).
CREATE VIEW next_entities AS
    SELECT value AS seq, id AS order_id,
           '{"_id":"' || id || '","_updated":' || value || ',' || substr(document, 2) AS entity,
           username, orders, total_sum
    FROM change_counter, order_documents;
-- Version 1 counted changes 1, 2, 3...: its triggers are replaced by those below.
DROP TRIGGER IF EXISTS orders_track_insert;
DROP TRIGGER IF EXISTS orders_track_update;
DROP TRIGGER IF EXISTS orders_track_delete;

-- Each trigger writes its change in three steps: move the counter on, drop the order's
-- previous change, insert the new one with the counter's value as `seq` and `_updated`.
CREATE TRIGGER orders_track_insert AFTER INSERT ON orders
BEGIN
    UPDATE change_counter SET value = max(value + 1, (SELECT now_us FROM clock));
    DELETE FROM changes WHERE order_id = NEW.id;
    INSERT INTO changes (seq, order_id, entity, username, orders, total_sum)
        SELECT * FROM next_entities WHERE order_id = NEW.id;
END;

-- An update that changes nothing records nothing: Sesam would only receive noise.
CREATE TRIGGER orders_track_update AFTER UPDATE ON orders
WHEN OLD.id IS NOT NEW.id OR OLD.username IS NOT NEW.username
  OR OLD.orders IS NOT NEW.orders OR OLD.total_sum IS NOT NEW.total_sum
BEGIN
    -- A changed key (possible with plain SQL) deletes the old order: leave a tombstone.
    UPDATE change_counter SET value = max(value + 1, (SELECT now_us FROM clock))
        WHERE OLD.id <> NEW.id;
    DELETE FROM changes WHERE OLD.id <> NEW.id AND order_id = OLD.id;
    INSERT INTO changes (seq, order_id, entity)
        SELECT value, OLD.id, '{"_id":"' || OLD.id || '","_updated":' || value || ',"_deleted":true}'
        FROM change_counter WHERE OLD.id <> NEW.id;
    UPDATE change_counter SET value = max(value + 1, (SELECT now_us FROM clock));
    DELETE FROM changes WHERE order_id = NEW.id;
    INSERT INTO changes (seq, order_id, entity, username, orders, total_sum)
        SELECT * FROM next_entities WHERE order_id = NEW.id;
END;

CREATE TRIGGER orders_track_delete AFTER DELETE ON orders
BEGIN
    UPDATE change_counter SET value = max(value + 1, (SELECT now_us FROM clock));
    DELETE FROM changes WHERE order_id = OLD.id;
    INSERT INTO changes (seq, order_id, entity)
        SELECT value, OLD.id, '{"_id":"' || OLD.id || '","_updated":' || value || ',"_deleted":true}'
        FROM change_counter;
END;
