"""bench.profile: the component view of a py-spy recording (what RESULTS.md quotes)."""

from bench.profile import component_of, summarise

LOOP = "_run_once (/usr/lib/python3.11/asyncio/base_events.py:1922);_run (/usr/lib/python3.11/asyncio/events.py:80)"
AGENT = "process (/repo/stream/worker/app.py:208);apply (/repo/stream/worker/app.py:190)"


def test_components_split_busy_samples_and_leave_idle_out(tmp_path):
    path = tmp_path / "profile.txt"
    path.write_text(
        "\n".join(
            [
                f"{LOOP.split(';')[0]};select (/usr/lib/python3.11/selectors.py:468) 50",
                f"{LOOP};{AGENT};KpiEngine.apply (/repo/stream/kpi/engine.py:257);"
                "BytesKeyTable.__setitem__ (/repo/stream/worker/app.py:266) 30",
                f"{LOOP};{AGENT};KpiEngine.apply (/repo/stream/kpi/engine.py:250) 10",
                f"{LOOP};_drain_messages (/site-packages/faust/transport/consumer.py:1220);"
                "Consumer._drain_messages (/site-packages/faust/transport/consumer.py:1220) 10",
            ]
        )
        + "\n"
    )
    text = summarise(str(path), top=5)
    assert text.startswith("100 samples")
    assert "busy (not waiting in select): 50.0 % of samples" in text
    assert "   60.0  agent: entity write (RocksDB put + changelog record)" in text
    assert "   20.0  agent: KPI engine (facts, contributions, aggregates)" in text
    assert "   20.0  Faust fetch loop (tasks per message, flow control)" in text


def test_first_matching_component_wins_and_the_rest_is_other():
    assert component_of(["x (a.py)", "AlertRuntime.on_change (alerts/runtime.py)", "KpiEngine.apply (e.py)"]).startswith(
        "agent: alert tracker"
    )
    assert component_of(["Handle._run (asyncio/events.py)"]) == "other (event loop, timers, Faust services)"
    assert component_of(["x (a.py)", "EpollSelector.select (selectors.py)"]) is None
