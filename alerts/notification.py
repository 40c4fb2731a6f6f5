"""What a notification says and whom it is for: built from an instance, a transition, a rule and the roster.

Sinks only format a ``Notification``; they never look at rules or the roster. Routing (the roster
roster fields): a lead or rep alert goes to the team's Slack channel and mentions the owner's Slack user
id; escalation steps mention the team lead, then the on-call contact.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

import msgspec

from alerts.model import AlertInstance, Transition
from alerts.rules import RuleSet
from stream.kpi.catalogue import BY_KEY



class Notification(msgspec.Struct, kw_only=True):
    key: str  # idempotency key: fingerprint:episode:kind:seq, the same on every retry and every worker
    fingerprint: str
    episode: int
    kind: str  # firing | repeat | escalation | resolved
    seq: int
    status: str  # firing | resolved
    rule: str
    rule_type: str  # kpi | lead_sla | no_activity
    severity: str
    title: str
    text: str  # one plain sentence, event text included as is (sinks escape it for their markup); mentions apart
    facts: list[tuple[str, str]] = []  # (label, value) pairs shown as fields
    labels: dict[str, str] = {}
    value: float | None = None
    threshold: float | None = None
    starts_at: int = 0  # ms: when the breach began
    ends_at: int | None = None  # ms: resolved at
    at: int = 0  # ms: this transition
    owner: str | None = None
    mentions: list[str] = []  # Slack syntax built from the roster only: <@U123>, <!subteam^S1>, or escaped text
    target: str = "none"  # rep | team | team_lead | oncall | none
    channel: str | None = None  # Slack channel from the roster or the rule; None: the sink's default
    link: str = ""
    sinks: tuple[str, ...] | None = None  # rule channels; None: every configured sink
    repeat: bool = False  # may be a duplicate of a notification already sent (see docs/alerts.md)
    app_id: str = ""
    refresh: bool = False  # an Alertmanager keep-alive of a firing alert, not a new notification


def slack_escape(text: str) -> str:
    """Slack's escaping: ``&``, ``<`` and ``>`` are markup (mentions, links); as entities they are just text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_mention(contact: str | None) -> str | None:
    """A roster contact as Slack text: user id -> <@U..>, user group -> <!subteam^S..>, @here/@channel/
    @everyone -> <!here>..., anything else as plain text. Only roster values are ever passed here."""
    if not contact:
        return None
    if re.fullmatch(r"[UW][A-Z0-9]{2,}", contact):
        return f"<@{contact}>"
    if re.fullmatch(r"S[A-Z0-9]{2,}", contact):
        return f"<!subteam^{contact}>"
    if contact in ("@here", "@channel", "@everyone"):
        return f"<!{contact[1:]}>"
    return slack_escape(contact)


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:2])


def iso(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def format_value(kpi: str | None, value: float | None) -> str:
    if value is None:
        return "null"
    unit = BY_KEY[kpi].unit if kpi in BY_KEY else None  # the catalogue's unit of the KPI
    if unit == "ratio":
        return f"{value:.0%}" if abs(value) <= 10 else f"{value:g}"
    if unit == "seconds":
        return human_duration(value)
    if unit == "days":
        return f"{value:,.1f} days"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


class Router:
    """Roster lookups for routing: the Slack channel of a team and whom a target means."""

    def __init__(self, roster: Any) -> None:
        self.roster = roster

    def channel(self, team: str | None) -> str | None:
        t = self.roster.team(team) if team else None
        return t.slack_channel if t is not None else None

    def mentions(self, target: str, team: str | None, owner: str | None) -> list[str]:
        """Whom to mention, from the roster only. ``team`` and ``owner`` come from events: they select a
        roster entry and are never mentioned themselves (an owner "@channel" must not page a channel)."""
        t = self.roster.team(team) if team else None
        contact: str | None = None
        if target == "rep" and owner:
            rep = self.roster.rep(owner)
            contact = rep.slack_user_id if rep is not None else None
        elif target == "team_lead" and t is not None and t.lead_rep:
            lead = self.roster.rep(t.lead_rep)
            contact = lead.slack_user_id if lead is not None and lead.slack_user_id else t.lead_rep
        elif target == "oncall" and t is not None:
            contact = t.oncall
        mention = slack_mention(contact)
        return [mention] if mention else []


def build(
    inst: AlertInstance,
    transition: Transition,
    rules: RuleSet,
    roster: Any,
    *,
    app_id: str,
    grafana_url: str,
) -> Notification:
    rule = rules.by_name.get(inst.rule)
    info = inst.info
    team = info.get("team") or inst.scope.get("team")
    owner = info.get("owner") or inst.scope.get("rep")
    router = Router(roster)
    target = _target(rule, inst, transition)
    severity = inst.severity
    if rule is not None and inst.rule_type == "lead_sla" and inst.step > 0 and inst.step <= len(rule.escalation):
        severity = rule.escalation[inst.step - 1].severity or severity
    status = "resolved" if transition.kind == "resolved" else "firing"
    channels = rules.channels(rule) if rule is not None else None
    slack_override = next((c for c in channels or () if c.startswith("#")), None)
    sinks = None if channels is None else tuple(sorted({"slack" if c.startswith("#") else c for c in channels}))
    title, text, facts, value, threshold = _content(inst, transition, rule, team, owner)
    labels = {"alertname": inst.rule, "rule": inst.rule, "severity": severity, "app": app_id, "fingerprint": inst.fingerprint}
    labels.update({k: str(v) for k, v in inst.scope.items()})
    if team:
        labels.setdefault("team", str(team))
    if owner:
        labels.setdefault("rep", str(owner))
    channel = slack_override or router.channel(team)
    if channel:
        labels["slack_channel"] = channel  # deploy/alertmanager routes sales alerts by it
    if rule is not None:
        labels.update(rule.labels)
    return Notification(
        key=transition.key(inst),
        fingerprint=inst.fingerprint,
        episode=inst.episode,
        kind=transition.kind,
        seq=transition.seq,
        status=status,
        rule=inst.rule,
        rule_type=inst.rule_type,
        severity=severity,
        title=title,
        text=text,
        facts=facts,
        labels=labels,
        value=value,
        threshold=threshold,
        starts_at=inst.firing_since or transition.at,
        ends_at=inst.resolved_at if status == "resolved" else None,
        at=transition.at,
        owner=owner,
        mentions=router.mentions(target, team, owner) if status == "firing" else [],
        target=target,
        channel=channel,
        link=_link(grafana_url, rules, inst, team, owner),
        sinks=sinks,
        app_id=app_id,
    )


def _target(rule: Any, inst: AlertInstance, transition: Transition) -> str:
    if rule is None:
        return "none"
    if inst.rule_type == "lead_sla" and inst.step > 0 and inst.step <= len(rule.escalation):
        return rule.escalation[inst.step - 1].notify
    return getattr(rule, "notify", "none")


def _content(inst: AlertInstance, t: Transition, rule: Any, team: Any, owner: Any):
    info = inst.info
    resolved = t.kind == "resolved"
    if inst.rule_type == "lead_sla":
        lead = inst.scope.get("lead_id", "?")
        created = info.get("created_ms")
        wait = (t.at - created) / 1000 if isinstance(created, int) else None
        deadline = getattr(rule, "deadline", None)
        if resolved:
            how = info.get("resolution") or "touched"
            title = f"Resolved: lead {lead} {how} after {human_duration(wait)}"
            text = f"Lead {lead} was {how}; it waited {human_duration(wait)} (SLA {human_duration(deadline)})."
        elif t.kind == "escalation":
            title = f"Escalated: lead {lead} still untouched after {human_duration(wait)}"
            text = f"Lead {lead} (source {info.get('source') or 'unknown'}) is still waiting for a first touch."
        else:
            title = f"Lead {lead} not touched within {human_duration(deadline)}"
            text = f"Lead {lead} (source {info.get('source') or 'unknown'}) has waited {human_duration(wait)} for a first touch."
        facts = [("Owner", str(owner or "unassigned")), ("Team", str(team or "unassigned")),
                 ("Source", str(info.get("source") or "unknown")), ("Waiting", human_duration(wait)),
                 ("SLA", human_duration(deadline)), ("Since", iso(inst.firing_since))]
        return title, text, facts, wait, deadline
    if inst.rule_type == "no_activity":
        scope = ", ".join(f"{k} {v}" for k, v in inst.scope.items())
        what = {"calls": "calls", "touches": "touches", "any": "calls or touches"}.get(str(info.get("activity")), "activity")
        idle = inst.value
        threshold = info.get("threshold")
        if resolved:
            title = f"Resolved: {scope} is active again"
            text = f"{scope} logged {what} again."
        else:
            title = f"No {what} from {scope} for {human_duration(idle)}"
            text = f"{scope} has had no {what} for {human_duration(idle)} of business time (limit {human_duration(threshold)})."
        facts = [("Scope", scope), ("Last activity", iso(info.get("last_activity_ms"))),  # type: ignore[arg-type]
                 ("Idle (business time)", human_duration(idle)), ("Threshold", human_duration(threshold)),
                 ("Since", iso(inst.firing_since))]
        return title, text, facts, idle, threshold  # type: ignore[return-value]
    kpi = str(info.get("kpi", getattr(rule, "kpi", "kpi")))
    scope = ", ".join(f"{k} {v}" for k, v in inst.scope.items()) or "overall"
    op, threshold = info.get("op", "?"), info.get("threshold")
    window = info.get("window", "")
    shown = format_value(kpi, inst.value)
    limit = format_value(kpi, threshold if isinstance(threshold, (int, float)) else None)
    if resolved:
        title = f"Resolved: {kpi} ({window}) for {scope} is back at {shown}"
        text = f"{kpi} over {window} for {scope} is {shown}, no longer {op} {limit}."
    else:
        title = f"{kpi} ({window}) {op} {limit} for {scope}"
        text = f"{kpi} over {window} for {scope} is {shown} ({op} {limit})."
    facts = [("Value", shown), ("Threshold", f"{op} {limit}"), ("Scope", scope), ("Window", str(window)),
             ("Since", iso(inst.firing_since))]
    if owner:
        facts.append(("Owner", str(owner)))
    return title, text, facts, inst.value, threshold  # type: ignore[return-value]


def _link(base: str, rules: RuleSet, inst: AlertInstance, team: Any, owner: Any) -> str:
    links = rules.doc.links
    key = str(inst.info.get("kpi") or inst.rule_type)
    params: dict[str, Any] = {}
    panel = links.panels.get(key) or links.panels.get(inst.rule)
    if panel is not None:
        params["viewPanel"] = panel
    if team:
        params["var-team"] = team
    if owner and inst.rule_type != "kpi" or "rep" in inst.scope:
        params["var-rep"] = owner
    start = inst.firing_since or inst.pending_since
    if start:
        params["from"] = start - 3_600_000
        params["to"] = inst.resolved_at + 600_000 if inst.resolved_at else "now"
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{base.rstrip('/')}{links.dashboard}" + (f"?{query}" if query else "")
