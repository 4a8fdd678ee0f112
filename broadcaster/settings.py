"""Settings: one immutable object, read from environment variables once at start-up.

Every value has a development default, so `make demo` needs nothing but the checkout: a
SQLite file under ./var/ and Celery's SQLAlchemy transport on SQLite (no server). Outside
development the defaults that are secrets are refused. A malformed value, or an unknown
variable with our `WSP_` prefix (a typo would otherwise be ignored silently), stops the
program with a message that names the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

PREFIX = "WSP_"
# Our variables that are not settings of the system: read by the CLI and the test suite.
OTHER_VARIABLES = frozenset(
    {"WSP_CLI_OPERATOR", "WSP_TEST_POSTGRES_URL", "WSP_TEST_DB_PREFIX", "WSP_TEST_REDIS_URL"}
)
DATABASE_BACKENDS = ("sqlite", "postgresql")
BROKER_SCHEMES = ("redis", "rediss", "sqla+sqlite", "sqla+postgresql", "amqp", "pyamqp", "memory")
DEVELOPMENT_SECRET = "development-only-secret-change-me"  # noqa: S105 - refused outside development


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class SmtpSecurity(StrEnum):
    NONE = "none"
    STARTTLS = "starttls"
    TLS = "tls"


class FcmTransport(StrEnum):
    AIOHTTP = "aiohttp"
    LIBRARY = "library"


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the environment variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


Port = Annotated[int, Field(ge=1, le=65535)]


class Settings(BaseModel):
    """What the whole system is configured with. Frozen: build a new one to change it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    env: Environment = Environment.DEVELOPMENT
    data_dir: Path = Path("var")
    database_url: str = ""
    broker_url: str = ""
    redis_url: str = "redis://127.0.0.1:6379/0"
    secret_key: str = Field(default=DEVELOPMENT_SECRET, min_length=16)
    public_base_url: str = "http://127.0.0.1:8000"

    # Verification of contact points.
    verification_code_ttl_seconds: int = Field(default=900, ge=60, le=86400)
    verification_max_attempts: int = Field(default=5, ge=1, le=20)
    verification_codes_per_hour: int = Field(default=5, ge=1, le=100)
    # Residents' self-service. Codes and links sent to residents (SMS pumping, mail
    # bombing) are limited per client IP and for the whole service, per hour.
    verification_messages_per_ip_per_hour: int = Field(default=20, ge=1, le=100_000)
    verification_messages_per_hour: int = Field(default=5000, ge=1, le=10_000_000)
    # Countries (ISO 3166 codes, comma-separated) whose mobile numbers may subscribe.
    sms_allowed_regions: str = "PL"
    # How long a manage link sent to a resident works.
    manage_link_ttl_seconds: int = Field(default=7 * 86400, ge=300, le=90 * 86400)
    # Proxies in front of the API that append to X-Forwarded-For; 0: use the peer address.
    forwarded_for_hops: int = Field(default=0, ge=0, le=5)
    # The secret path segment of SMSAPI's callback URLs (delivery reports, incoming SMS);
    # empty: both callbacks refuse everything and SMSAPI is given no report URL.
    smsapi_callback_secret: str = ""
    # Namespace of the residents' rate-limit keys in Redis.
    ratelimit_key_prefix: str = Field(default="wsp:limit", min_length=1, max_length=64)

    # The staff console: a session ends after this long without a request, and after this
    # long in any case (the token it was opened with usually lives much longer).
    console_idle_seconds: int = Field(default=30 * 60, ge=60, le=8 * 3600)
    console_session_seconds: int = Field(default=12 * 3600, ge=300, le=7 * 86400)

    # Alerts.
    default_alert_lifetime_hours: int = Field(default=24, ge=1, le=24 * 14)
    # How often beat writes a checkpoint of the audit trail's tip to the workers' log.
    audit_checkpoint_seconds: float = Field(default=3600, ge=10, le=86400)

    # The pipeline.
    batch_size: int = Field(default=500, ge=1, le=500)
    # Rows a worker claimed and never recorded wait again after this many seconds.
    claim_lease_seconds: float = Field(default=120, ge=1, le=3600)
    sweep_seconds: float = Field(default=2, gt=0, le=60)
    # A planner that wrote no chunk for this long is taken to be gone: the sweeper has its
    # alert planned on from where it stopped.
    plan_lease_seconds: float = Field(default=30, ge=1, le=3600)
    # A published batch not claimed within this many seconds is published again.
    requeue_seconds: float = Field(default=30, gt=0, le=3600)
    # First retry delay of a temporary failure; doubled per attempt, with full jitter.
    retry_base_seconds: float = Field(default=5, gt=0, le=600)
    retry_max_seconds: float = Field(default=900, gt=0, le=86400)
    # Shared rate limits, messages (SMS: numbers) per second, per channel.
    sms_rate: float = Field(default=2000, gt=0)
    push_rate: float = Field(default=10000, gt=0)
    email_rate: float = Field(default=500, gt=0)

    # SMSAPI.pl
    smsapi_token: str = ""
    smsapi_url: str = "https://api.smsapi.pl/"
    smsapi_sender: str = Field(default="Warszawa", min_length=1, max_length=11)
    sms_max_parts: int = Field(default=3, ge=1, le=10)
    # What one SMS part costs (PLN, net, as in the SMSAPI price list): the preview's estimate.
    sms_part_price: Decimal = Field(default=Decimal("0.16"), ge=0, le=10, decimal_places=4)

    # Firebase Cloud Messaging
    fcm_credentials_file: Path | None = None
    fcm_project_id: str = ""
    # Base URL of the FCM API; empty: Google's. The sandbox sets its own.
    fcm_endpoint: str = ""
    fcm_transport: FcmTransport = FcmTransport.AIOHTTP
    # An extra CA bundle to trust for FCM and SMTP (the sandbox's certificate authority).
    fcm_ca_file: Path | None = None

    # SMTP
    smtp_host: str = "127.0.0.1"
    smtp_port: Port = 1025
    smtp_security: SmtpSecurity = SmtpSecurity.NONE
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_from: str = "Powiadomienia Warszawa <powiadomienia@um.warszawa.pl>"
    smtp_pool_size: int = Field(default=8, ge=1, le=64)
    smtp_ca_file: Path | None = None

    @field_validator(
        "database_url",
        "broker_url",
        "redis_url",
        "smsapi_url",
        "public_base_url",
        "fcm_endpoint",
    )
    @classmethod
    def _no_surrounding_space(cls, value: str) -> str:
        if value != value.strip():
            raise ValueError("must not start or end with white space")
        return value

    @field_validator("sms_allowed_regions")
    @classmethod
    def _region_codes(cls, value: str) -> str:
        codes = [code.strip().upper() for code in value.split(",")]
        if not all(len(code) == 2 and code.isascii() and code.isalpha() for code in codes):
            raise ValueError("must be ISO 3166 country codes separated by commas (e.g. PL)")
        return ",".join(codes)

    @field_validator("smsapi_callback_secret")
    @classmethod
    def _callback_secret(cls, value: str) -> str:
        if value and (len(value) < 16 or not value.replace("-", "").replace("_", "").isalnum()):
            raise ValueError("must be empty or at least 16 letters, digits, '-' or '_'")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url_shape(cls, value: str) -> str:
        try:
            backend = make_url(value).get_backend_name()
        except ArgumentError:
            raise ValueError("is not a database URL (e.g. postgresql://user@host/db)") from None
        if backend not in DATABASE_BACKENDS:
            raise ValueError(f"must be a {' or '.join(DATABASE_BACKENDS)} URL, not {backend}")
        return value

    @field_validator("broker_url")
    @classmethod
    def _broker_url_shape(cls, value: str) -> str:
        if not value.startswith(tuple(f"{scheme}://" for scheme in BROKER_SCHEMES)):
            raise ValueError(f"must start with one of {', '.join(BROKER_SCHEMES)}")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url_shape(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("smsapi_url")
    @classmethod
    def _smsapi_url_shape(cls, value: str) -> str:
        # smsapi-client appends paths ("sms.do") to the domain: without the slash the
        # request goes to ".../plsms.do".
        if not value.startswith(("http://", "https://")) or not value.endswith("/"):
            raise ValueError("must be an http(s) URL ending with '/'")
        return value

    @field_validator("fcm_endpoint")
    @classmethod
    def _optional_url_shape(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("public_base_url")
    @classmethod
    def _public_url_shape(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("fcm_credentials_file", "fcm_ca_file", "smtp_ca_file")
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        try:
            with value.open("rb") as handle:
                handle.read(1)
        except OSError as error:
            raise ValueError(f"cannot read {value}: {error.strerror}") from None
        return value

    @model_validator(mode="before")
    @classmethod
    def _embedded_defaults(cls, values: dict[str, Any]) -> dict[str, Any]:
        data_dir = values.get("data_dir") or "var"
        values.setdefault("database_url", f"sqlite:///{data_dir}/broadcaster.db")
        values.setdefault("broker_url", f"sqla+sqlite:///{data_dir}/broker.db")
        return values

    @model_validator(mode="after")
    def _console_idle_within_session(self) -> Settings:
        if self.console_idle_seconds > self.console_session_seconds:
            raise SettingsError(
                f"{PREFIX}CONSOLE_IDLE_SECONDS",
                f"must not exceed {PREFIX}CONSOLE_SESSION_SECONDS ({self.console_session_seconds})",
            )
        return self

    @model_validator(mode="after")
    def _secrets_outside_development(self) -> Settings:
        if self.env is Environment.PRODUCTION:
            if self.secret_key == DEVELOPMENT_SECRET:
                raise SettingsError(
                    f"{PREFIX}SECRET_KEY", "the development default is refused in production"
                )
            if not self.smsapi_token:
                raise SettingsError(f"{PREFIX}SMSAPI_TOKEN", "required in production")
            if not self.smsapi_callback_secret:
                raise SettingsError(
                    f"{PREFIX}SMSAPI_CALLBACK_SECRET",
                    "required in production (without it no delivery report is accepted)",
                )
            if self.fcm_credentials_file is None:
                raise SettingsError(f"{PREFIX}FCM_CREDENTIALS_FILE", "required in production")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def broker_is_redis(self) -> bool:
        """Whether Celery's broker is Redis (production), not the embedded SQLAlchemy
        transport: the shared rate limits and the queue lengths then live in Redis."""
        return self.broker_url.startswith(("redis://", "rediss://"))

    @property
    def smsapi_report_url(self) -> str | None:
        """Where SMSAPI is asked to send delivery reports; None without a secret."""
        if not self.smsapi_callback_secret:
            return None
        return f"{self.public_base_url}/callbacks/smsapi/reports/{self.smsapi_callback_secret}"

    @property
    def sms_regions(self) -> frozenset[str]:
        return frozenset(self.sms_allowed_regions.split(","))


def _variable_for(field: str) -> str:
    if field in {"database_url", "broker_url"}:
        return field.upper()
    return f"{PREFIX}{field.upper()}"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from `environ` (default: the process environment).

    Raises SettingsError naming the first variable that is unknown or malformed.
    """
    source = dict(os.environ if environ is None else environ)
    known = {_variable_for(name) for name in Settings.model_fields}
    unknown = sorted(
        k for k in source if k.startswith(PREFIX) and k not in known and k not in OTHER_VARIABLES
    )
    if unknown:
        raise SettingsError(unknown[0], "unknown setting (is it misspelt?)")
    values = {
        name: source[_variable_for(name)]
        for name in Settings.model_fields
        if source.get(_variable_for(name), "") != ""
    }
    try:
        return Settings.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        raise SettingsError(_variable_for(field), first["msg"]) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once."""
    return load_settings()
