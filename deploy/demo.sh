#!/usr/bin/env bash
# The live demo: local stack, one worker, the simulator. `up` starts what is not running and prints
# where to look; `down` stops what it started (by pid file) and the local stack; `status` says what runs.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
KPI="$VENV/bin/kpi-monitor"
RUN=.stack/demo
mkdir -p "$RUN"
PORT=${KPI_WEB_PORT:-6066}
RATE=${DEMO_RATE:-25}
SPEEDUP=${DEMO_SPEEDUP:-10}
# The simulated clock runs SPEEDUP x faster than the wall, so it starts DURATION x (SPEEDUP - 1) in the past
# and reaches "now" when the run ends; without an end it would run into the future (dead-lettered `future`).
DURATION=${DEMO_DURATION:-2h}

running() { [[ -f "$RUN/$1.pid" ]] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

start() {  # name, command...
  local name=$1; shift
  if running "$name"; then echo "$name: already running (pid $(cat "$RUN/$name.pid"))"; return; fi
  nohup "$@" >"$RUN/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
  echo "$name: started (pid $!, log $RUN/$name.log)"
}

stop() {
  local name=$1
  if running "$name"; then
    local pid; pid=$(cat "$RUN/$name.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    echo "$name: stopped"
  fi
  rm -f "$RUN/$name.pid"
}

wait_healthy() {
  for _ in $(seq 1 120); do
    if curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; then return 0; fi
    if ! running worker; then echo "worker exited; last lines of $RUN/worker.log:" >&2; tail -n 30 "$RUN/worker.log" >&2; exit 1; fi
    sleep 0.5
  done
  echo "worker not healthy after 60 s; see $RUN/worker.log" >&2; exit 1
}

case "${1:-up}" in
  up)
    "$KPI" stack up
    "$VENV/bin/python" -m stream.promstack up --worker "127.0.0.1:$PORT"
    # Alerts go to the local Alertmanager started below (its UI lists them), and to Slack too when
    # SLACK_WEBHOOK_URL is set in the environment.
    start worker deploy/supervise.sh env KPI_WEB_PORT="$PORT" ALERTMANAGER_URL="${ALERTMANAGER_URL:-http://127.0.0.1:9093}" "$KPI" worker
    wait_healthy
    start simulator "$KPI" simulate --rate "$RATE" --speedup "$SPEEDUP" --duration "$DURATION" --bad-ratio 0.01
    cat <<MSG

kpi-monitor is running with live simulated data: ~${RATE} events/s for ${DURATION}, the simulated clock
${SPEEDUP}x faster than the wall and arriving at "now" when the run ends (1% malformed, to show dead letters).
  KPIs (table):        $KPI kpis --window today        (or --json)
  KPIs (JSON):         http://127.0.0.1:$PORT/kpis?window=1h   (1h, 24h, today, month, all)
  Prometheus metrics:  http://127.0.0.1:$PORT/metrics
  Health:              http://127.0.0.1:$PORT/healthz
  Prometheus:          http://127.0.0.1:9090  (scrapes the worker every 15 s; ops alert rules loaded)
  Alertmanager:        http://127.0.0.1:9093  (the worker's alerts: slow reps' leads firing and resolving)
  Alerts in the log:   grep ' alert ' $RUN/worker.log
  Grafana:             point a Grafana at Prometheus and load grafana/provisioning + grafana/dashboards (docs/grafana.md);
                       docs/wall.png shows the wall dashboard
  Logs:                $RUN/worker.log  $RUN/simulator.log
  Stop everything:     make stop
MSG
    ;;
  down)
    stop simulator
    stop worker
    "$VENV/bin/python" -m stream.promstack down || true
    if [[ -x "$KPI" ]]; then "$KPI" stack down; fi
    ;;
  status)
    for name in worker simulator; do
      if running "$name"; then echo "$name: running (pid $(cat "$RUN/$name.pid"))"; else echo "$name: stopped"; fi
    done
    ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
