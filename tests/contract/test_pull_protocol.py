"""The Sesam JSON pull protocol, rule by rule (shared/docs/sesam.md, section 1)."""
from __future__ import annotations

import json
import random

import pytest

from tests.contract.seeding import REMOTE_SEED_BASE, order
import itertools

BAD_SINCE = ["abc", "1.5", "-1", "", "1e3", "0x10", "99999999999999999999999"]
BAD_LIMIT = ["0", "-3", "abc", "", "2.5", "99999999999999999999999"]


def needs(entities: list[dict], count: int) -> None:
    if len(entities) < count:
        pytest.skip(f"the target serves {len(entities)} entities; this rule needs {count}")


def test_the_body_is_a_json_array_with_a_json_content_type(target):
    reply = target.get()
    assert reply.status == 200
    assert reply.content_type.split(";")[0].strip() == "application/json"
    assert isinstance(json.loads(reply.body), list)


def test_every_entity_has_a_string_id_and_an_updated(full):
    needs(full, 1)
    for entity in full:
        assert isinstance(entity, dict)
        assert isinstance(entity.get("_id"), str) and entity["_id"]
        assert "_updated" in entity


def test_updated_is_of_one_type_and_strictly_increasing(full):
    needs(full, 2)
    kinds = {type(entity["_updated"]) for entity in full}
    assert len(kinds) == 1 and kinds <= {int, str}, kinds
    values = [entity["_updated"] for entity in full]
    assert all(a < b for a, b in itertools.pairwise(values)), "not strictly increasing"


def test_each_id_appears_once_in_a_full_read(full):
    ids = [entity["_id"] for entity in full]
    assert len(ids) == len(set(ids))


def test_since_is_exclusive(target, full):
    needs(full, 2)
    for k in sorted({0, 1, len(full) // 2, len(full) - 2}):
        assert target.pull(since=full[k]["_updated"]) == full[k + 1:], f"since={full[k]['_updated']}"


def test_the_docs_example_since_21_returns_22_onwards(target, full):
    # With integer sequence numbers: since=21 serves exactly what follows 21.
    needs(full, 1)
    if not isinstance(full[0]["_updated"], int):
        pytest.skip("the target's _updated is not an integer")
    pivot = full[len(full) // 2]["_updated"]
    assert target.pull(since=pivot) == [e for e in full if e["_updated"] > pivot]
    assert target.pull(since=pivot - 1, limit=3) == [e for e in full if e["_updated"] > pivot - 1][:3]


def test_since_the_last_updated_is_empty(target, full):
    needs(full, 1)
    assert target.pull(since=full[-1]["_updated"]) == []


def test_limit_caps_and_keeps_the_order(target, full):
    for limit in (1, 2, 3, 7):
        assert target.pull(limit=limit) == full[:limit]


def test_paging_with_every_page_size_reassembles_one_full_read(target, full):
    needs(full, 2)
    sizes = list(range(1, min(len(full), 45) + 2)) + [len(full), len(full) + 1, 10_000]
    for size in sizes:
        pages, since, requests = [], None, 0
        while True:
            params = {"limit": size} if since is None else {"since": since, "limit": size}
            page = target.pull(**params)
            requests += 1
            assert len(page) <= size
            if not page:
                break
            pages.extend(page)
            since = page[-1]["_updated"]
            assert requests <= len(full) + 2, "paging does not end"
        assert pages == full, f"page size {size}"


@pytest.mark.parametrize("value", BAD_SINCE)
def test_a_bad_since_is_400_with_a_json_body(target, value):
    check_400(target.get(since=value))


@pytest.mark.parametrize("value", BAD_LIMIT)
def test_a_bad_limit_is_400_with_a_json_body(target, value):
    check_400(target.get(limit=value))


def test_a_repeated_parameter_is_400(target):
    check_400(target.transport(target.pull_path + "?since=1&since=2", {}))


def check_400(reply):
    assert reply.status == 400, reply.status
    assert reply.content_type.split(";")[0].strip() == "application/json"
    assert json.loads(reply.body)  # a JSON reason, not an HTML page


def test_auth_is_enforced_when_configured(target):
    if not target.auth_configured:
        pytest.skip("no credentials configured for this target (--service-user)")
    for transport in (target.anonymous, target.wrong_password):
        reply = transport(target.pull_path, {})
        assert reply.status == 401
        assert json.loads(reply.body)


def test_a_write_shows_up_after_the_last_offset_and_nothing_else(writable):
    last = writable.pull()[-1]["_updated"]
    order_id = pick_id(writable)
    assert writable.write("PUT", f"/api/orders/{order_id}", order(order_id, "fresh")) in (200, 201)
    changed = writable.pull(since=last)
    assert [entity["_id"] for entity in changed] == [str(order_id)]
    assert changed[0]["Username"] == "fresh"


def test_a_delete_appears_as_a_tombstone(writable):
    order_id = pick_id(writable)
    writable.write("PUT", f"/api/orders/{order_id}", order(order_id, "doomed"))
    last = writable.pull()[-1]["_updated"]
    assert writable.write("DELETE", f"/api/orders/{order_id}", None) == 204
    tombstones = writable.pull(since=last)
    assert len(tombstones) == 1 and tombstones[0]["_id"] == str(order_id)
    assert tombstones[0]["_deleted"] is True and tombstones[0]["_updated"] > last


def pick_id(target) -> int:
    base = REMOTE_SEED_BASE if target.name == "url" else 0
    return base + random.randint(100, 10_000)
