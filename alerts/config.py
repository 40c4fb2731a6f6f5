"""Alert settings: the contract's names from ``stream.config.Settings``, plus a few extensions.

Secrets (webhook URLs, tokens, the HMAC secret) come from the environment (``Settings``) or, when unset
there, from a file named by ``<NAME>_FILE`` (Docker/Kubernetes secrets). They are kept out of ``repr`` and
fed to the ``Redactor`` that cleans every error message a sink logs.

Extension settings, read from the environment (documented in docs/alerts.md):
``KPI_ALERTS`` (``on``/``off``), ``SLACK_API_URL`` (Web API base, default Slack's), ``KPI_ALERT_EVAL_SECONDS``
(global rule evaluation period, 2), ``KPI_ALERT_CLAIM_LEASE_SECONDS`` (60), ``KPI_ALERT_SINK_TIMEOUT_SECONDS``
(5), ``KPI_ALERT_SINK_ATTEMPTS`` (4), ``KPI_ALERT_QUEUE_SIZE`` (1000).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alerts.sinks.slack import DEFAULT_API_URL


class AlertConfigError(ValueError):
    pass


def _secret(settings: Any, name: str, env: Mapping[str, str]) -> str | None:
    value = getattr(settings, name, None)
    if value is not None:
        text = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
        if text:
            return text
    path = env.get(f"{name.upper()}_FILE")
    if path:
        try:
            text = Path(path).read_text().strip()
        except OSError as exc:
            raise AlertConfigError(f"{name.upper()}_FILE: cannot read {path}: {exc.strerror}") from None
        if not text:  # e.g. a secret mount that was never filled: that is an error, not "no secret"
            raise AlertConfigError(f"{name.upper()}_FILE: {path} is empty")
        return text
    return None


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise AlertConfigError(f"{name}: must be a number (got {raw!r})") from None
    if value <= 0:
        raise AlertConfigError(f"{name}: must be > 0 (got {raw!r})")
    return value


@dataclass(frozen=True)
class AlertConfig:
    enabled: bool = True
    slack_webhook_url: str | None = field(default=None, repr=False)
    slack_bot_token: str | None = field(default=None, repr=False)
    slack_channel: str | None = None
    slack_api_url: str = DEFAULT_API_URL
    alertmanager_url: str | None = None
    webhook_url: str | None = field(default=None, repr=False)
    webhook_secret: str | None = field(default=None, repr=False)
    grafana_url: str = "http://127.0.0.1:3000"
    eval_seconds: float = 2.0
    claim_lease_seconds: float = 60.0
    sink_timeout: float = 5.0
    sink_attempts: int = 4
    queue_size: int = 1000

    @classmethod
    def from_settings(cls, settings: Any, env: Mapping[str, str] | None = None) -> AlertConfig:
        env = os.environ if env is None else env
        switch = env.get("KPI_ALERTS", "on").strip().lower()
        if switch not in ("on", "off", "1", "0", "true", "false", "yes", "no"):
            raise AlertConfigError(f"KPI_ALERTS: use on or off (got {switch!r})")
        return cls(
            enabled=switch in ("on", "1", "true", "yes"),
            slack_webhook_url=_secret(settings, "slack_webhook_url", env),
            slack_bot_token=_secret(settings, "slack_bot_token", env),
            slack_channel=getattr(settings, "slack_channel", None),
            slack_api_url=env.get("SLACK_API_URL") or DEFAULT_API_URL,
            alertmanager_url=getattr(settings, "alertmanager_url", None) or None,
            webhook_url=_secret(settings, "kpi_alert_webhook_url", env),
            webhook_secret=_secret(settings, "kpi_alert_webhook_secret", env),
            grafana_url=getattr(settings, "kpi_grafana_url", cls.grafana_url),
            eval_seconds=_number(env, "KPI_ALERT_EVAL_SECONDS", 2.0),
            claim_lease_seconds=_number(env, "KPI_ALERT_CLAIM_LEASE_SECONDS", 60.0),
            sink_timeout=_number(env, "KPI_ALERT_SINK_TIMEOUT_SECONDS", 5.0),
            sink_attempts=int(_number(env, "KPI_ALERT_SINK_ATTEMPTS", 4)),
            queue_size=int(_number(env, "KPI_ALERT_QUEUE_SIZE", 1000)),
        )

    def secrets(self) -> list[str]:
        return [s for s in (self.slack_webhook_url, self.slack_bot_token, self.webhook_url, self.webhook_secret) if s]

    def sink_names(self) -> list[str]:
        names = []
        if self.slack_bot_token or self.slack_webhook_url:
            names.append("slack")
        if self.alertmanager_url:
            names.append("alertmanager")
        if self.webhook_url:
            names.append("webhook")
        return names
