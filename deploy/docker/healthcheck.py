"""Docker HEALTHCHECK of a worker: its /healthz on the container's own address (see entrypoint.sh)."""

import os
import socket
import sys
import urllib.request

host = os.environ.get("KPI_WEB_HOST", "auto")
if host == "auto":
    host = socket.gethostbyname(socket.gethostname())
try:
    with urllib.request.urlopen(f"http://{host}:{os.environ.get('KPI_WEB_PORT', '6066')}/healthz", timeout=3) as resp:
        sys.exit(0 if resp.status == 200 else 1)
except Exception as exc:  # 503 while rebalancing or recovering, or not listening yet
    print(exc)
    sys.exit(1)
