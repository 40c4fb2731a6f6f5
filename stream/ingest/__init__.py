"""Getting events in over HTTP: the `kpi-monitor ingest` service.

``intake`` splits and checks request bodies, ``producer`` hands events to Kafka with bounded in-flight,
``hubspot`` and ``hubspot_crm`` turn HubSpot webhooks into contract events, ``http`` is the aiohttp app
and ``service`` runs it.
"""
