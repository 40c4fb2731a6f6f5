#!/usr/bin/env bash
# The live demo: local stack, one worker, the simulator. `up` starts what is not running and prints
# where to look (the wall first); `down` stops what it started (by pid file), deletes the run's topics
# and the local stack it started; `status` says what runs.
#
# Each run has its own app id and topics (demo-<time>), so a second `make demo` never adds a second
# five weeks of history to the first one's. The simulator backfills five weeks (DEMO_BACKFILL) as fast as
# the broker takes them, every event at its real past time, then runs live at the wall clock's pace.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
KPI="$VENV/bin/kpi-monitor"
RUN=.stack/demo
mkdir -p "$RUN"
PORT=${KPI_WEB_PORT:-6066}
BACKFILL=${DEMO_BACKFILL:-5w}
DURATION=${DEMO_DURATION:-}  # empty: live until `make stop`

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

# The run's settings, shared by the worker and the simulator (and `down`, to know what to delete).
# A five-week backfill reaches up to 36 days back (from local midnight): a wall-clock worker refuses
# events older than KPI_TOO_LATE_SECONDS (default 25 h) as `too_late`, so the demo's worker accepts 40
# days, and keeps quiet entities longer than lead_max_age (7 d) + 40 d, as stream/config.py requires.
run_env() {
  if [[ ! -f "$RUN/run.env" ]] || ! running worker; then
    local id; id=demo-$(date -u +%Y%m%d-%H%M%S)
    cat >"$RUN/run.env" <<ENV
export KPI_APP_ID=$id
export KPI_TOPIC_PREFIX=$id.
export KPI_TOO_LATE_SECONDS=$((40 * 86400))
export KPI_ENTITY_RETENTION_DAYS=48
ENV
  fi
  # shellcheck disable=SC1091
  source "$RUN/run.env"
}

case "${1:-up}" in
  up)
    echo "kpi-monitor demo: the wall will be at http://127.0.0.1:$PORT/wall"
    run_env
    "$KPI" stack up
    "$VENV/bin/python" -m stream.local.promstack up --worker "127.0.0.1:$PORT"
    # Alerts go to the local Alertmanager started above (its UI lists them), and to Slack too when
    # SLACK_WEBHOOK_URL is set in the environment.
    start worker deploy/supervise.sh env KPI_WEB_PORT="$PORT" ALERTMANAGER_URL="${ALERTMANAGER_URL:-http://127.0.0.1:9093}" "$KPI" worker
    wait_healthy
    start simulator "$KPI" simulate --backfill "$BACKFILL" ${DURATION:+--duration "$DURATION"} ${DEMO_SEED:+--seed "$DEMO_SEED"} --bad-ratio 0.01
    cat <<MSG

  Wall (open it):      http://127.0.0.1:$PORT/wall        (one team: /wall?team=inbound)

kpi-monitor is running a simulated sales floor (12 reps, stream/roster.example.yaml): first ${BACKFILL} of
history, backfilled in a minute or so at its real times (the wall says "stale" until it has caught up),
then live at the wall clock's pace: a new lead every few minutes at the weekday peak, 1% malformed
messages to show dead letters. Run $KPI_APP_ID, topics ${KPI_TOPIC_PREFIX}*.
  KPIs (table):        $KPI kpis --window today        (or --window month, --json)
  KPIs (JSON):         http://127.0.0.1:$PORT/kpis?window=1h   (1h, 24h, today, week, month, quarter, all)
  Prometheus metrics:  http://127.0.0.1:$PORT/metrics
  Health:              http://127.0.0.1:$PORT/healthz
  Prometheus:          http://127.0.0.1:9090  (scrapes the worker every 15 s; ops alert rules loaded)
  Alertmanager:        http://127.0.0.1:9093  (the worker's alerts: leads that waited past the SLA)
  Alerts in the log:   grep ' alert ' $RUN/worker.log
  Grafana:             point a Grafana at Prometheus and load grafana/provisioning + grafana/dashboards (docs/grafana.md)
  Logs:                $RUN/worker.log  $RUN/simulator.log
  Stop everything:     make stop
MSG
    ;;
  down)
    stop simulator
    stop worker
    if [[ -f "$RUN/run.env" ]]; then
      # shellcheck disable=SC1091
      source "$RUN/run.env"
      if [[ -x "$VENV/bin/python" ]]; then
        "$VENV/bin/python" -c "from stream import stack; from stream.config import load_settings; stack.forget_run(load_settings())" || true
      fi
      rm -rf ".stack/worker/$KPI_APP_ID-$PORT" "$RUN/run.env"
    fi
    "$VENV/bin/python" -m stream.local.promstack down || true
    if [[ -x "$KPI" ]]; then "$KPI" stack down; fi
    ;;
  status)
    for name in worker simulator; do
      if running "$name"; then echo "$name: running (pid $(cat "$RUN/$name.pid"))"; else echo "$name: stopped"; fi
    done
    [[ -f "$RUN/run.env" ]] && grep -o 'KPI_APP_ID=.*' "$RUN/run.env" || true
    ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
