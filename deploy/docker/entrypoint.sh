#!/bin/sh
# Entry point of the kpi-monitor image. KPI_WEB_HOST=auto becomes this container's own address: a
# worker binds its web server there and advertises it to the other workers (they fetch each other's
# partials for /kpis) and Prometheus finds it there through Docker's DNS, so "0.0.0.0" or "localhost"
# would not do.
set -e
if [ "${KPI_WEB_HOST:-auto}" = "auto" ]; then
  KPI_WEB_HOST=$(python -c 'import socket; print(socket.gethostbyname(socket.gethostname()))')
  export KPI_WEB_HOST
fi
exec "$@"
