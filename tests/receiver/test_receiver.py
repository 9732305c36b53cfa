"""Sesam's JSON push protocol into the store, on both backends, through the app."""
from __future__ import annotations

import json

import pytest

from service.store import Order
from tests.receiver.conftest import entity, feed, max_updated, push
from tests.support.databases import live_orders, plain_sql


def load(store, ids) -> None:
    store.bulk_load(Order(i, f"user{i}", "Thinkpad", "12.10") for i in ids)


def as_entities(ids) -> list[dict]:
    return [entity(i, f"user{i}") for i in ids]


def test_a_full_sync_deletes_exactly_what_sesam_no_longer_holds(client, store, sink, pipe,
                                                                database_url):
    load(store, range(1, 10_054))  # 10,050 that Sesam holds, and 3 it no longer does
    pipe.run()  # the collect pipe has seen all of them
    before = max_updated(client)
    sequence = sink(batch_size=100)

    # An API write lands mid-sequence: after the first half of the batches.
    posted = {"n": 0}
    original = sequence.post

    def post(path, params, body):
        posted["n"] += 1
        if posted["n"] == 50:
            assert client.put("/api/orders/20000", data=json.dumps(
                {"Username": "mid", "Orders": "Pixel", "TotalSum": 5}),
                content_type="application/json").status_code == 201
        return original(path, params, body)
    sequence.post = post
    result = sequence.run(as_entities(range(1, 10_051)), full=True)

    assert result.requests == 102  # 101 batches of up to 100, and the empty last one
    assert result.last_reply["swept"] == 3
    changes = feed(client, before)
    tombstones = sorted(change["_id"] for change in changes if change.get("_deleted"))
    assert tombstones == ["10051", "10052", "10053"]
    assert [change["_id"] for change in changes if not change.get("_deleted")] == ["20000"]
    assert len(live_orders(database_url)) == 10_051


def test_unchanged_orders_add_no_change_and_a_decimal_keeps_its_stored_form(client, store, pipe):
    load(store, [1])
    pipe.run()
    before = max_updated(client)
    response = push(client, [entity(1, "user1", total="~f12.1")], sequence_id="s", request_id="r1")
    assert response.status_code == 200, response.data
    assert response.json["unchanged"] == 1 and response.json["written"] == 0
    assert feed(client, before) == []
    assert json.loads(client.get("/api/orders/1").data)["TotalSum"] == 12.10
    assert client.get("/api/orders/1").data.decode().endswith('"TotalSum":12.10}')


def test_sesam_decimals_and_namespaced_ids_become_orders(client):
    pushed = [{"_id": "global-order:7", "global-order:id": 7, "global-order:Username": "bo",
               "global-order:Orders": "Pixel", "global-order:TotalSum": "~f1234.5600",
               "_updated": 5, "_hash": "abc", "_ts": 1, "global-order:extra": [1, 2],
               "rdf:type": "~:order:Order"},
              {"_id": "8", "Username": "cy", "Orders": "Mac", "TotalSum": 3}]
    response = push(client, pushed, sequence_id="s", request_id="r1")
    assert response.status_code == 200, response.data
    assert response.json["written"] == 2
    assert json.loads(client.get("/api/orders/7").data) == {
        "id": 7, "Username": "bo", "Orders": "Pixel", "TotalSum": 1234.56}
    assert client.get("/api/orders/7").data.decode().endswith('"TotalSum":1234.5600}')
    assert json.loads(client.get("/api/orders/8").data)["Orders"] == "Mac"


def test_the_latest_updated_wins_within_a_request_and_deleted_deletes(client, store, pipe):
    load(store, [1, 2])
    pipe.run()
    pushed = [entity(1, "new", _updated=9), entity(1, "old", _updated=3),
              {"_id": "2", "_deleted": True, "Username": "whatever", "_updated": 1}]
    response = push(client, pushed, sequence_id="s", request_id="r1")
    assert response.status_code == 200, response.data
    assert json.loads(client.get("/api/orders/1").data)["Username"] == "new"
    assert client.get("/api/orders/2").status_code == 404
    assert feed(client)[-1] == {"_id": "2", "_updated": feed(client)[-1]["_updated"], "_deleted": True}


def test_a_replaced_entity_neither_deletes_nor_writes(client, store, pipe):
    load(store, [1])
    pipe.run()
    before = max_updated(client)
    response = push(client, [{"_id": "1", "_deleted": True, "$replaced": True}],
                    sequence_id="s", request_id="r1")
    assert response.status_code == 200 and response.json["ignored"] == 1
    assert client.get("/api/orders/1").status_code == 200 and feed(client, before) == []


def test_an_api_write_between_a_pull_and_the_push_of_the_older_version_survives(
        client, store, pipe, sink):
    load(store, [1, 2])
    pipe.run()
    assert client.put("/api/orders/1", data=json.dumps(
        {"Username": "written-here", "Orders": "Pixel", "TotalSum": 1}),
        content_type="application/json").status_code == 200
    # Sesam still holds the version it pulled, changed in Sesam, and pushes it back,
    # incrementally and then in a full sync that does not send order 2 either.
    response = push(client, [entity(1, "changed-in-sesam")], sequence_id="s", request_id="r1")
    assert response.json["kept_newer"] == 1
    result = sink().run([entity(1, "changed-in-sesam")], full=True)
    assert result.last_reply["swept"] == 1  # order 2: Sesam had seen it, and no longer holds it
    assert json.loads(client.get("/api/orders/1").data)["Username"] == "written-here"
    assert client.get("/api/orders/2").status_code == 404
    pipe.run()  # once Sesam has pulled the write, its changes are taken again
    response = push(client, [entity(1, "changed-in-sesam")], sequence_id="s", request_id="r2")
    assert response.json["written"] == 1


def test_orders_written_after_the_last_pull_survive_a_full_sync(client, store, pipe, sink):
    load(store, [1, 2])
    pipe.run()
    load(store, [3])  # another program, after Sesam's last pull
    result = sink().run(as_entities([1]), full=True)
    assert result.last_reply["swept"] == 1
    assert client.get("/api/orders/3").status_code == 200
    assert client.get("/api/orders/2").status_code == 404


def test_sesam_may_change_an_order_it_wrote_before_pulling_it_back(client):
    assert push(client, [entity(5, "first")], sequence_id="s", request_id="r1").json["written"] == 1
    assert push(client, [entity(5, "second")], sequence_id="s", request_id="r2").json["written"] == 1
    assert json.loads(client.get("/api/orders/5").data)["Username"] == "second"


def test_a_sequence_killed_midway_deletes_nothing(client, store, pipe, sink):
    load(store, range(1, 201))
    pipe.run()
    for number in range(50):  # request 50 never comes
        params = {"sequence_id": "dead", "request_id": f"r{number}", "is_full": True,
                  "is_first": number == 0, "previous_request_id": f"r{number - 1}" if number else None}
        assert push(client, as_entities([number + 1]), **params).status_code == 200
    assert len(feed(client)) == 200 and not any(e.get("_deleted") for e in feed(client))
    # A new sequence replaces it; the first one's ids no longer count.
    result = sink().run(as_entities(range(1, 201)), full=True)
    assert result.last_reply["swept"] == 0
    assert not any(e.get("_deleted") for e in feed(client))


def test_a_wrong_previous_request_id_is_refused_and_changes_nothing(client, store, pipe):
    load(store, [1, 2])
    pipe.run()
    assert push(client, [entity(1)], sequence_id="s", request_id="r1", is_full=True,
                is_first=True).status_code == 200
    before = client.get("/api/orders")
    response = push(client, [entity(1, "x"), {"_id": "2", "_deleted": True}], sequence_id="s",
                    request_id="r2", previous_request_id="wrong", is_full=True, is_last=True)
    assert response.status_code == 409 and response.json["error"] == "sequence_conflict"
    after = client.get("/api/orders")
    assert after.data == before.data
    assert after.headers["X-Dataset-Max-Updated"] == before.headers["X-Dataset-Max-Updated"]


def test_a_replayed_request_adds_no_change(client, store, pipe):
    load(store, [1])
    pipe.run()
    first = {"sequence_id": "s", "request_id": "r1", "is_full": True, "is_first": True}
    assert push(client, [entity(1, "one")], **first).json["written"] == 1
    before = max_updated(client)
    again = push(client, [entity(1, "two")], **first)
    assert again.status_code == 200 and again.json["repeat"] is True
    assert max_updated(client) == before
    assert json.loads(client.get("/api/orders/1").data)["Username"] == "one"


def test_is_first_late_and_is_full_switching_are_conflicts(client):
    assert push(client, [], sequence_id="s", request_id="r1", is_full=True,
                is_first=True).status_code == 200
    late = push(client, [], sequence_id="s", request_id="r2", previous_request_id="r1",
                is_full=True, is_first=True)
    switched = push(client, [entity(1)], sequence_id="s", request_id="r3", previous_request_id="r1")
    unknown = push(client, [], sequence_id="t", request_id="r1", is_full=True)
    assert [late.status_code, switched.status_code, unknown.status_code] == [409, 409, 409]
    assert push(client, [], sequence_id="i", request_id="r1").status_code == 200
    assert push(client, [], sequence_id="i", request_id="r2", is_full=True,
                previous_request_id="r1").status_code == 409
    assert client.get("/api/orders/1").status_code == 404


def test_an_empty_full_sync_against_a_full_store_is_refused(client, store, pipe, sink, database_url):
    load(store, range(1, 11))
    pipe.run()
    response = push(client, [], sequence_id="s", request_id="r1", is_full=True, is_first=True,
                    is_last=True)
    assert response.status_code == 422 and "sent no entity" in response.json["message"]
    assert len(live_orders(database_url)) == 10
    health = json.loads(client.get("/health").data)
    assert health["receiver"]["full"]["status"] == "refused"


def test_a_sweep_of_more_than_the_allowed_share_is_refused_whole(make_app, database_url):
    client = make_app(RECEIVER_MAX_DELETE_SHARE="0.25").test_client()
    store = client.application.extensions["store"]
    load(store, range(1, 11))
    feed(client)  # delivered
    response = push(client, as_entities([1, 2, 3]) + [entity(11, "new")], sequence_id="s",
                    request_id="r1", is_full=True, is_first=True, is_last=True)
    assert response.status_code == 422 and "would delete 7 of 11" in response.json["message"]
    assert len(live_orders(database_url)) == 10 and client.get("/api/orders/11").status_code == 404


def test_a_bad_entity_names_itself_and_its_order_survives_the_sweep(client, store, pipe, sink, database_url):
    load(store, range(1, 6))
    pipe.run()
    entities = as_entities(range(1, 6))
    entities[2] = {**entities[2], "TotalSum": "~fNaN"}
    result = sink(batch_size=10).run(entities, full=True)
    assert [e["_id"] for e in result.dead_lettered] == ["3"]
    assert result.last_reply["swept"] == 0
    assert len(live_orders(database_url)) == 5
    response = push(client, [entity(9), {"_id": "x:abc"}], sequence_id="t", request_id="r1")
    assert response.status_code == 400
    assert response.json["entity_id"] == "x:abc" and "names no order id" in response.json["message"]
    assert client.get("/api/orders/9").status_code == 404  # whole or not at all


def test_refused_entities(client):
    cases = [({"_id": "5", "id": 6, "Username": "a", "Orders": "b", "TotalSum": 1}, "disagrees"),
             ({"_id": "0", "Username": "a", "Orders": "b", "TotalSum": 1}, "names no order id"),
             ({"_id": "5", "Username": "a", "Orders": "b"}, "TotalSum is missing"),
             ({"_id": "5", "Username": "a", "x:Username": "b", "Orders": "b", "TotalSum": 1},
              "several names"),
             ({"_id": "5", "Username": "a", "Orders": "b", "TotalSum": "12"}, "Sesam decimal"),
             ({"_id": "5", "Username": "a", "Orders": "b", "TotalSum": "~f-1"}, "negative"),
             ({"_id": "5", "_deleted": "yes"}, "_deleted")]
    for pushed, reason in cases:
        response = push(client, [pushed], sequence_id="s", request_id="r")
        assert response.status_code == 400 and reason in response.json["message"], (pushed, response.json)
    assert push(client, {"_id": "1"}, sequence_id="s", request_id="r").status_code == 400
    assert push(client, [], request_id="r").status_code == 400
    assert push(client, [], sequence_id="s", request_id="r", is_last=True).status_code == 400


def test_the_loop_through_sesam_settles(client, store, pipe, sink):
    """Orders flow out through the collect pipe and back in through the sink: the
    second round trip writes nothing, so nothing ping-pongs."""
    load(store, range(1, 51))
    pipe.run()
    dataset = [{key: value for key, value in e.items() if key != "_updated"}
               for e in pipe.state.live().values()]
    for e in dataset:  # Sesam's decimals as a sink sends them
        e["TotalSum"] = f"~f{e['TotalSum']}"
    before = max_updated(client)
    first = sink().run(dataset, full=True)
    assert first.last_reply["swept"] == 0 and feed(client, before) == []
    dataset[0]["Username"] = "changed-in-sesam"
    sink().run(dataset[:1])
    changed = feed(client, before)
    assert [e["_id"] for e in changed] == [dataset[0]["_id"]]
    pipe.run()  # the change comes back to Sesam; pushed again, it settles
    assert sink().run(dataset[:1]).last_reply["unchanged"] == 1
    assert feed(client, max_updated(client)) == []


def test_health_tells_the_last_full_sync(client, store, pipe, sink):
    load(store, [1, 2])
    pipe.run()
    sink().run(as_entities([1]), full=True)
    full = json.loads(client.get("/health").data)["receiver"]["full"]
    assert full["status"] == "ended" and full["swept"] == 1 and full["entities"] == 1
    assert full["began"].endswith("Z") and full["ended"].endswith("Z")


def test_a_store_of_the_previous_version_gets_the_receivers_tables_and_keeps_its_feed(
        any_store, database_url, backend):
    any_store.upsert_orders([Order(1, "ann", "Thinkpad", "12.10")])
    previous = {"sqlite": 2, "postgresql": 3}[backend]
    with plain_sql(database_url) as connection:
        for table in ("feed_delivered", "pushed_versions", "push_state", "push_seen"):
            connection.execute(f"DROP TABLE {table}")
        connection.execute(f"UPDATE schema_version SET version = {previous}")
        before = connection.execute("SELECT seq, entity FROM changes").fetchall()
    any_store.migrate()
    with plain_sql(database_url) as connection:
        assert connection.execute("SELECT seq, entity FROM changes").fetchall() == before
        assert connection.execute("SELECT max_updated FROM feed_delivered").fetchall() == [(0,)]
    assert any_store.receiver_status() == {}


def test_a_replaced_entity_counts_as_sent_in_a_full_sync(client, store, pipe, sink):
    load(store, [1, 2])
    pipe.run()
    result = sink().run([entity(1, "user1"), {"_id": "2", "_deleted": True, "$replaced": True}],
                        full=True)
    assert result.last_reply["swept"] == 0 and client.get("/api/orders/2").status_code == 200


def test_an_incremental_push_during_a_full_sync_survives_its_sweep(client, store, pipe):
    load(store, [1])
    pipe.run()
    full = {"sequence_id": "full", "is_full": True}
    assert push(client, [entity(1, "user1")], request_id="r1", is_first=True, **full).status_code == 200
    assert push(client, [entity(7, "new")], sequence_id="incr", request_id="i1").json["written"] == 1
    last = push(client, [], request_id="r2", previous_request_id="r1", is_last=True, **full)
    assert last.status_code == 200 and last.json["swept"] == 0
    assert client.get("/api/orders/7").status_code == 200


def test_a_full_sync_that_went_quiet_is_abandoned_and_leaves_nothing_behind(
        client, store, pipe, database_url, monkeypatch):
    from service.store import receiver
    load(store, [1, 2])
    pipe.run()
    assert push(client, [entity(1, "user1")], sequence_id="quiet", request_id="r1", is_full=True,
                is_first=True).status_code == 200
    later = receiver.time.time() + receiver.ABANDON_AFTER_S + 1
    monkeypatch.setattr(receiver.time, "time", lambda: later)
    assert push(client, [], sequence_id="other", request_id="i1").status_code == 200
    with plain_sql(database_url) as connection:
        assert connection.execute("SELECT count(*) FROM push_seen").fetchone() == (0,)
    resumed = push(client, [], sequence_id="quiet", request_id="r2", previous_request_id="r1",
                   is_full=True, is_last=True)
    assert resumed.status_code == 409 and "abandoned" in resumed.json["message"]
    assert len(live_orders(database_url)) == 2
    assert json.loads(client.get("/health").data)["receiver"]["full"]["status"] == "abandoned"


def test_a_pull_never_waits_long_to_record_what_it_delivered(client, store, backend, database_url):
    """SQLite: another program holds the write lock; the pull's close gives up on the
    mark after half a second (not the writers' 60 s) and the next pull records it."""
    if backend != "sqlite":
        pytest.skip("PostgreSQL's update of one row waits for no long write")
    import time
    load(store, [1, 2])
    with plain_sql(database_url) as writer:
        writer.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        assert len(feed(client)) == 2
        waited = time.monotonic() - started
        writer.execute("ROLLBACK")
    assert waited < 10
    with plain_sql(database_url) as connection:
        assert connection.execute("SELECT max_updated FROM feed_delivered").fetchone() == (0,)
    feed(client)
    with plain_sql(database_url) as connection:
        assert connection.execute("SELECT max_updated FROM feed_delivered").fetchone() == (max_updated(client),)
