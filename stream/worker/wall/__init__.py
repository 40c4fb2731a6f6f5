"""The sales floor wall as a web page served by the worker: ``GET /wall`` (``/wall?team=…`` for one team).

Plain HTML, CSS and a little JavaScript shipped in the package (``static/``: no CDN, no build step), so a
TV on a locked-down network shows it from the worker alone. The page asks ``/kpis`` every few seconds,
``/wall/status`` for the freshness badge and the day's target, and ``/wall/trend`` for the response-time
trend. What it shows is defined once in ``stream.worker.wall.tiles`` (the Grafana wall reads the same list).

``stream.worker.wall.views.register(ctx)`` is the one call ``stream.worker.web.register_views`` makes.
"""

# The page's script and style under /wall/<name>, and their content types (stream.worker.web_access serves
# them without a token: code, no data).
ASSETS = {"wall.css": "text/css", "wall.js": "application/javascript"}
