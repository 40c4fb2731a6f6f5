#!/usr/bin/env bash
# supervise.sh COMMAND...: runs COMMAND again whenever it exits with code 3 (the worker's stall watchdog,
# see the README's Guarantees) and passes SIGTERM/SIGINT on to it. What a restart policy does under
# docker-compose or systemd, for `make demo`.
child=
trap 'if [[ -n $child ]]; then kill -TERM "$child" 2>/dev/null; wait "$child"; fi; exit 143' TERM INT
while :; do
  "$@" &
  child=$!
  wait "$child"
  code=$?
  [[ $code -eq 3 ]] || exit "$code"
  echo "supervise: $* exited with code 3 (stalled); starting it again" >&2
done
