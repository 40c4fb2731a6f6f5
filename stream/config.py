"""One settings object for the whole project.

Names and defaults are the contract (README, Configuration). Values come from the environment; a YAML or
JSON file named by ``KPI_CONFIG`` may set the same keys (the environment wins). A bad value is reported
in one line that names the variable, never with a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo, field_validator

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
DEFAULT_STAGES = ("prospecting", "qualification", "proposal", "negotiation")


# Secrets that decide who may call or trust us: an empty one must never mean "no check".
AUTH_SECRETS = ("kpi_ingest_token", "kpi_web_token", "hubspot_client_secret", "kpi_alert_webhook_secret")


class ConfigError(ValueError):
    """A configuration value is unusable; the message is one line naming the variable."""


def known_time_zone(value: str) -> str:
    """``value`` when it names an IANA time zone; ValueError saying what to use otherwise."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Berlin)") from None
    return value


TimeZone = Annotated[str, AfterValidator(known_time_zone)]


class Settings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    # --- the contract's settings -------------------------------------------------------------------------
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kpi_topic_prefix: str = "sales."
    kpi_app_id: str = Field("kpi-monitor", pattern=r"^[A-Za-z0-9._-]{1,100}$")
    kpi_web_port: int = Field(6066, ge=0, le=65535)
    kpi_web_host: str = "127.0.0.1"
    kpi_clock: Literal["wall", "event"] = "wall"
    kpi_timezone: TimeZone = "UTC"
    kpi_sla_seconds: float = Field(300, gt=0)
    kpi_roster: Path = PACKAGE_DIR / "roster.example.yaml"
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    kpi_alert_rules: Path = REPO_ROOT / "alerts" / "rules.yaml"
    slack_webhook_url: SecretStr | None = None
    slack_bot_token: SecretStr | None = None
    slack_channel: str | None = None
    alertmanager_url: str | None = None
    kpi_alert_webhook_url: SecretStr | None = None
    kpi_alert_webhook_secret: SecretStr | None = None
    kpi_grafana_url: str = "http://127.0.0.1:3000"

    # --- extensions (documented in the README) -----------------------------------------------------
    # Kafka security (stream.kafka_security); PLAINTEXT is the local stack.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None
    kpi_currency: str = Field("USD", pattern=r"^[A-Z]{3}$")
    kpi_stages: tuple[str, ...] = DEFAULT_STAGES
    kpi_partitions: int = Field(4, ge=1, le=256)
    kpi_store: str = "rocksdb://"
    kpi_data_dir: Path = REPO_ROOT / ".stack" / "worker"
    kpi_lead_max_age_seconds: float = Field(7 * 86400, gt=0)
    kpi_max_event_bytes: int = Field(64 * 1024, gt=0)
    kpi_future_tolerance_seconds: float = Field(300, ge=0)
    kpi_too_late_seconds: float = Field(25 * 3600, gt=0)
    # Bounded state: see the README's "Guarantees".
    kpi_entity_retention_days: float = Field(40, ge=33, validate_default=True)
    kpi_max_facts_per_entity: int = Field(2000, ge=10)
    kpi_max_reps: int = Field(5000, ge=1)
    kpi_max_teams: int = Field(500, ge=1)
    kpi_max_products: int = Field(200, ge=1)
    kpi_max_sources: int = Field(100, ge=1)
    kpi_max_campaigns: int = Field(500, ge=1)
    kpi_retire_scan_seconds: float = Field(600, gt=0)  # how often the tables are scanned for quiet entities
    # Stall watchdog (stream.worker.app.watch_progress): messages waiting but none processed for this long.
    kpi_stall_seconds: float = Field(90, ge=0)  # 0: off
    kpi_exit_on_stall: bool = True
    # The worker's HTTP server (stream.worker.web_access): a bearer token for everything but /healthz, required
    # when KPI_WEB_HOST is not a loopback address unless KPI_WEB_ALLOW_OPEN says the network is trusted.
    kpi_web_token: SecretStr | None = None
    kpi_web_metrics_public: bool = False  # true: /metrics answers without the token (a scraper without one)
    kpi_web_allow_open: bool = False

    # --- ingest service (`kpi-monitor ingest`, stream/ingest/) ------------------------------------
    kpi_ingest_host: str = "127.0.0.1"
    kpi_ingest_port: int = Field(6070, ge=0, le=65535)
    kpi_ingest_token: SecretStr | None = None  # bearer token for POST /ingest/*; required off loopback
    kpi_ingest_max_body_bytes: int = Field(4 * 1024 * 1024, gt=0)
    kpi_ingest_max_in_flight: int = Field(20_000, gt=0)  # events handed to Kafka and not yet acknowledged
    kpi_ingest_produce_timeout_seconds: float = Field(5.0, gt=0)  # longer than this: 503, Kafka is down
    hubspot_client_secret: SecretStr | None = None  # verifies X-HubSpot-Signature-v3 when set
    hubspot_access_token: SecretStr | None = None  # private-app token for the CRM v3 objects API
    hubspot_api_url: str = "https://api.hubapi.com"
    hubspot_webhook_url: str | None = None  # the public URL HubSpot posts to (it signs that URL)
    hubspot_stage_map: str = (
        "appointmentscheduled=prospecting,qualifiedtobuy=qualification,presentationscheduled=proposal,"
        "decisionmakerboughtin=proposal,contractsent=negotiation,closedwon=won,closedlost=lost"
    )
    hubspot_cache_seconds: float = Field(300, ge=0)
    hubspot_max_notifications: int = Field(1000, gt=0)  # per request; HubSpot sends at most 100

    @field_validator(*AUTH_SECRETS)
    @classmethod
    def _secret_is_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        # "" is what `${VAR}` gives in a compose file when VAR is unset: treating it as "no secret" would
        # silently turn authentication off, so it is refused like any other unusable value.
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("is empty or blank; set a real secret or leave the variable unset")
        return value


    @field_validator("kpi_entity_retention_days")
    @classmethod
    def _retention_outlives_waiting_leads(cls, value: float, info: ValidationInfo) -> float:
        # A waiting lead must stop counting (lead_max_age) and its late events be refused (too_late)
        # before it may leave the table.
        needed = (info.data.get("kpi_lead_max_age_seconds", 0) + info.data.get("kpi_too_late_seconds", 0)) / 86400
        if value <= needed:
            raise ValueError(f"must exceed KPI_LEAD_MAX_AGE_SECONDS + KPI_TOO_LATE_SECONDS ({needed:g} days)")
        return value

    @field_validator("kpi_stages", mode="before")
    @classmethod
    def _split_stages(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [s.strip() for s in value.split(",") if s.strip()]
        if not value:
            raise ValueError("needs at least one stage")
        return value

    @field_validator("kpi_topic_prefix")
    @classmethod
    def _topic_prefix(cls, value: str) -> str:
        if not all(c.isalnum() or c in "._-" for c in value):
            raise ValueError("may only contain letters, digits, '.', '_' and '-'")
        return value

    # --- derived names -----------------------------------------------------------------------------
    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.kpi_timezone)

    def topic(self, suffix: str) -> str:
        """Full topic name for ``leads``, ``calls``, ``deals``, ``spend``, ``subscriptions``, ``forecasts`` or
        ``deadletter``."""
        return f"{self.kpi_topic_prefix}{suffix}"

    @property
    def web_url(self) -> str:
        return f"http://{self.kpi_web_host}:{self.kpi_web_port}"

    @property
    def ingest_url(self) -> str:
        return f"http://{self.kpi_ingest_host}:{self.kpi_ingest_port}"

    # The stack manager takes duck-typed settings with these plain names.
    @property
    def topic_prefix(self) -> str:
        return self.kpi_topic_prefix

    @property
    def partitions(self) -> int:
        return self.kpi_partitions

    @property
    def redis_dsn(self) -> str:
        return self.redis_url.get_secret_value()


_SECRET_FIELDS = {name for name, f in Settings.model_fields.items() if "SecretStr" in str(f.annotation)}


def _file_values(path: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"KPI_CONFIG: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"KPI_CONFIG: {path} is not valid YAML: {exc}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise ConfigError(f"KPI_CONFIG: {path} must hold a mapping of KEY: value")
    return {str(k).lower(): v for k, v in data.items()}


def load_settings(**overrides: Any) -> Settings:
    """Settings from ``KPI_CONFIG`` (if set), then the environment, then ``overrides``.

    Raises ConfigError with a one-line message naming the offending variable.
    """
    values: dict[str, Any] = {}
    config_file = os.environ.get("KPI_CONFIG")
    if config_file:
        values.update(_file_values(config_file))
    env_names = {name.upper() for name in Settings.model_fields}
    for name, value in os.environ.items():
        if name.upper() in env_names:
            values[name.lower()] = value
    values.update({k.lower(): v for k, v in overrides.items()})
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]).upper() if err["loc"] else "configuration"
        secret = name.lower() in _SECRET_FIELDS or any(w in name.lower() for w in ("secret", "token", "url", "password"))
        shown = "" if secret else f" (got {err.get('input')!r})"
        message = err["msg"].removeprefix("Value error, ")  # pydantic's prefix for our own validators
        raise ConfigError(f"{name}: {message}{shown}") from None
