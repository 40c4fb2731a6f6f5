"""``kpi-monitor alerts …``: check rules, list what fires, ack/snooze, send a sample, backtest a log."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import click

from alerts.config import AlertConfig, AlertConfigError
from alerts.rules import RulesError, check_against_roster, load_rules, parse_duration


def _settings():
    from stream.config import ConfigError, load_settings

    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _roster(settings):
    from stream.roster import RosterError, load_roster

    try:
        return load_roster(settings.kpi_roster)
    except RosterError as exc:
        raise click.ClickException(str(exc)) from None


def _rules(path: str, settings):
    try:
        return load_rules(path, settings)
    except RulesError as exc:
        raise click.ClickException(f"{path} is not valid:\n{exc}") from None


def _store(settings):
    from alerts.state import RedisAlertStore

    return RedisAlertStore.from_url(settings.redis_dsn, settings.kpi_app_id, timeout=2.0)


async def _need_redis(store) -> None:
    try:
        await store.r.ping()
    except Exception as exc:
        await store.close()
        raise click.ClickException(f"Redis at REDIS_URL does not answer ({type(exc).__name__}); the alert state lives there") from None


@click.group("alerts")
def alerts() -> None:
    """Alert rules and the alerts firing now (state in Redis under KPI_APP_ID)."""


@alerts.command("check")
@click.argument("rules_file", type=click.Path(dir_okay=False))
def check(rules_file: str) -> None:
    """Validate a rules file (and warn about names the roster does not know)."""
    settings = _settings()
    rules = _rules(rules_file, settings)
    for warning in check_against_roster(rules, _roster(settings)):
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"{rules_file}: ok, {rules.summary()}")


def _ago(ms: int | None) -> str:
    if ms is None:
        return "-"
    from alerts.notification import human_duration

    return human_duration(max(0, time.time() - ms / 1000)) + " ago"


@alerts.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also pending and resolved instances.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per instance.")
def list_(show_all: bool, as_json: bool) -> None:
    """What is firing now, from the shared state in Redis."""
    settings = _settings()

    async def go() -> list[tuple[Any, Any]]:
        store = _store(settings)
        await _need_redis(store)
        try:
            instances = await store.list_instances()
            return [(i, await store.mute(i.fingerprint)) for i in instances]
        finally:
            await store.close()

    rows = [(i, m) for i, m in asyncio.run(go()) if show_all or i.state == "firing"]
    rows.sort(key=lambda r: (r[0].state != "firing", -(r[0].firing_since or 0)))
    if as_json:
        import msgspec

        for inst, mute in rows:
            doc = msgspec.to_builtins(inst)
            doc["muted"] = None if mute is None else mute.__dict__
            click.echo(json.dumps(doc, sort_keys=True))
        return
    if not rows:
        click.echo("nothing is firing" if not show_all else "no alert instances")
        return
    click.echo(f"{'FINGERPRINT':<17} {'STATE':<9} {'SEVERITY':<9} {'RULE':<28} {'SCOPE':<28} {'SINCE':<12} MUTED")
    for inst, mute in rows:
        scope = ", ".join(f"{k}={v}" for k, v in inst.scope.items()) or "overall"
        muted = "" if mute is None else (mute.kind if mute.until_ms is None else f"snoozed {_until(mute.until_ms)}")
        click.echo(f"{inst.fingerprint:<17} {inst.state:<9} {inst.severity:<9} {inst.rule:<28} {scope:<28} "
                   f"{_ago(inst.firing_since or inst.pending_since):<12} {muted}")


def _until(ms: int) -> str:
    from alerts.notification import human_duration

    return f"{human_duration(max(0, ms / 1000 - time.time()))} left"


async def _mute(fingerprint: str, kind: str, until_ms: int | None) -> str:
    from alerts.state import Mute

    settings = _settings()
    store = _store(settings)
    await _need_redis(store)
    try:
        inst = await store.get_instance(fingerprint)
        await store.set_mute(fingerprint, Mute(kind, until_ms, by=_who(), at_ms=int(time.time() * 1000)))
    finally:
        await store.close()
    if inst is None:
        return f"warning: no alert {fingerprint} in {settings.kpi_app_id}; muted anyway (it applies if it fires)"
    return f"{inst.rule} ({', '.join(f'{k}={v}' for k, v in inst.scope.items()) or 'overall'}) is {inst.state}"


def _who() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:
        return "cli"


@alerts.command("ack")
@click.argument("fingerprint")
def ack(fingerprint: str) -> None:
    """Acknowledge an alert: no repeats or escalations until it resolves (the resolve is still sent)."""
    info = asyncio.run(_mute(fingerprint, "ack", None))
    click.echo(f"acknowledged {fingerprint}: {info}")


@alerts.command("snooze")
@click.argument("fingerprint")
@click.option("--for", "duration", required=True, help="How long: 30m, 2h, 1d.")
def snooze(fingerprint: str, duration: str) -> None:
    """No repeats or escalations for a while (the resolve is still sent)."""
    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--for") from None
    if seconds <= 0:
        raise click.BadParameter("must be > 0", param_hint="--for")
    info = asyncio.run(_mute(fingerprint, "snooze", int((time.time() + seconds) * 1000)))
    click.echo(f"snoozed {fingerprint} for {duration}: {info}")


@alerts.command("unmute")
@click.argument("fingerprint")
def unmute(fingerprint: str) -> None:
    """Undo an ack or a snooze."""

    async def go() -> None:
        store = _store(_settings())
        await _need_redis(store)
        try:
            await store.clear_mute(fingerprint)
        finally:
            await store.close()

    asyncio.run(go())
    click.echo(f"{fingerprint}: repeats and escalations are on again")


def sample_notification(settings: Any, resolved: bool = False):
    """A realistic lead SLA notification for `alerts test`."""
    from alerts.model import Transition, new_instance
    from alerts.notification import build
    from alerts.rules import parse_rules

    roster = _roster(settings)
    rules = parse_rules("rules: [{name: sample-lead-sla, type: lead_sla, deadline: sla, notify: rep}]", "sample", settings)
    rep = roster.reps[0] if roster.reps else None
    now = int(time.time() * 1000)
    inst = new_instance("sample-lead-sla", "lead_sla", {"lead_id": "SAMPLE-1"})
    inst.episode, inst.state = 1, "resolved" if resolved else "firing"
    inst.firing_since = now
    inst.resolved_at = now if resolved else None
    created = now - int(settings.kpi_sla_seconds * 1000)
    inst.info = {"owner": rep.rep_id if rep else "sample-rep", "team": rep.team if rep else None,
                 "source": "website", "created_ms": created, "resolution": "touched"}
    kind = "resolved" if resolved else "firing"
    n = build(inst, Transition(kind, 0, now), rules, roster, app_id=settings.kpi_app_id,
              grafana_url=settings.kpi_grafana_url)
    n.channel = settings.slack_channel or n.channel  # a test goes to SLACK_CHANNEL, not a team's channel
    n.title = f"[test] {n.title}"
    return n


@alerts.command("test")
@click.option("--sink", type=click.Choice(["slack", "alertmanager", "webhook"]), required=True)
@click.option("--resolve/--no-resolve", default=True, show_default=True, help="Also send the resolve.")
def test(sink: str, resolve: bool) -> None:
    """Send a sample lead SLA alert (and its resolve) through one configured sink."""
    from alerts.sinks.base import QueuedSink, Redactor, RetryPolicy, new_stats
    from alerts.sinks.factory import make_sink
    from alerts.state import MemoryAlertStore

    settings = _settings()
    try:
        config = AlertConfig.from_settings(settings)
        real = make_sink(sink, config, MemoryAlertStore())
    except (AlertConfigError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    redact = Redactor(config.secrets())
    stats = new_stats()
    queued = QueuedSink(real, stats=stats, redact=redact, policy=RetryPolicy(attempts=2, timeout=config.sink_timeout))
    notes = [sample_notification(settings)] + ([sample_notification(settings, resolved=True)] if resolve else [])

    async def go() -> list[bool]:
        try:
            return [await queued.deliver(n) for n in notes]
        finally:
            await real.close()

    results = asyncio.run(go())
    for n, ok in zip(notes, results):
        click.echo(f"{sink}: {n.kind} {n.key}: {'delivered' if ok else 'FAILED (see the log above)'}")
    if not all(results):
        sys.exit(1)


@alerts.command("backtest")
@click.argument("rules_file", type=click.Path(exists=True, dir_okay=False))
@click.argument("events_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per notification (the webhook payload).")
def backtest(rules_file: str, events_file: str, as_json: bool) -> None:
    """What RULES_FILE would have fired over EVENTS_FILE (JSON Lines), when, and when it resolved; sends nothing."""
    from alerts.backtest import _lines, render, run_backtest
    from alerts.sinks.webhook import payload

    settings = _settings()
    rules = _rules(rules_file, settings)
    result = asyncio.run(run_backtest(rules, _lines(events_file), settings, _roster(settings)))
    if as_json:
        for n in sorted(result.notifications, key=lambda n: (n.at, n.key)):
            doc = payload(n, sent_ms=n.at)
            doc.pop("sent_at", None)
            click.echo(json.dumps(doc, sort_keys=True))
    else:
        click.echo(render(result))
