import pytest

from service.config import DEFAULTS, ConfigError, load_settings, redact_url


def test_defaults():
    settings = load_settings({})
    assert settings.port == 5000 and settings.database_url == DEFAULTS["DATABASE_URL"]
    assert not settings.auth_enabled and not settings.load_sample_orders


@pytest.mark.parametrize("env, name", [
    ({"PORT": "http"}, "PORT"), ({"PORT": "70000"}, "PORT"), ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY"),
    ({"THREADS": "-1"}, "THREADS"), ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
    ({"LOAD_SAMPLE_ORDERS": "maybe"}, "LOAD_SAMPLE_ORDERS"), ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
    ({"AUTH_USERNAME": "sesam"}, "AUTH_PASSWORD"), ({"AUTH_PASSWORD": "pw"}, "AUTH_USERNAME"),
    ({"AUTH_USERNAME": "a:b", "AUTH_PASSWORD": "pw"}, "AUTH_USERNAME"),
])
def test_bad_values_are_named(env, name):
    with pytest.raises(ConfigError, match=name):
        load_settings(env)


def test_the_password_never_shows_in_repr():
    settings = load_settings({"AUTH_USERNAME": "sesam", "AUTH_PASSWORD": "hunter2-secret",
                              "DATABASE_URL": "postgresql://app:dbsecret@db/orders"})
    assert "hunter2-secret" not in repr(settings) and "dbsecret" not in str(settings)
    # ...and every other field is there, so a new one cannot be forgotten.
    for name in ("max_body_bytes", "graceful_timeout", "migrate_on_start", "load_sample_orders"):
        assert f"{name}=" in repr(settings)
    assert settings.auth_enabled and settings.log_level == "INFO"


def test_redact_url():
    assert redact_url("postgresql://app:pw@db:5432/x") == "postgresql://app:***@db:5432/x"
    assert redact_url("sqlite:///data/x.sqlite3") == "sqlite:///data/x.sqlite3"
