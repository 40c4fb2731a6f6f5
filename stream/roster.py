"""The roster: teams and reps, each rep's team and monthly quota.

``watch_roster`` re-reads the YAML file when it changes (``stream.watched``), so edits apply without a
restart; a broken edit is logged and the last good roster stays in force.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import msgspec
import yaml

from stream.watched import WatchedFile

log = logging.getLogger(__name__)


class Team(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    lead_rep: str | None = None
    slack_channel: str | None = None
    oncall: str | None = None
    business_hours: str | None = None  # name of a calendar in the alert rules


class Rep(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    rep_id: str
    team: str
    monthly_quota: float | None = None
    slack_user_id: str | None = None
    name: str | None = None


class Roster(msgspec.Struct, dict=True):
    teams: list[Team] = []
    reps: list[Rep] = []

    def __post_init__(self) -> None:
        names = {t.name for t in self.teams}
        for rep in self.reps:
            if rep.team not in names:
                raise ValueError(f"rep {rep.rep_id!r} names team {rep.team!r}, which is not in `teams`")
        self._reps = {r.rep_id: r for r in self.reps}

    def team_of(self, rep_id: str) -> str | None:
        rep = self.rep(rep_id)
        return rep.team if rep else None

    def rep(self, rep_id: str) -> Rep | None:
        return self._reps.get(rep_id)

    def team(self, name: str) -> Team | None:
        return next((t for t in self.teams if t.name == name), None)


class RosterError(ValueError):
    pass


def parse_roster(text: str, source: str = "roster") -> Roster:
    try:
        data = yaml.safe_load(text) or {}
        return msgspec.convert(data, Roster)
    except yaml.YAMLError as exc:
        raise RosterError(f"{source}: not valid YAML: {str(exc).splitlines()[0]}") from None
    except (msgspec.ValidationError, ValueError) as exc:
        raise RosterError(f"{source}: {exc}") from None


def load_roster(path: str | os.PathLike) -> Roster:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise RosterError(f"KPI_ROSTER: cannot read {path}: {exc.strerror}") from None
    return parse_roster(text, str(path))


def watch_roster(path: str | os.PathLike) -> WatchedFile[Roster]:
    """The roster that follows its file (``current()``); a broken edit keeps the last good one."""
    return WatchedFile(path, load_roster, what="roster", errors=(RosterError,),
                       describe=lambda r: f"{len(r.teams)} teams, {len(r.reps)} reps")