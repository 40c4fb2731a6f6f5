"""The alert rules file: models, YAML loading, and errors that name the line and field.

Three kinds of rules (``type``): ``kpi`` (a KPI of the catalogue, docs/kpis.md, crosses a threshold for a while),
``lead_sla`` (a lead waits too long for its first touch, with escalation steps) and ``no_activity`` (a
rep or team makes no calls / touches for a while during business hours); plus named business-hours
calendars. ``${VAR}`` (or ``${VAR:-default}``) in a value is replaced from the settings/environment;
``deadline: sla`` means ``KPI_SLA_SECONDS``. See docs/alerts.md for the format with examples.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from alerts.calendar import ALWAYS, BusinessCalendar, Calendar, parse_weekly
from stream.config import TimeZone
from stream.durations import parse_duration
from stream.kpi.catalogue import BY_KEY, KPIS, MONTH, SCOPE_SECTIONS
from stream.kpi.windows import WINDOWS

KPI_KEYS = tuple(k.key for k in KPIS)
STAGE_KPIS = tuple(k.key for k in KPIS if "stages" in k.sections)  # under /kpis "stages"
# The /kpis section a scope kind reads; products, sources and campaigns are labels of the revenue sections.
SECTION_OF_KIND = {"team": "teams", "rep": "reps", "stage": "stages", "product": "products", "source": "sources",
                   "campaign": "campaigns"}
LABEL_KINDS = ("product", "source", "campaign")
SINK_NAMES = ("slack", "alertmanager", "webhook")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class RulesError(ValueError):
    """The rules file is unusable; the message names the file, line and field of every problem."""


Duration = Annotated[float, BeforeValidator(parse_duration)]
Severity = Literal["info", "warning", "critical"]
Notify = Literal["rep", "team", "team_lead", "oncall", "none"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


@dataclass(frozen=True)
class Scope:
    """overall | each team | each rep | each stage (product, source, campaign) | one named one of them."""

    kind: Literal["overall", "team", "rep", "stage", "product", "source", "campaign"]
    name: str | None = None

    def __str__(self) -> str:
        return self.kind if self.name is None else f"{self.kind} {self.name}"


def _scope(value: Any) -> Scope:
    if isinstance(value, Scope):
        return value
    if isinstance(value, str):
        key = value.strip().lower().replace("-", "_")
        aliases = {"overall": "overall", "team": "team", "teams": "team", "each_team": "team",
                   "rep": "rep", "reps": "rep", "each_rep": "rep", "stage": "stage", "stages": "stage",
                   "each_stage": "stage", "product": "product", "products": "product", "each_product": "product",
                   "source": "source", "sources": "source", "each_source": "source", "campaign": "campaign",
                   "campaigns": "campaign", "each_campaign": "campaign"}
        if key in aliases:
            return Scope(aliases[key])  # type: ignore[arg-type]
    if isinstance(value, Mapping) and len(value) == 1:
        (kind, name), = value.items()
        if kind in ("team", "rep", "stage", *LABEL_KINDS) and isinstance(name, str) and name:
            return Scope(kind, name)
    raise ValueError("scope is overall, team (each team), rep (each rep), stage (each deal stage), product, source, "
                     "campaign (each of them), or one: {team: NAME}, {rep: NAME}, {stage: NAME}, {source: NAME}, …")


ScopeField = Annotated[Scope, BeforeValidator(_scope)]


def _channels(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ValueError("channels is a list of sinks (slack, alertmanager, webhook) and/or Slack channels (#name)")
    for item in value:
        if not isinstance(item, str) or not (item in SINK_NAMES or item.startswith("#")):
            raise ValueError(f"channel {item!r}: use slack, alertmanager, webhook or a Slack channel like #sales-alerts")
    return tuple(value)


Channels = Annotated[tuple[str, ...] | None, BeforeValidator(_channels)]


class CalendarSpec(_Model):
    timezone: TimeZone = "UTC"
    hours: dict[str, Any]
    holidays: list[date] = []


    @field_validator("hours")
    @classmethod
    def _hours(cls, value: dict[str, Any]) -> dict[str, Any]:
        parse_weekly(value)  # raises ValueError with the reason
        return value

    def build(self, name: str) -> BusinessCalendar:
        return BusinessCalendar(name, self.timezone, parse_weekly(self.hours), frozenset(self.holidays))


class Defaults(_Model):
    calendar: str | None = None  # for teams whose roster entry names no business_hours
    repeat_interval: Duration | None = 4 * 3600
    channels: Channels = None  # None: every configured sink
    severity: Severity = "warning"


class Links(_Model):
    # Where the Grafana link of a message points: KPI_GRAFANA_URL + dashboard + ?viewPanel=<panel>.
    dashboard: str = "/d/kpi-drilldown"  # grafana/drilldown.py (team and rep variables)
    panels: dict[str, int] = {}


class _Rule(_Model):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,80}$")]
    description: str | None = None
    severity: Severity | None = None
    labels: dict[str, str] = {}
    channels: Channels = None
    repeat_interval: Duration | None = None
    calendar: str | None = None  # a calendar name, "team" (the team's roster calendar), or "none"
    enabled: bool = True


class MinSample(_Model):
    kpi: str
    at_least: float

    @field_validator("kpi")
    @classmethod
    def _kpi(cls, value: str) -> str:
        return _known_kpi(value)


def _known_kpi(value: str) -> str:
    if value not in KPI_KEYS:
        close = difflib.get_close_matches(value, KPI_KEYS, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown KPI {value!r}{hint}")
    return value


def _period_point(value: Any) -> tuple[str, float]:
    """``after:`` as ("share", 0.25) for "25%", or ("elapsed", seconds) for a duration such as "7d"."""
    if isinstance(value, str) and value.strip().endswith("%"):
        share = float(value.strip()[:-1]) / 100
        if not 0 <= share <= 1:
            raise ValueError(f"{value!r}: a share of the period is 0%..100%")
        return ("share", share)
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return (str(value[0]), float(value[1]))
    return ("elapsed", parse_duration(value))


PeriodPoint = Annotated[tuple[str, float], BeforeValidator(_period_point)]
CALENDAR_PERIODS = ("today", "week", "month", "quarter")  # windows that are a calendar period


class KpiRule(_Rule):
    type: Literal["kpi"]
    kpi: str
    scope: ScopeField = Scope("overall")
    window: str = "1h"
    op: Literal["<", "<=", ">", ">=", "==", "!="]
    threshold: float
    for_: Annotated[Duration, Field(alias="for")] = 0.0
    min_sample: MinSample | None = None
    notify: Notify = "team"
    # Early warning (docs/alerts.md "Pace and period rules"): judge only once the window's calendar period
    # has run this far (`after: 25%`, `after: 7d`), and/or only in its last part (`in_last: 7d`). Outside,
    # the rule is not breached (a firing alert resolves when the next period starts).
    after: PeriodPoint | None = None
    in_last: Duration | None = None

    @field_validator("kpi")
    @classmethod
    def _kpi(cls, value: str) -> str:
        return _known_kpi(value)

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        if value not in WINDOWS:
            raise ValueError(f"unknown window {value!r}; one of {', '.join(WINDOWS)}")
        return value

    @model_validator(mode="after")
    def _stage_scope(self) -> KpiRule:
        if BY_KEY[self.kpi].timing == MONTH and self.window != "month":
            raise ValueError(f"{self.kpi} is month to date: use window: month")
        if (self.after is not None or self.in_last is not None) and self.window not in CALENDAR_PERIODS:
            raise ValueError(f"`after` and `in_last` need a calendar-period window ({', '.join(CALENDAR_PERIODS)})")
        if self.scope.kind == "stage" and self.kpi not in STAGE_KPIS:
            raise ValueError(f"per-stage rules take one of {', '.join(STAGE_KPIS)}")
        if self.scope.kind != "stage" and "stages" in BY_KEY[self.kpi].sections \
                and not set(SCOPE_SECTIONS) & set(BY_KEY[self.kpi].sections):
            raise ValueError(f"{self.kpi} is reported per stage: use scope: stage or {{stage: NAME}}")
        sections = BY_KEY[self.kpi].sections
        if self.scope.kind in (*LABEL_KINDS, "team", "rep") and SECTION_OF_KIND[self.scope.kind] not in sections:
            raise ValueError(f"{self.kpi} is not reported per {self.scope.kind} (it is in {', '.join(sections)})")
        return self


class EscalationStep(_Model):
    after: Duration  # since the lead's creation, in business time when the rule has a calendar
    notify: Notify
    severity: Severity | None = None


class LeadSlaRule(_Rule):
    type: Literal["lead_sla"]
    deadline: Duration
    notify: Notify = "rep"
    escalation: list[EscalationStep] = []
    max_age: Duration = 7 * 86400  # leads older than this (plain time) are stale: never fire
    sources: list[str] | None = None  # only leads from these sources
    teams: list[str] | None = None  # only leads of these teams

    @model_validator(mode="after")
    def _steps(self) -> LeadSlaRule:
        afters = [s.after for s in self.escalation]
        if afters != sorted(afters) or len(set(afters)) != len(afters):
            raise ValueError("escalation steps must have increasing `after` values")
        if self.deadline <= 0:
            raise ValueError("deadline must be > 0")
        return self


class NoActivityRule(_Rule):
    type: Literal["no_activity"]
    scope: ScopeField = Scope("rep")
    activity: Literal["calls", "touches", "any"] = "calls"
    for_: Annotated[Duration, Field(alias="for")]
    notify: Notify = "rep"

    @field_validator("scope")
    @classmethod
    def _not_overall(cls, value: Scope) -> Scope:
        if value.kind not in ("rep", "team"):
            raise ValueError("no_activity rules are per rep or per team")
        return value


Rule = Annotated[Union[KpiRule, LeadSlaRule, NoActivityRule], Field(discriminator="type")]


class RulesDoc(_Model):
    version: Literal[1] = 1
    calendars: dict[str, CalendarSpec] = {}
    defaults: Defaults = Defaults()
    links: Links = Links()
    rules: list[Rule] = []


class RuleSet:
    """A validated rules file, ready to evaluate: calendars built, defaults applied."""

    def __init__(self, doc: RulesDoc, source: str = "rules", timezone: str = "UTC") -> None:
        self.doc = doc
        self.source = source
        self.timezone = timezone  # KPI_TIMEZONE: where a rule's calendar period (`after`, `in_last`) starts
        self.calendars: dict[str, BusinessCalendar] = {n: c.build(n) for n, c in doc.calendars.items()}
        self.rules = [r for r in doc.rules if r.enabled]
        self.by_name = {r.name: r for r in doc.rules}

    @property
    def defaults(self) -> Defaults:
        return self.doc.defaults

    def of_type(self, kind: str) -> list:
        return [r for r in self.rules if r.type == kind]

    def severity(self, rule: Any) -> str:
        return rule.severity or self.defaults.severity

    def repeat_interval(self, rule: Any) -> float | None:
        if rule.repeat_interval is not None:
            return rule.repeat_interval or None
        # Lead alerts escalate instead of repeating.
        return None if rule.type == "lead_sla" else self.defaults.repeat_interval

    def channels(self, rule: Any) -> tuple[str, ...] | None:
        return rule.channels if rule.channels is not None else self.defaults.channels

    def calendar(self, rule: Any, team_calendar: str | None) -> Calendar:
        """The calendar a rule uses for one team: explicit name, the team's (``team``), or none."""
        name = rule.calendar
        if name is None:
            # Lead SLA and no-activity rules follow the team's hours by default; KPI rules run 24/7.
            name = "team" if rule.type in ("lead_sla", "no_activity") else "none"
        if name == "none":
            return ALWAYS
        if name == "team":
            name = team_calendar or self.defaults.calendar
            if name is None:
                return ALWAYS
        return self.calendars.get(name, ALWAYS)

    def summary(self) -> str:
        kinds: dict[str, int] = {}
        for r in self.rules:
            kinds[r.type] = kinds.get(r.type, 0) + 1
        parts = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no rules"
        return f"{len(self.rules)} rules ({parts}), {len(self.calendars)} calendars"


# --- YAML with line numbers --------------------------------------------------------------------------
Path_ = tuple[Any, ...]


class _Located:
    """Plain Python data from a YAML node tree, and the line of every path in it."""

    def __init__(self, source: str, env: Mapping[str, str]) -> None:
        self.source = source
        self.env = env
        self.lines: dict[Path_, int] = {}
        self.errors: list[str] = []

    def convert(self, node: yaml.Node, path: Path_, loader: yaml.SafeLoader) -> Any:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = loader.construct_object(key_node, deep=True)
                if key == "<<":
                    self.errors.append(f"{self.source}:{key_node.start_mark.line + 1}: merge keys (<<) are not supported")
                    continue
                if key in out:
                    self.errors.append(f"{self.source}:{key_node.start_mark.line + 1}: {_dotted(path + (key,))}: duplicate key")
                out[key] = self.convert(value_node, path + (key,), loader)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, path + (i,), loader) for i, item in enumerate(node.value)]
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:str" and "${" in node.value:
            return self._substitute(node, path)
        return loader.construct_object(node, deep=True)

    def _substitute(self, node: yaml.ScalarNode, path: Path_) -> Any:
        def value_of(match: re.Match) -> str:
            name, default = match.group(1), match.group(2)
            if name in self.env:
                return str(self.env[name])
            if default is not None:
                return default
            self.errors.append(f"{self.source}:{node.start_mark.line + 1}: {_dotted(path)}: ${{{name}}} is not set")
            return ""

        text = _VAR.sub(value_of, node.value)
        if _VAR.fullmatch(node.value) and not node.style:
            # A whole-value variable is typed like a YAML scalar: ${KPI_SLA_SECONDS} -> 300 (a number).
            return yaml.safe_load(text) if text else None
        return text


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _locate(lines: dict[Path_, int], loc: tuple) -> tuple[int | None, Path_]:
    """Line and shown field path of a pydantic error location.

    The location may hold a union's tag (``rules[0].kpi.threshold`` for a ``type: kpi`` rule) or a
    validator's name; those are not in the YAML, so they are skipped. The line is the deepest YAML node
    the location reaches (a missing field points at its parent mapping).
    """
    shown: Path_ = ()
    line = lines.get(())
    for i, part in enumerate(loc):
        candidate = shown + (part,)
        if i == 2 and loc[0] == "rules" and part in ("kpi", "lead_sla", "no_activity"):
            continue  # the union's tag (rules[0].<tag>.field), not the `kpi:` field
        if candidate in lines:
            shown = candidate
            line = lines[candidate]
        elif str(part).startswith(("function-", "tagged-union")):
            continue
        else:
            shown = candidate
    return line, shown


def _substitutions(settings: Any | None) -> dict[str, str]:
    env = dict(os.environ)
    if settings is not None:
        env["KPI_SLA_SECONDS"] = f"{settings.kpi_sla_seconds:g}"
        env["KPI_TIMEZONE"] = settings.kpi_timezone
    env.setdefault("KPI_SLA_SECONDS", "300")
    return env


def parse_rules(text: str, source: str = "rules", settings: Any | None = None, env: Mapping[str, str] | None = None) -> RuleSet:
    """Validate a rules document; RulesError lists every problem as ``file:line: field: reason``."""
    env = dict(env) if env is not None else _substitutions(settings)
    sla = env.get("KPI_SLA_SECONDS", "300")
    located = _Located(source, env)
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = located.convert(node, (), loader) if node is not None else {}
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f":{mark.line + 1}" if mark else ""
        raise RulesError(f"{source}{where}: not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise RulesError(f"{source}: not valid YAML: {exc}") from None
    if located.errors:
        raise RulesError("\n".join(located.errors))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RulesError(f"{source}:1: the rules file must be a mapping with `rules:` (and optional calendars, defaults)")
    for rule in data.get("rules") or []:
        if isinstance(rule, dict) and rule.get("deadline") == "sla":
            rule["deadline"] = float(sla)
    try:
        doc = RulesDoc.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:20]:
            loc = tuple(err["loc"]) + (("type",) if err["type"] in ("union_tag_invalid", "union_tag_not_found") else ())
            line, path = _locate(located.lines, loc)
            field = _dotted(path)
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{source}:{line or '?'}: {field}: {msg}")
        raise RulesError("\n".join(problems)) from None
    _cross_check(doc, located, source)
    return RuleSet(doc, source, timezone=env.get("KPI_TIMEZONE") or "UTC")


def _cross_check(doc: RulesDoc, located: _Located, source: str) -> None:
    problems = []

    def at(path: Path_) -> str:
        return f"{source}:{located.lines.get(path, '?')}: {_dotted(path)}"

    seen: dict[str, int] = {}
    for i, rule in enumerate(doc.rules):
        if rule.name in seen:
            problems.append(f"{at(('rules', i, 'name'))}: rule name {rule.name!r} is already used by rules[{seen[rule.name]}]")
        seen.setdefault(rule.name, i)
        if rule.calendar not in (None, "team", "none") and rule.calendar not in doc.calendars:
            problems.append(f"{at(('rules', i, 'calendar'))}: no calendar named {rule.calendar!r} under `calendars:`")
    if doc.defaults.calendar is not None and doc.defaults.calendar not in doc.calendars:
        problems.append(f"{at(('defaults', 'calendar'))}: no calendar named {doc.defaults.calendar!r} under `calendars:`")
    if problems:
        raise RulesError("\n".join(problems))


def load_rules(path: str | os.PathLike, settings: Any | None = None) -> RuleSet:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise RulesError(f"KPI_ALERT_RULES: cannot read {path}: {exc.strerror}") from None
    return parse_rules(text, str(path), settings)


def check_against_roster(rules: RuleSet, roster: Any) -> list[str]:
    """Warnings about names the rules and the roster disagree on (not errors: rosters change)."""
    warnings = []
    teams = {t.name for t in roster.teams}
    reps = {r.rep_id for r in roster.reps}
    for team in roster.teams:
        if team.business_hours and team.business_hours not in rules.calendars:
            warnings.append(f"roster team {team.name!r} names calendar {team.business_hours!r}, which the rules do not define")
    for rule in rules.rules:
        scope = getattr(rule, "scope", None)
        if isinstance(scope, Scope) and scope.name is not None and scope.kind in ("team", "rep"):
            known = teams if scope.kind == "team" else reps
            if scope.name not in known:
                warnings.append(f"rule {rule.name!r}: {scope.kind} {scope.name!r} is not in the roster")
    return warnings
