"""The Faust worker: the app and its agents, durability, the HTTP views, the exporters, the wall page."""
