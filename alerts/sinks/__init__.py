"""Where notifications go: Slack, Alertmanager, a generic webhook. All share ``alerts.sinks.base.Sink``."""
