"""The databases refuse what the API refuses (issue 16, points 2 and 3): every value the
API rejects is written through the API and through plain SQL, the sqlite3 shell and
psql included, and both refuse it. The feed stays valid whatever another program writes."""
import json
import sqlite3
import shutil
import subprocess

import psycopg
import pytest

from tests.support.databases import plain_sql

# (field, the value as JSON in a request, the same value as SQL; None: as JSON)
REFUSED = [
    ("Username", "", None), ("Username", "   ", None), ("Username", "\t\r\n", None),
    ("Username", "x" * 1001, None), ("Username", "~t2020-01-01", None),
    ("Orders", "", None), ("Orders", "~:ns:id", None),
    ("TotalSum", -5, "'-5'"), ("TotalSum", -0.5, "'-0.5'"),
    ("TotalSum", "1e28", "'10000000000000000000000000000'"),  # 29 digits
    ("TotalSum", "0.00000000001", "'0.00000000001'"),          # 11 decimals
    ("TotalSum", "1e999", "'1e999'"), ("TotalSum", "NaN", "'NaN'"),
    ("TotalSum", "Infinity", "'Infinity'"), ("TotalSum", '"abc"', "'abc'"),
]
# Text forms of refused numbers that only SQL can write.
REFUSED_SQL_ONLY = ["' -5'", "'+5'", "'5e3'", "'-0.0e1'"]
COLUMNS = {"Username": "username", "Orders": "orders", "TotalSum": "total_sum"}
GOOD = {"Username": "'ann'", "Orders": "'Thinkpad'", "TotalSum": "'10.50'"}


def request_body(field, value) -> bytes:
    body = {"Username": "ann", "Orders": "Thinkpad", "TotalSum": 10.5}
    text = json.dumps({**body, field: "VALUE"})
    literal = value if isinstance(value, str) and field == "TotalSum" else json.dumps(value)
    return text.replace('"VALUE"', literal).encode()


def insert_sql(order_id: int, field: str, sql_value: str) -> str:
    values = {**GOOD, field: sql_value}
    return (f"INSERT INTO orders (id, username, orders, total_sum) VALUES ({order_id}, "
            f"{values['Username']}, {values['Orders']}, {values['TotalSum']})")


def sql_literal(field, value, sql):
    if sql is not None:
        return sql
    return "'" + value.replace("'", "''") + "'"


@pytest.mark.parametrize("field, value, sql", REFUSED, ids=lambda v: str(v)[:20])
def test_what_the_api_refuses_the_database_refuses(client, store, database_url, field, value, sql):
    response = client.put("/api/orders/7", data=request_body(field, value), content_type="application/json")
    assert response.status_code == 400, response.get_json()
    with plain_sql(database_url) as connection, pytest.raises(Exception, match="(?i)check|constraint|invalid input"):
        connection.execute(insert_sql(8, field, sql_literal(field, value, sql)))
    assert store.get_order(7) is None and store.get_order(8) is None


@pytest.mark.parametrize("sql", REFUSED_SQL_ONLY)
def test_the_database_refuses_a_number_in_a_form_the_api_never_writes(store, database_url, backend, sql):
    with plain_sql(database_url) as connection:
        try:
            connection.execute(insert_sql(9, "TotalSum", sql))
        except (sqlite3.Error, psycopg.Error) as error:
            assert "check" in str(error).lower() or "constraint" in str(error).lower()
            return
    # PostgreSQL reads these as the numbers they are (5, 5000, 0): that is what is served.
    assert backend == "postgresql" and json.loads(store.get_order(9))["TotalSum"] >= 0


def test_what_both_accept_is_served_as_valid_json(client, store, database_url):
    with plain_sql(database_url) as connection:
        connection.execute(insert_sql(10, "Username", "'ctrl' || chr(1) || chr(31) || '\"\\'"
                                      if "postgres" in database_url else
                                      "'ctrl' || char(1, 31) || '\"\\'"))
        connection.execute(insert_sql(11, "TotalSum", "'0'"))
    response = client.get("/api/orders")
    entities = json.loads(response.get_data().decode("utf-8", "strict"))
    response.close()
    assert [e["Username"] for e in entities] == ["ctrl\x01\x1f\"\\", "ann"]
    assert client.put("/api/orders/12", json={"Username": "a", "Orders": "b", "TotalSum": -0.0}).status_code == 201


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="the sqlite3 shell is not installed")
def test_the_sqlite3_shell_is_refused_too(tmp_path):
    from service.store import open_store
    path = tmp_path / "orders.sqlite3"
    store = open_store(f"sqlite:///{path}")
    store.migrate()
    store.close()
    for field, value, sql in REFUSED:
        result = subprocess.run(["sqlite3", str(path), insert_sql(20, field, sql_literal(field, value, sql)) + ";"],
                                capture_output=True, text=True, check=False)
        assert result.returncode != 0 and "constraint" in result.stderr.lower(), (field, value)


@pytest.mark.skipif(shutil.which("psql") is None, reason="the psql client is not installed")
def test_psql_is_refused_too(tmp_path):
    from service.store import open_store
    from tests.support.databases import fresh_database
    with fresh_database("postgresql", tmp_path) as url:
        store = open_store(url)
        store.migrate()
        store.close()
        for field, value, sql in REFUSED:
            result = subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c",
                                     insert_sql(20, field, sql_literal(field, value, sql))],
                                    capture_output=True, text=True, check=False)
            assert result.returncode != 0 and ("constraint" in result.stderr or "invalid input" in result.stderr), (field, value)
