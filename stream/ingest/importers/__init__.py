"""CSV exports → contract-event JSON Lines (``kpi-monitor import …``), written in time order for replay."""
