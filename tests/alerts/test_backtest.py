"""Backtest over a simulator log: lead SLA firings agree with an independent reading of the log, and the
CLI (check, backtest) works end to end without sending anything."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from click.testing import CliRunner

from alerts.backtest import render, run_backtest
from alerts.cli import alerts
from stream.config import Settings
from stream.local.simulator import SalesFloor
from tests.alerts.helpers import roster, rules

START = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)
GRACE = 60_000


def simulator_log(hours: float = 1.0, seed: int = 3) -> list[bytes]:
    floor = SalesFloor(roster(), seed, START, late_share=0.0, events_per_second=1.0)
    return [json.dumps(e.event).encode() for e in floor.events(START + timedelta(hours=hours))]


def read_leads(lines: list[bytes]) -> dict[str, dict]:
    """Independent of the engine: creation, first touch and end of each lead straight from the log."""
    leads: dict[str, dict] = {}
    for raw in lines:
        e = json.loads(raw)
        ts = int(datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")).timestamp() * 1000)
        lead = e.get("lead_id")
        if lead is None:
            continue
        info = leads.setdefault(lead, {"created": None, "touch": None, "disq": None})
        if e["type"] == "lead.created":
            info["created"] = ts if info["created"] is None else min(info["created"], ts)
        elif e["type"] in ("lead.touched", "call.logged"):
            info["touch"] = ts if info["touch"] is None else min(info["touch"], ts)
        elif e["type"] == "lead.disqualified":
            info["disq"] = ts
    return leads


async def test_backtest_lead_firings_match_the_log():
    lines = simulator_log()
    ruleset = rules("rules: [{name: sla, type: lead_sla, deadline: 5m, calendar: none}]")
    result = await run_backtest(ruleset, lines, Settings(), roster())
    leads = read_leads(lines)
    fired = {n.labels["lead_id"]: n for n in result.notifications if n.kind == "firing"}
    resolved = {n.labels["lead_id"]: n for n in result.notifications if n.kind == "resolved"}
    end = result.last_ms
    assert result.events == len(lines) and len(fired) > 10
    for lead, info in leads.items():
        if info["created"] is None:
            continue
        due = info["created"] + 300_000
        touched_late = info["touch"] is not None and info["touch"] > due
        untouched = info["touch"] is None and info["disq"] is None
        if lead in fired:
            assert fired[lead].at == due, lead
            assert info["touch"] is None or info["touch"] > due, lead
        elif (touched_late or untouched) and due + GRACE + 300_000 < end:  # decided well before the log ends
            raise AssertionError(f"lead {lead} breached its SLA but did not fire: {info}")
        if touched_late and info["touch"] + GRACE + 300_000 < end:  # near the end the verdict is still open
            assert resolved[lead].at == info["touch"], lead
    assert "nothing was sent" in render(result)


def test_cli_check_and_backtest(tmp_path):
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"\n".join(simulator_log(0.5)) + b"\nnot json\n")
    rule_file = tmp_path / "rules.yaml"
    rule_file.write_text("rules:\n  - {name: sla, type: lead_sla, deadline: 5m, calendar: none}\n")
    runner = CliRunner()
    checked = runner.invoke(alerts, ["check", str(rule_file)])
    assert checked.exit_code == 0 and "ok, 1 rules" in checked.output
    text = runner.invoke(alerts, ["backtest", str(rule_file), str(log)])
    assert text.exit_code == 0, text.output
    assert "FIRING" in text.output and "skipped lines: unroutable: 1" in text.output
    as_json = runner.invoke(alerts, ["backtest", str(rule_file), str(log), "--json"])
    docs = [json.loads(line) for line in as_json.output.splitlines()]
    assert docs and all(d["rule"] == "sla" and d["idempotency_key"].startswith(d["fingerprint"]) for d in docs)


def test_cli_check_reports_errors_with_lines(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: x\n    type: kpi\n    kpi: calls\n    op: '<'\n    threshold: lots\n")
    result = CliRunner().invoke(alerts, ["check", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:6: rules[0].threshold: Input should be a valid number" in result.output
