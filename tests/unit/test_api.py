"""The HTTP API through Flask's test client."""
import base64
import json

import pytest

from service.store import Order, StoreUnavailable
from tests.support.servers import basic_auth

ORDER = {"Username": "ann", "Orders": "Thinkpad", "TotalSum": 12.10}


def pull(client, query="", **kwargs):
    response = client.get(f"/api/orders{query}", **kwargs)
    body = json.loads(response.data) if response.status_code == 200 else None
    response.close()  # as a WSGI server would: releases the stream's connection
    return response, body


def put(client, order_id, body, **kwargs):
    return client.put(f"/api/orders/{order_id}", data=json.dumps(body),
                      content_type="application/json", **kwargs)


def test_an_empty_store_serves_an_empty_array(client):
    response, body = pull(client)
    assert response.status_code == 200 and body == []
    assert response.mimetype == "application/json"


def test_sample_orders_are_served_as_entities(make_app):
    client = make_app(LOAD_SAMPLE_ORDERS="true").test_client()
    _, body = pull(client)
    updated = [entity.pop("_updated") for entity in body]
    assert updated == sorted(set(updated))
    assert body == [
        {"_id": "1", "id": 1, "Username": "Unjudosely", "Orders": "Thinkpad", "TotalSum": 8000},
        {"_id": "2", "id": 2, "Username": "Wimen1979", "Orders": "MacbookPro", "TotalSum": 12000},
        {"_id": "3", "id": 3, "Username": "Gotin1984", "Orders": "Chormebook", "TotalSum": 10000}]


def test_since_is_exclusive_and_limit_caps(client, store):
    store.bulk_load(Order(i, "u", "o", "1") for i in range(1, 26))
    full = [e["_updated"] for e in pull(client)[1]]
    assert [e["_updated"] for e in pull(client, f"?since={full[20]}")[1]] == full[21:]
    assert [e["_updated"] for e in pull(client, f"?since={full[19]}&limit=3")[1]] == full[20:23]
    assert pull(client, f"?since={full[-1]}")[1] == []
    assert pull(client, "?subset=whatever")[0].status_code == 200


def test_deletes_are_served_as_tombstones(client):
    put(client, 1, ORDER)
    created = pull(client)[1][0]["_updated"]
    assert client.delete("/api/orders/1").status_code == 204
    [tombstone] = pull(client)[1]
    assert tombstone == {"_id": "1", "_updated": tombstone["_updated"], "_deleted": True}
    assert tombstone["_updated"] > created


@pytest.mark.parametrize("query", ["?since=abc", "?since=1.5", "?limit=-3", "?limit=0",
                                   "?since=1&since=2", "?limit=99999999999999999999999",
                                   "?since=", "?limit=1e3"])
def test_bad_parameters_get_400_with_a_json_reason(client, query):
    response = client.get(f"/api/orders{query}")
    assert response.status_code == 400 and response.mimetype == "application/json"
    body = response.get_json()
    assert body["error"] == "bad_request" and ("since" in body["message"] or "limit" in body["message"])


def test_put_creates_then_replaces(client):
    created = put(client, 5, ORDER)
    assert created.status_code == 201
    assert created.get_json() == {"id": 5, **ORDER}
    assert b'"TotalSum":12.1' in created.data  # the exact decimal, not 12.0999...
    replaced = put(client, 5, {**ORDER, "id": 5, "Username": "bob"})
    assert replaced.status_code == 200 and replaced.get_json()["Username"] == "bob"
    assert client.get("/api/orders/5").get_json()["Username"] == "bob"


def test_get_and_delete_of_missing_orders_are_404(client):
    assert client.get("/api/orders/1").status_code == 404
    assert client.delete("/api/orders/1").status_code == 404
    put(client, 1, ORDER)
    client.delete("/api/orders/1")
    response = client.get("/api/orders/1")
    assert response.status_code == 404 and response.get_json()["error"] == "not_found"


@pytest.mark.parametrize("path", ["/api/orders/abc", "/api/orders/0", "/api/orders/-1",
                                  "/api/orders/99999999999999999999", "/api/orders/1.5"])
def test_bad_ids_in_the_url_are_400(client, path):
    response = client.get(path)
    assert response.status_code == 400 and "order id" in response.get_json()["message"]


@pytest.mark.parametrize("body, field", [
    ({**ORDER, "id": 2}, "'id'"), ({**ORDER, "TotalSum": "12"}, "'TotalSum'"),
    ({"Username": "a", "Orders": "b"}, "'TotalSum'"), ({**ORDER, "_deleted": True}, "'_deleted'"),
    ({**ORDER, "Colour": "red"}, "'Colour'"), ({**ORDER, "Orders": "~:ns:x"}, "'Orders'"),
    ([ORDER], "JSON object"),
])
def test_invalid_bodies_get_400_naming_the_field_and_write_nothing(client, body, field):
    response = put(client, 1, body)
    assert response.status_code == 400 and field in response.get_json()["message"]
    assert pull(client)[1] == []


def test_malformed_json_is_400_and_a_wrong_content_type_415(client):
    response = client.put("/api/orders/1", data=b'{"Username": ', content_type="application/json")
    assert response.status_code == 400 and "not valid JSON" in response.get_json()["message"]
    response = client.put("/api/orders/1", data=json.dumps(ORDER), content_type="text/plain")
    assert response.status_code == 415 and response.mimetype == "application/json"


def test_an_oversized_body_is_413(make_app):
    client = make_app(MAX_BODY_BYTES="2048").test_client()
    response = client.post("/api/orders", data=b"[" + b" " * 5000 + b"]", content_type="application/json")
    assert response.status_code == 413 and response.get_json()["status"] == 413


def test_post_upserts_a_batch_in_one_transaction(client):
    put(client, 1, ORDER)
    mark = pull(client)[1][-1]["_updated"]
    batch = [{"id": 1, **ORDER, "Username": "x"}, {"id": 2, **ORDER}]
    response = client.post("/api/orders", json=batch)
    assert response.status_code == 200 and response.get_json() == {"created": 1, "updated": 1}
    assert [e["_id"] for e in pull(client, f"?since={mark}")[1]] == ["1", "2"]


def test_a_batch_with_one_bad_order_writes_nothing(client):
    response = client.post("/api/orders", json=[{"id": 1, **ORDER}, {"id": 2, **ORDER, "TotalSum": -1}])
    assert response.status_code == 400 and "order [1]" in response.get_json()["message"]
    assert pull(client)[1] == []


def test_unknown_routes_and_methods_answer_json(client):
    assert client.get("/nope").get_json()["status"] == 404
    response = client.patch("/api/orders/1")
    assert response.status_code == 405 and response.get_json()["error"] == "method_not_allowed"
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "PUT", "DELETE"}


def test_health(client):
    response = client.get("/health")
    assert response.status_code == 200 and response.get_json() == {"status": "ok", "receiver": {}, "verification": None}


class BrokenStore:
    """A store whose database is gone."""
    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise StoreUnavailable("the database file cannot be opened")
        return fail


def test_a_store_that_is_down_gives_503_before_any_body(make_app):
    app = make_app()
    app.extensions["store"] = BrokenStore()
    client = app.test_client()
    for path in ("/api/orders", "/health", "/api/orders/1"):
        response = client.get(path)
        assert response.status_code == 503, path
        assert response.get_json()["message"] == "the database file cannot be opened"
        assert response.headers["Retry-After"]


def test_an_unexpected_error_is_500_without_a_traceback(make_app, caplog):
    app = make_app()

    class Exploding:
        def ping(self):
            raise KeyError("SELECT secret FROM internals")
    app.extensions["store"] = Exploding()
    response = app.test_client().get("/health")
    assert response.status_code == 500
    assert b"SELECT" not in response.data and b"Traceback" not in response.data
    assert response.get_json()["error"] == "internal_error"


class TestAuth:
    @pytest.fixture
    def client(self, make_app):
        return make_app(AUTH_USERNAME="sesam", AUTH_PASSWORD="s3cret-pw").test_client()

    @pytest.mark.parametrize("headers", [
        {}, basic_auth("sesam", "wrong"), basic_auth("other", "s3cret-pw"),
        {"Authorization": "Bearer s3cret-pw"}, {"Authorization": "Basic !!!"},
        {"Authorization": "Basic " + base64.b64encode(b"sesam").decode()},
    ])
    def test_every_endpoint_but_health_needs_valid_credentials(self, client, headers):
        for method, path in (("get", "/api/orders"), ("get", "/api/orders/1"),
                             ("put", "/api/orders/1"), ("delete", "/api/orders/1"),
                             ("post", "/api/orders"), ("get", "/nope")):
            response = getattr(client, method)(path, headers=headers)
            assert response.status_code == 401, (method, path)
            assert response.headers["WWW-Authenticate"].startswith("Basic ")
            assert response.get_json()["error"] == "unauthorized"

    def test_health_is_open_and_good_credentials_work(self, client):
        assert client.get("/health").status_code == 200
        assert client.get("/api/orders", headers=basic_auth("sesam", "s3cret-pw")).status_code == 200


def test_logs_are_json_with_request_id_and_never_secrets(make_app, capsys):
    app = make_app(AUTH_USERNAME="sesam", AUTH_PASSWORD="s3cret-pw")
    client = app.test_client()
    put(client, 1, ORDER, headers=basic_auth("sesam", "s3cret-pw"))
    response = client.get("/api/orders", headers={**basic_auth("sesam", "s3cret-pw"),
                                                  "X-Request-Id": "req-42"})
    assert len(response.get_json()) == 1
    response.close()
    assert response.headers["X-Request-Id"] == "req-42"
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    pulls = [line for line in lines if line.get("path") == "/api/orders"]
    assert pulls == [{**pulls[0], "message": "request", "request_id": "req-42", "method": "GET",
                      "status": 200, "entities": 1, "complete": True, "level": "INFO"}]
    assert all({"time", "level", "message"} <= set(line) for line in lines)
    assert "s3cret-pw" not in json.dumps(lines)


def test_an_unsafe_request_id_is_replaced(client):
    response = client.get("/health", headers={"X-Request-Id": "bad id <script>"})
    assert response.headers["X-Request-Id"] != "bad id <script>"
    assert len(response.headers["X-Request-Id"]) == 32


def test_unprotected_start_is_logged_loudly(make_app, capsys):
    make_app()
    warnings = [json.loads(line) for line in capsys.readouterr().out.splitlines()
                if "UNPROTECTED" in line]
    assert warnings and warnings[0]["level"] == "WARNING"


def test_debug_mode_is_off(app):
    assert not app.debug


def test_a_failure_reading_the_first_chunk_is_503_not_a_broken_200(make_app):
    app = make_app()
    store = app.extensions["store"]
    put(app.test_client(), 1, ORDER)

    def failing_open(since, limit):  # a stream reads its first chunk when it opens
        raise StoreUnavailable("the database had an I/O error")

    store.open_changes = failing_open
    response = app.test_client().get("/api/orders")
    assert response.status_code == 503 and response.get_json()["status"] == 503


def test_create_app_only_wires_the_app_and_leaves_the_store_alone(tmp_path):
    """Preparing the store happens once per start (gunicorn.conf.py), not per app."""
    from service.app import create_app
    from service.config import load_settings
    folder = tmp_path / "data"
    app = create_app(load_settings({"DATABASE_URL": f"sqlite:///{folder}/orders.sqlite3"}))
    app.extensions["store"].close()
    assert not folder.exists()


def test_a_large_batch_gives_its_memory_back_and_a_small_one_does_not(make_app, monkeypatch):
    from service import memory
    trims: list[int] = []
    monkeypatch.setattr(memory, "_malloc_trim", trims.append)
    client = make_app().test_client()
    small = [{"id": 1, "Username": "ann", "Orders": "x", "TotalSum": 1}]
    large = [{"id": i, "Username": "ann", "Orders": "x" * 100, "TotalSum": i} for i in range(1, 3001)]
    assert client.post("/api/orders", json=small).status_code == 200 and trims == []
    assert client.post("/api/orders", json=large).status_code == 200 and trims == [0]
    refused = large + [{"id": "not a number"}]  # refused whole: its objects are garbage too
    assert client.post("/api/orders", json=refused).status_code == 400 and trims == [0, 0]
