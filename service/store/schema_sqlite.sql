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
-- `entity` is the complete entity JSON, `_id` and `_updated` included, made once at
-- write time, so a full sync streams ready-made text instead of serialising every row.

CREATE TABLE IF NOT EXISTS orders (
    id        INTEGER PRIMARY KEY CHECK (typeof(id) = 'integer' AND id > 0),
    username  TEXT NOT NULL CHECK (typeof(username) = 'text' AND substr(username, 1, 1) <> '~'),
    orders    TEXT NOT NULL CHECK (typeof(orders) = 'text' AND substr(orders, 1, 1) <> '~'),
    -- Kept as the decimal text it was given, so 12.10 never becomes a float artefact.
    total_sum TEXT NOT NULL CHECK (
        json_valid(total_sum)
        AND json_type(total_sum) IN ('integer', 'real')
        AND substr(total_sum, 1, 1) <> '-')
);

CREATE TABLE IF NOT EXISTS changes (
    seq      INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL UNIQUE,
    entity   TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS change_counter (value INTEGER NOT NULL);
INSERT INTO change_counter SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM change_counter);

CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);

-- An order as the order API shows it: the entity without `_id` and `_updated`.
CREATE VIEW IF NOT EXISTS order_documents AS
    SELECT id, json_object('id', id, 'Username', username, 'Orders', orders,
                           'TotalSum', json(total_sum)) AS document
    FROM orders;

CREATE TRIGGER IF NOT EXISTS orders_track_insert AFTER INSERT ON orders
BEGIN
    UPDATE change_counter SET value = value + 1;
    DELETE FROM changes WHERE order_id = NEW.id;
    INSERT INTO changes (seq, order_id, entity)
        SELECT value, NEW.id, '{"_id":"' || NEW.id || '","_updated":' || value || ','
            || substr(json_object('id', NEW.id, 'Username', NEW.username, 'Orders', NEW.orders,
                                  'TotalSum', json(NEW.total_sum)), 2)
        FROM change_counter;
END;

-- An update that changes nothing records nothing: Sesam would only receive noise.
CREATE TRIGGER IF NOT EXISTS orders_track_update AFTER UPDATE ON orders
WHEN OLD.id IS NOT NEW.id OR OLD.username IS NOT NEW.username
  OR OLD.orders IS NOT NEW.orders OR OLD.total_sum IS NOT NEW.total_sum
BEGIN
    -- A changed key (possible with plain SQL) deletes the old order: leave a tombstone.
    UPDATE change_counter SET value = value + 1 WHERE OLD.id <> NEW.id;
    DELETE FROM changes WHERE OLD.id <> NEW.id AND order_id = OLD.id;
    INSERT INTO changes (seq, order_id, entity)
        SELECT value, OLD.id, '{"_id":"' || OLD.id || '","_updated":' || value || ',"_deleted":true}'
        FROM change_counter WHERE OLD.id <> NEW.id;
    UPDATE change_counter SET value = value + 1;
    DELETE FROM changes WHERE order_id = NEW.id;
    INSERT INTO changes (seq, order_id, entity)
        SELECT value, NEW.id, '{"_id":"' || NEW.id || '","_updated":' || value || ','
            || substr(json_object('id', NEW.id, 'Username', NEW.username, 'Orders', NEW.orders,
                                  'TotalSum', json(NEW.total_sum)), 2)
        FROM change_counter;
END;

CREATE TRIGGER IF NOT EXISTS orders_track_delete AFTER DELETE ON orders
BEGIN
    UPDATE change_counter SET value = value + 1;
    DELETE FROM changes WHERE order_id = OLD.id;
    INSERT INTO changes (seq, order_id, entity)
        SELECT value, OLD.id, '{"_id":"' || OLD.id || '","_updated":' || value || ',"_deleted":true}'
        FROM change_counter;
END;
