"""The sinks a configuration asks for, each behind its bounded retrying queue."""

from __future__ import annotations

from typing import Any

from alerts.config import AlertConfig
from alerts.sinks.alertmanager import AlertmanagerSink
from alerts.sinks.base import QueuedSink, Redactor, RetryPolicy, Sink
from alerts.sinks.slack import SlackBotSink, SlackWebhookSink
from alerts.sinks.webhook import WebhookSink


def make_sink(name: str, config: AlertConfig, refs: Any) -> Sink:
    timeout = config.sink_timeout
    if name == "slack":
        if config.slack_bot_token:
            return SlackBotSink(config.slack_bot_token, config.slack_channel, refs, api_url=config.slack_api_url, timeout=timeout)
        if config.slack_webhook_url:
            return SlackWebhookSink(config.slack_webhook_url, timeout=timeout)
        raise ValueError("the slack sink needs SLACK_WEBHOOK_URL, or SLACK_BOT_TOKEN and SLACK_CHANNEL")
    if name == "alertmanager":
        if not config.alertmanager_url:
            raise ValueError("the alertmanager sink needs ALERTMANAGER_URL")
        return AlertmanagerSink(config.alertmanager_url, timeout=timeout)
    if name == "webhook":
        if not config.webhook_url:
            raise ValueError("the webhook sink needs KPI_ALERT_WEBHOOK_URL")
        return WebhookSink(config.webhook_url, config.webhook_secret, timeout=timeout)
    raise ValueError(f"unknown sink {name!r} (slack, alertmanager, webhook)")


def make_queued_sinks(config: AlertConfig, refs: Any, stats: dict[str, Any], redact: Redactor) -> list[QueuedSink]:
    policy = RetryPolicy(attempts=config.sink_attempts, timeout=config.sink_timeout)
    return [
        QueuedSink(make_sink(name, config, refs), stats=stats, redact=redact, maxsize=config.queue_size, policy=policy)
        for name in config.sink_names()
    ]
