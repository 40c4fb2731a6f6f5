"""``kpi-monitor ingest``: build the ingest service from the settings and serve it until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from contextlib import asynccontextmanager
from typing import AsyncIterator

from aiohttp import web

from stream.access import is_loopback
from stream.config import ConfigError, Settings
from stream.ingest.http import IngestService
from stream.ingest.hubspot import HubSpotMapper, parse_stage_map
from stream.ingest.hubspot_crm import HubSpotCrm
from stream.ingest.producer import IngestProducer, new_aiokafka_producer
from stream.kafka_security import aiokafka_security

log = logging.getLogger("kpi_monitor.ingest")
TOPIC_SUFFIXES = ("leads", "calls", "deals", "spend", "subscriptions", "forecasts")


def check_exposure(settings: Settings) -> None:
    """An ingest endpoint reachable from other machines must not be open to anyone."""
    if not is_loopback(settings.kpi_ingest_host) and settings.kpi_ingest_token is None:
        raise ConfigError(f"KPI_INGEST_TOKEN: required when KPI_INGEST_HOST ({settings.kpi_ingest_host}) "
                          "is not a loopback address")


@asynccontextmanager
async def ingest_service(settings: Settings) -> AsyncIterator[IngestService]:
    """The service with its producer started (connecting in the background) and its CRM client; closes both."""
    try:
        stage_map = parse_stage_map(settings.hubspot_stage_map, settings.kpi_stages)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    security = aiokafka_security(settings)
    producer = IngestProducer(settings.kafka_bootstrap_servers, [settings.topic(s) for s in TOPIC_SUFFIXES],
                              max_in_flight=settings.kpi_ingest_max_in_flight,
                              produce_timeout_s=settings.kpi_ingest_produce_timeout_seconds,
                              factory=lambda bootstrap: new_aiokafka_producer(bootstrap, **security))
    crm = None
    if settings.hubspot_access_token is not None:
        crm = HubSpotCrm(settings.hubspot_api_url, settings.hubspot_access_token.get_secret_value(),
                         cache_seconds=settings.hubspot_cache_seconds)
    await producer.start()
    try:
        yield IngestService(settings, producer, HubSpotMapper(crm, stage_map, settings.kpi_stages))
    finally:
        await producer.stop()
        if crm is not None:
            await crm.close()


async def serve(settings: Settings, echo=lambda line: print(line, file=sys.stderr, flush=True)) -> None:
    check_exposure(settings)
    async with ingest_service(settings) as service:
        runner = web.AppRunner(service.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, settings.kpi_ingest_host, settings.kpi_ingest_port)
        await site.start()
        auth = "bearer token" if settings.kpi_ingest_token is not None else "open (no KPI_INGEST_TOKEN; loopback only)"
        hubspot = ("signature v3" if settings.hubspot_client_secret else "bearer token / open") + (
            ", CRM enrichment on" if settings.hubspot_access_token else ", no CRM enrichment (HUBSPOT_ACCESS_TOKEN unset)")
        echo(f"ingest on {settings.ingest_url} (POST /ingest/events, /ingest/hubspot; brokers="
             f"{settings.kafka_bootstrap_servers}, topics={settings.kpi_topic_prefix}*, auth: {auth}; hubspot: {hubspot})")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            echo("ingest: stopping (flushing what is in flight)")
            await runner.cleanup()


def ingest_main(settings: Settings) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # its reconnect errors repeat our one-line state
    try:
        asyncio.run(serve(settings))
    except ConfigError as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the port is taken
        print(f"ingest: cannot listen on {settings.ingest_url}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
