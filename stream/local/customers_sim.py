"""The simulated floor's customers and forecasts (``stream.local.simulator``): subscriptions and monthly
forecasts, on random streams of their own so the leads, calls and deals of a seed stay what they were.

* A book of existing accounts (``BOOK_PER_REP`` per rep) is started in the first hour of the run: the
  customer base a CRM import would bring.
* A won deal starts a subscription (``P_SUBSCRIPTION`` of them; MRR = final amount ÷ 12, a 12-month term)
  for a new account, or, a quarter of the time, raises the MRR of one of the rep's active accounts.
* Each account churns at ``MONTHLY_CHURN`` a month (exponential lifetimes) and changes MRR now and then
  (up ±10-35 %): expansions and contractions.
* Each rep submits a forecast for the month on its 1st (08:00-09:30 local) and revises it every Monday:
  won so far + the rest of the quota × their optimism; a few reps are optimistic (×1.3-1.5).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any, Callable
from zoneinfo import ZoneInfo

BOOK_PER_REP = 12
P_SUBSCRIPTION = 0.6
P_EXPAND_EXISTING = 0.25
MONTHLY_CHURN = 0.03
MONTHLY_CHANGE = 0.06
MONTH_S = 30.44 * 86400
BOOK_MRR = (("starter", 400, 60), ("growth", 1_000, 28), ("scale", 3_000, 10), ("enterprise", 7_500, 2))
N_OPTIMISTS = 2
DEFAULT_QUOTA = 30_000
CANCEL_REASONS = ("budget", "moved_to_competitor", "no_usage", "company_closed")


class Account:
    __slots__ = ("account_id", "rep", "mrr_cents", "cancel_at", "scheduled")

    def __init__(self, account_id: str, rep: str, mrr_cents: int, cancel_at: float) -> None:
        self.account_id, self.rep, self.mrr_cents, self.cancel_at = account_id, rep, mrr_cents, cancel_at
        self.scheduled: list[tuple[float, dict]] = []  # (t, subscription.changed event) not yet emitted


class CustomerBook:
    """Schedules subscription and forecast events through ``emit(t, type, key, fields, rep, rng)``."""

    def __init__(self, seed: int, reps: list[str], quotas: dict[str, float], tz: ZoneInfo,
                 emit: Callable[..., None], amount: Callable[[int, random.Random], Any]) -> None:
        self.rng = random.Random(f"{seed}:customers")
        self.seed, self.reps, self.tz, self.emit, self.amount = seed, reps, tz, emit, amount
        self.quotas = {r: quotas.get(r) or DEFAULT_QUOTA for r in reps}
        self.optimism = {r: self.rng.uniform(0.9, 1.1) for r in reps}
        for r in self.rng.sample(reps, min(N_OPTIMISTS, len(reps))):
            self.optimism[r] = self.rng.uniform(1.3, 1.5)
        self.accounts: dict[str, list[Account]] = {r: [] for r in reps}
        self.wins: dict[str, list[tuple[float, int]]] = {r: [] for r in reps}  # (t, cents)
        self._n = 0
        self._next_checkpoint: float | None = None
        self.started = False

    # ---------------------------------------------------------------- subscriptions
    def start_book(self, t0: float) -> None:
        self.started = True
        rng = self.rng
        products = [p for p, _, _ in BOOK_MRR]
        weights = [w for _, _, w in BOOK_MRR]
        base = {p: m for p, m, _ in BOOK_MRR}
        for rep in self.reps:
            for _ in range(BOOK_PER_REP):
                product = rng.choices(products, weights)[0]
                cents = round(base[product] * rng.lognormvariate(0, 0.25) * 100)
                self._start(t0 + rng.uniform(0, 3600), rep, cents, product)
        self._next_checkpoint = self._first_checkpoint(t0)

    def _start(self, t: float, rep: str, cents: int, product: str | None) -> Account:
        rng = self.rng
        self._n += 1
        account = Account(f"acct-{self.seed}-{self._n:05d}", rep, cents, t + rng.expovariate(MONTHLY_CHURN / MONTH_S))
        fields: dict[str, Any] = {"account_id": account.account_id, "mrr": self.amount(cents, rng)}
        if product:
            fields["product"] = product
        self.emit(t, "subscription.started", account.account_id, fields, rep, rng)
        change_t, mrr = t, cents
        while True:
            change_t += rng.expovariate(MONTHLY_CHANGE / MONTH_S)
            if change_t >= account.cancel_at or len(account.scheduled) >= 4:
                break
            mrr = max(100, round(mrr * rng.choice((rng.uniform(1.1, 1.35), rng.uniform(0.65, 0.9)))))
            ev = {"account_id": account.account_id, "mrr": self.amount(mrr, rng)}
            account.scheduled.append((change_t, self.emit(change_t, "subscription.changed", account.account_id, ev,
                                                          rep if rng.random() < 0.5 else None, rng)))
        self.emit(account.cancel_at, "subscription.cancelled", account.account_id,
                  {"account_id": account.account_id, "reason": rng.choice(CANCEL_REASONS)},
                  rep if rng.random() < 0.5 else None, rng)
        self.accounts[rep].append(account)
        return account

    def deal_won(self, t: float, rep: str, product: str, cents: int, term_months: int | None) -> None:
        """A won deal: its revenue counts toward the forecasts; most with a term start or grow a
        subscription of amount ÷ term per month."""
        self.wins.setdefault(rep, []).append((t, cents))
        rng = self.rng
        if not self.started or term_months is None or rng.random() >= P_SUBSCRIPTION:
            return
        mrr = round(cents / term_months)
        active = [a for a in self.accounts.get(rep, ()) if a.cancel_at > t]
        if active and rng.random() < P_EXPAND_EXISTING:
            account = rng.choice(active)
            current = self._mrr_at(account, t)
            self.emit(t, "subscription.changed", account.account_id,
                      {"account_id": account.account_id, "mrr": self.amount(current + mrr, rng)}, rep, rng)
            for when, ev in account.scheduled:  # later changes build on the new MRR
                if when > t:
                    ev["mrr"] = self.amount(self._cents(ev["mrr"]) + mrr, rng)
        else:
            self._start(t, rep, mrr, product)

    def _mrr_at(self, account: Account, t: float) -> int:
        cents = account.mrr_cents
        for when, ev in account.scheduled:
            if when <= t:
                cents = self._cents(ev["mrr"])
        return cents

    @staticmethod
    def _cents(value: Any) -> int:
        return round(float(value) * 100)

    # ---------------------------------------------------------------- forecasts
    def _first_checkpoint(self, t0: float) -> float:
        day = datetime.fromtimestamp(t0, self.tz).replace(hour=8, minute=0, second=0, microsecond=0)
        if day.timestamp() < t0:
            day += timedelta(days=1)
        while not (day.day == 1 or day.weekday() == 0):
            day += timedelta(days=1)
        return day.timestamp()

    def forecasts_until(self, t: float) -> None:
        """Submit the forecasts due before ``t`` (the timeline calls this as simulated time passes)."""
        while self._next_checkpoint is not None and self._next_checkpoint <= t:
            self._forecast_round(self._next_checkpoint)
            day = datetime.fromtimestamp(self._next_checkpoint, self.tz) + timedelta(days=1)
            while not (day.day == 1 or day.weekday() == 0):
                day += timedelta(days=1)
            self._next_checkpoint = day.replace(hour=8, minute=0).timestamp()

    def _forecast_round(self, t: float) -> None:
        rng = self.rng
        local = datetime.fromtimestamp(t, self.tz)
        start = local.replace(day=1, hour=0, minute=0)
        end = (start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1))
        f = (local - start) / (end - start)
        period = f"{local.year:04d}-{local.month:02d}"
        for rep, wins in self.wins.items():  # only this month's wins are ever read again
            self.wins[rep] = [w for w in wins if w[0] >= start.timestamp() - 86400]
        for rep in self.reps:
            won = sum(c for when, c in self.wins.get(rep, ()) if start.timestamp() <= when <= t) / 100
            rest = self.quotas[rep] * (1 - f) * self.optimism[rep] * rng.uniform(0.9, 1.1)
            cents = round((won + rest) * 100)
            at = t + rng.uniform(0, 5400)
            self.emit(at, "forecast.submitted", rep, {"period": period, "amount": self.amount(cents, rng)}, rep, rng)
