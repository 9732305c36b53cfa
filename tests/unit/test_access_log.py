"""Request ids and request log lines (service/access_log.py), and the JSON log formatter."""
import json
import logging

from service.access_log import AccessLog
from service.logs import JsonFormatter, request_id_var
from service.store import Order, StoreIdentity, StoreUnavailable
from tests.support.servers import basic_auth

log = logging.getLogger("service.test")


def log_lines(capsys):
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_generated_request_ids_differ_and_reach_the_error_body(client):
    first = client.get("/api/orders?limit=0")
    second = client.get("/api/orders?limit=0")
    assert first.status_code == second.status_code == 400
    ids = [first.headers["X-Request-Id"], second.headers["X-Request-Id"]]
    assert ids[0] != ids[1] and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert [first.get_json()["request_id"], second.get_json()["request_id"]] == ids


def test_lines_logged_while_streaming_carry_the_request_id_and_later_ones_do_not(make_app, capsys):
    app = make_app()
    store = app.extensions["store"]
    store.upsert_orders([Order(1, "ann", "Thinkpad", "10"), Order(2, "bob", "Mac", "12")])
    original = store.open_changes

    class LoggingStream:
        def __init__(self, stream):
            self._stream = stream
            self.exhausted = False  # force the streamed path
            self.identity = stream.identity

        def chunks(self):
            for chunk in self._stream.chunks():
                log.warning("serving a chunk")
                yield chunk

        @property
        def reached_end(self):
            return self._stream.reached_end

        def close(self):
            self._stream.close()

    store.open_changes = lambda since, limit: LoggingStream(original(since, limit))
    client = app.test_client()
    capsys.readouterr()
    response = client.get("/api/orders", headers={"X-Request-Id": "stream-7"})
    response.get_data()
    response.close()
    log.warning("after the request")
    lines = log_lines(capsys)
    during = [line for line in lines if line["message"] == "serving a chunk"]
    after = [line for line in lines if line["message"] == "after the request"]
    assert during and all(line["request_id"] == "stream-7" for line in during)
    assert "request_id" not in after[0]
    assert request_id_var.get() is None


def test_a_stream_that_breaks_is_logged_as_aborted(make_app, capsys):
    app = make_app()
    store = app.extensions["store"]

    class BrokenStream:
        exhausted = False
        identity = StoreIdentity("a-generation", None, None, 1)

        def chunks(self):
            yield b'{"_id":"1","_updated":1}', 1
            raise StoreUnavailable("gone")

        def close(self):
            pass

    store.open_changes = lambda since, limit: BrokenStream()
    client = app.test_client()
    capsys.readouterr()
    response = client.get("/api/orders", headers={"X-Request-Id": "broken-1"})
    try:
        response.get_data()
    except StoreUnavailable:
        pass
    response.close()
    aborted = [line for line in log_lines(capsys) if line["message"] == "request: stream aborted"]
    assert aborted == [{**aborted[0], "level": "WARNING", "request_id": "broken-1",
                        "entities": 1, "complete": False, "status": 200}]


def test_the_middleware_logs_apps_that_fail_before_answering(capsys):
    def failing_app(environ, start_response):
        raise RuntimeError("boom")

    app = AccessLog(failing_app)
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/x"}
    try:
        app(environ, lambda *args: None)
    except RuntimeError:
        pass
    assert request_id_var.get() is None  # nothing leaks into the thread's next log lines


def test_the_formatter_writes_any_extra_value():
    record = logging.LogRecord("service", logging.INFO, __file__, 1, "big", (), None)
    record.huge = 2 ** 70  # beyond 64 bits: the fast encoder refuses it
    record.thing = object()
    entry = json.loads(JsonFormatter().format(record))
    assert entry["huge"] == 2 ** 70 and entry["thing"].startswith("<object")
    assert entry["time"].endswith("Z") and len(entry["time"]) == len("2026-11-28T10:00:00.000Z")


def test_health_checks_log_only_when_the_answer_changes(make_app, capsys, monkeypatch):
    """The container's health check runs every 5 s; the portal shows 1,000 lines."""
    from service import access_log
    monkeypatch.setattr(access_log, "_last_health_status", None)
    app = make_app(LOG_LEVEL="INFO")
    client = app.test_client()
    capsys.readouterr()
    def health():
        response = client.get("/health")
        response.close()  # as a WSGI server does: this writes the line
        return response.status_code

    assert [health() for _ in range(5)] == [200] * 5
    store = app.extensions["store"]
    monkeypatch.setattr(store, "ping", lambda: (_ for _ in ()).throw(StoreUnavailable("down")))
    assert [health(), health()] == [503, 503]
    monkeypatch.undo()
    monkeypatch.setattr(access_log, "_last_health_status", 503)
    assert health() == 200
    health = [(line["level"], line["message"]) for line in log_lines(capsys) if line.get("path") == "/health"]
    assert health == [("INFO", "health: ok"), ("WARNING", "health: failing"), ("INFO", "health: ok again")]


def test_a_pull_line_says_what_was_asked_what_went_out_and_who_asked(make_app, capsys):
    app = make_app(AUTH_USERNAME="sesam", AUTH_PASSWORD="s3cret-pw")
    app.extensions["store"].upsert_orders([Order(i, "ann", "Thinkpad", "10") for i in (1, 2, 3)])
    capsys.readouterr()
    response = app.test_client().get("/api/orders?since=0&limit=2", headers=basic_auth("sesam", "s3cret-pw"))
    assert response.status_code == 200
    response.close()
    out = capsys.readouterr().out
    [line] = [json.loads(text) for text in out.splitlines() if '"path":"/api/orders"' in text]
    assert (line["since"], line["limit"], line["entities"], line["complete"]) == (0, 2, 2, True)
    assert line["user"] == "sesam" and line["client"] == "127.0.0.1" and line["duration_ms"] >= 0
    assert "s3cret-pw" not in out


def test_a_head_of_a_long_pull_is_an_ordinary_request_not_an_aborted_stream(make_app, capsys):
    app = make_app()
    app.extensions["store"].bulk_load(Order(i, "ann", "Thinkpad", "10") for i in range(1, 301))
    capsys.readouterr()
    response = app.test_client().head("/api/orders")
    assert response.status_code == 200 and response.headers["X-Dataset-Max-Updated"]
    response.close()
    [line] = [line for line in log_lines(capsys) if line.get("path") == "/api/orders"]
    assert (line["level"], line["message"], line["method"]) == ("INFO", "request", "HEAD")


def test_a_refused_request_is_logged_with_the_reason_the_client_was_told(make_app, capsys):
    client = make_app().test_client()
    capsys.readouterr()
    refused = client.get("/api/orders?limit=abc")
    hostile = client.put("/api/orders/1", json={"Username": "x\n" * 400, "Orders": "y",
                                                 "TotalSum": -1})
    fine = client.get("/api/orders")
    for response in (refused, hostile, fine):
        response.close()  # the line is written when the response is closed, as a server does
    lines = [line for line in log_lines(capsys) if line["message"] == "request"]
    assert [line["status"] for line in lines] == [400, 400, 200]
    assert lines[0]["reason"] == refused.get_json()["message"] and "limit" in lines[0]["reason"]
    assert len(lines[1]["reason"]) <= 303 and hostile.status_code == 400
    assert "reason" not in lines[2] and fine.status_code == 200
