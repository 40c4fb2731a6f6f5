"""How every Kafka client of the project authenticates: one place, from the settings.

``KAFKA_SECURITY_PROTOCOL`` is PLAINTEXT (the local stack), SSL, SASL_PLAINTEXT or SASL_SSL. The Faust
worker gets ``faust`` credentials; our own aiokafka clients (health probe, lag, replay, simulator,
ingest) get the same settings through Faust's own translation, so the two can never disagree.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from stream.config import ConfigError, Settings


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """Verifies the broker against KAFKA_SSL_CAFILE (else the system CAs); a client cert when given."""
    try:
        context = ssl.create_default_context(cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None)
        if settings.kafka_ssl_certfile:
            context.load_cert_chain(
                str(settings.kafka_ssl_certfile),
                str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
                settings.kafka_ssl_key_password.get_secret_value() if settings.kafka_ssl_key_password else None,
            )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"KAFKA_SSL_*: cannot load the TLS files: {exc}") from None
    return context


def faust_credentials(settings: Settings) -> Any:
    """``broker_credentials`` for faust.App, or None for PLAINTEXT."""
    import faust

    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(ssl_context(settings))
    if not settings.kafka_sasl_username or settings.kafka_sasl_password is None:
        raise ConfigError(f"KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are required with KAFKA_SECURITY_PROTOCOL={protocol}")
    hide_sasl_payloads()
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=settings.kafka_sasl_password.get_secret_value(),
        mechanism=settings.kafka_sasl_mechanism,
        ssl_context=ssl_context(settings) if protocol == "SASL_SSL" else None,
    )


def aiokafka_security(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client (producer, consumer, admin, client)."""
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    credentials = faust_credentials(settings)
    return {} if credentials is None else credentials_to_aiokafka_auth(credentials)


class _SaslPayloadHidden(logging.Filter):
    """aiokafka logs every request and response at debug level, SASL ones with their payload: for PLAIN
    that is ``\\0user\\0password``. The record stays (it tells that authentication happened); the payload goes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(type(a).__name__.startswith("SaslAuthenticate") for a in record.args):
            record.args = tuple(f"{type(a).__name__}(<payload hidden>)"
                                if type(a).__name__.startswith("SaslAuthenticate") else a for a in record.args)
        return True


_SASL_FILTER = _SaslPayloadHidden()


def hide_sasl_payloads() -> None:
    """Installed whenever SASL credentials are built, so no client of ours can log a password (idempotent)."""
    logger = logging.getLogger("aiokafka.conn")
    if _SASL_FILTER not in logger.filters:
        logger.addFilter(_SASL_FILTER)
