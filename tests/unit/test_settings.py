from pathlib import Path

import pytest

from broadcaster.settings import Environment, SettingsError, SmtpSecurity, load_settings


def test_defaults_need_no_server(tmp_path: Path) -> None:
    settings = load_settings({"WSP_DATA_DIR": str(tmp_path)})
    assert settings.env is Environment.DEVELOPMENT
    assert settings.database_url == f"sqlite:///{tmp_path}/broadcaster.db"
    assert settings.broker_url == f"sqla+sqlite:///{tmp_path}/broker.db"
    assert settings.smtp_security is SmtpSecurity.NONE
    assert settings.is_sqlite


def test_values_come_from_the_environment() -> None:
    settings = load_settings(
        {
            "DATABASE_URL": "postgresql://db/wsp",
            "BROKER_URL": "redis://127.0.0.1:6379/1",
            "WSP_SMS_MAX_PARTS": "4",
            "WSP_SMTP_SECURITY": "starttls",
            "WSP_PUBLIC_BASE_URL": "https://powiadomienia.um.warszawa.pl/",
        }
    )
    assert settings.database_url == "postgresql://db/wsp"
    assert settings.broker_url == "redis://127.0.0.1:6379/1"
    assert settings.sms_max_parts == 4
    assert settings.smtp_security is SmtpSecurity.STARTTLS
    assert settings.public_base_url == "https://powiadomienia.um.warszawa.pl"
    assert not settings.is_sqlite


def test_settings_are_immutable() -> None:
    settings = load_settings({})
    with pytest.raises(ValueError, match="frozen"):
        settings.sms_max_parts = 9  # type: ignore[misc]


@pytest.mark.parametrize(
    ("environ", "variable", "fragment"),
    [
        ({"WSP_SMS_MAX_PART": "3"}, "WSP_SMS_MAX_PART", "unknown setting"),
        ({"WSP_SMS_MAX_PARTS": "eleven"}, "WSP_SMS_MAX_PARTS", "integer"),
        ({"WSP_SMS_MAX_PARTS": "11"}, "WSP_SMS_MAX_PARTS", "less than or equal to 10"),
        ({"WSP_SMTP_PORT": "70000"}, "WSP_SMTP_PORT", "65535"),
        ({"WSP_PLAN_LEASE_SECONDS": "0"}, "WSP_PLAN_LEASE_SECONDS", "greater than or equal to 1"),
        ({"WSP_ENV": "staging"}, "WSP_ENV", "development"),
        ({"WSP_SMTP_SECURITY": "ssl"}, "WSP_SMTP_SECURITY", "starttls"),
        ({"WSP_SMSAPI_URL": "http://127.0.0.1:9000/api"}, "WSP_SMSAPI_URL", "ending with '/'"),
        ({"DATABASE_URL": " sqlite:///x.db"}, "DATABASE_URL", "white space"),
        ({"DATABASE_URL": "garbage"}, "DATABASE_URL", "not a database URL"),
        ({"DATABASE_URL": "mysql://db/wsp"}, "DATABASE_URL", "sqlite or postgresql"),
        ({"BROKER_URL": "http://broker"}, "BROKER_URL", "redis"),
        ({"WSP_REDIS_URL": "127.0.0.1:6379"}, "WSP_REDIS_URL", "redis://"),
        ({"WSP_SECRET_KEY": "short"}, "WSP_SECRET_KEY", "at least 16"),
        ({"WSP_CONSOLE_IDLE_SECONDS": "30"}, "WSP_CONSOLE_IDLE_SECONDS", "greater than or equal"),
        (
            {"WSP_CONSOLE_SESSION_SECONDS": "99999999"},
            "WSP_CONSOLE_SESSION_SECONDS",
            "less than or equal",
        ),
        (
            {"WSP_CONSOLE_IDLE_SECONDS": "7200", "WSP_CONSOLE_SESSION_SECONDS": "3600"},
            "WSP_CONSOLE_IDLE_SECONDS",
            "must not exceed WSP_CONSOLE_SESSION_SECONDS",
        ),
        (
            {"WSP_FCM_CREDENTIALS_FILE": "/nonexistent/sa.json"},
            "WSP_FCM_CREDENTIALS_FILE",
            "cannot read",
        ),
    ],
)
def test_bad_values_name_the_variable(
    environ: dict[str, str], variable: str, fragment: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ)
    assert caught.value.variable == variable
    assert fragment in str(caught.value)
    assert str(caught.value).startswith(variable)


def test_production_refuses_development_secrets(tmp_path: Path) -> None:
    credentials = tmp_path / "sa.json"
    credentials.write_text("{}")
    base = {
        "WSP_ENV": "production",
        "WSP_SMSAPI_TOKEN": "t",
        "WSP_SMSAPI_CALLBACK_SECRET": "callback-secret-0123",
        "WSP_FCM_CREDENTIALS_FILE": str(credentials),
        "WSP_PUBLIC_BASE_URL": "https://powiadomienia.example/",
    }
    with pytest.raises(SettingsError) as caught:
        load_settings(base)
    assert caught.value.variable == "WSP_SECRET_KEY"
    base["WSP_SECRET_KEY"] = "a-real-secret-of-some-length"
    for required in ("WSP_SMSAPI_TOKEN", "WSP_SMSAPI_CALLBACK_SECRET"):
        with pytest.raises(SettingsError) as caught:
            load_settings({**base, required: ""})
        assert caught.value.variable == required
    settings = load_settings(base)
    assert settings.env is Environment.PRODUCTION
    assert settings.smsapi_report_url == (
        "https://powiadomienia.example/callbacks/smsapi/reports/callback-secret-0123"
    )


def test_sms_reports_are_not_asked_for_without_a_callback_secret() -> None:
    assert load_settings({}).smsapi_report_url is None


@pytest.mark.parametrize("secret", ["short", "sixteen chars ok", "p@ssword-p@ssword"])
def test_a_callback_secret_must_be_long_and_url_safe(secret: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"WSP_SMSAPI_CALLBACK_SECRET": secret})
    assert caught.value.variable == "WSP_SMSAPI_CALLBACK_SECRET"


def test_variables_of_the_cli_and_tests_are_not_typos() -> None:
    settings = load_settings(
        {"WSP_CLI_OPERATOR": "anna", "WSP_TEST_POSTGRES_URL": "postgresql://x/y"}
    )
    assert settings.env is Environment.DEVELOPMENT


@pytest.mark.parametrize(
    ("broker", "redis"),
    [
        ("redis://127.0.0.1:6379/1", True),
        ("rediss://broker.internal:6380/0", True),
        ("sqla+sqlite:///var/broker.db", False),
        ("sqla+postgresql://db/wsp", False),
        ("amqp://guest@rabbit//", False),
        ("memory://", False),
    ],
)
def test_the_broker_kind_is_read_from_its_url(tmp_path: Path, broker: str, redis: bool) -> None:
    settings = load_settings({"WSP_DATA_DIR": str(tmp_path), "BROKER_URL": broker})
    assert settings.broker_is_redis is redis


@pytest.mark.parametrize(
    ("broker", "held_back"),
    [("redis://127.0.0.1:6379/9", True), ("sqla+sqlite:///broker.db", False)],
)
def test_a_worker_on_redis_reserves_nothing_beyond_what_it_runs(
    tmp_path: Path, broker: str, held_back: bool
) -> None:
    """Otherwise each process holds one routine batch more, and an urgent batch published
    meanwhile waits behind it (Celery applies this on Redis only, and warns elsewhere)."""
    from tasks.app import make_app

    app = make_app(load_settings({"WSP_DATA_DIR": str(tmp_path), "BROKER_URL": broker}))
    assert app.conf.worker_disable_prefetch is held_back
    assert app.conf.worker_prefetch_multiplier == 1
