"""The alert state machine, driven by an injected clock: inactive -> pending -> firing -> resolved."""

from __future__ import annotations

from alerts.model import FIRING, INACTIVE, PENDING, RESOLVED, escalate, fingerprint, fire, new_instance, observe, resolve

S = 1000  # ms


def run(breaches: list[tuple[int, bool]], for_s: int = 60, repeat_s: int | None = None, muted=lambda t: False):
    """Observe (second, breached) pairs; returns the final instance and (second, kind) transitions."""
    inst = new_instance("r", "kpi", {"team": "hunters"})
    out = []
    for second, breached in breaches:
        inst, transitions = observe(inst, breached, second * S, for_ms=for_s * S,
                                    repeat_ms=None if repeat_s is None else repeat_s * S, muted=muted(second))
        out += [(t.at // S, t.kind) for t in transitions]
    return inst, out


def every(start: int, end: int, breached: bool, step: int = 5):
    return [(t, breached) for t in range(start, end, step)]


def test_a_30s_blip_does_not_fire():
    inst, transitions = run(every(0, 100, False) + every(100, 130, True) + every(130, 300, False))
    assert transitions == []
    assert inst.state == INACTIVE


def test_a_sustained_breach_fires_once_after_for_then_resolves():
    inst, transitions = run(every(0, 100, False) + every(100, 400, True) + every(400, 500, False))
    assert transitions == [(160, "firing"), (400, "resolved")]
    assert inst.state == RESOLVED and inst.firing_since == 160 * S and inst.resolved_at == 400 * S


def test_for_zero_fires_at_once():
    _, transitions = run([(0, False), (10, True)], for_s=0)
    assert transitions == [(10, "firing")]


def test_repeat_interval_and_mute():
    _, transitions = run(every(0, 1000, True, step=10), for_s=0, repeat_s=300)
    assert transitions == [(0, "firing"), (300, "repeat"), (600, "repeat"), (900, "repeat")]
    # Acknowledged between 250 s and 700 s: no repeat in that span; the next comes 300 s after the last sent.
    _, transitions = run(every(0, 1000, True, step=10), for_s=0, repeat_s=300, muted=lambda t: 250 <= t < 700)
    assert transitions == [(0, "firing"), (700, "repeat")]


def test_muted_alert_still_resolves():
    _, transitions = run(every(0, 100, True) + [(100, False)], for_s=0, muted=lambda t: True)
    assert transitions == [(0, "firing"), (100, "resolved")]


def test_new_episode_after_resolve():
    inst, transitions = run(every(0, 50, True) + [(50, False)] + every(60, 100, True), for_s=0)
    assert transitions == [(0, "firing"), (50, "resolved"), (60, "firing")]
    assert inst.episode == 2 and inst.state == FIRING


def test_pending_that_clears_goes_back_to_inactive():
    inst, _ = run([(0, True)])
    assert inst.state == PENDING and inst.pending_since == 0
    inst, _ = observe(inst, False, 10 * S, for_ms=60 * S)
    assert inst.state == INACTIVE


def test_lead_style_fire_escalate_resolve():
    inst = new_instance("sla", "lead_sla", {"lead_id": "L1"})
    inst, t1 = fire(inst, 100)
    inst, t2 = escalate(inst, 1, 200)
    inst, t3 = escalate(inst, 1, 250)  # a step already reached notifies nothing
    inst, t4 = escalate(inst, 2, 300, muted=True)  # acknowledged: the step is passed silently
    inst, t5 = resolve(inst, 400)
    assert [t.kind for t in t1 + t2 + t3 + t4 + t5] == ["firing", "escalation", "resolved"]
    assert inst.step == 2 and inst.state == RESOLVED
    assert fire(inst, 500)[0].episode == 2


def test_fingerprint_is_stable_and_order_free():
    assert fingerprint("r", {"team": "a", "rep": "b"}) == fingerprint("r", {"rep": "b", "team": "a"})
    assert fingerprint("r", {"team": "a"}) != fingerprint("r2", {"team": "a"})
    assert fingerprint("r", {"team": "a"}) == "6f45a1f71d81b2bd"  # pinned: ack keys and Redis state outlive releases
