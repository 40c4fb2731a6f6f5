"""HubSpot: signature v3, the CRM v3 client against a local server with HubSpot's response shapes, and the
webhook → contract event mapping through that client."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import orjson
import pytest
from aiohttp.test_utils import TestServer

from stream.events import EventValidator
from stream.ingest.hubspot import (EnrichmentError, HubSpotMapper, SignatureError, Skip, map_notifications,
                                   parse_stage_map, signature_v3, verify_signature_v3)
from stream.ingest.hubspot_crm import HubSpotCrm
from stream.config import DEFAULT_STAGES, Settings
from tests.ingest.helpers import FakeHubSpotCrm

SECRET = "hs-client-secret"
URI = "https://ingest.example.com/ingest/hubspot"
BODY = b'[{"eventId":100,"subscriptionType":"contact.creation","objectId":1,"occurredAt":1700000000000,"portalId":62515}]'


def _verify(now_ms: int, *, body: bytes = BODY, signature: str | None = None, timestamp: str | None = None,
            uri: str = URI, secret: str = SECRET) -> None:
    timestamp = timestamp if timestamp is not None else str(now_ms - 1000)
    signature = signature if signature is not None else signature_v3(SECRET, "POST", URI, BODY, timestamp)
    verify_signature_v3(secret, method="POST", uri=uri, body=body, signature=signature, timestamp=timestamp,
                        now_ms=now_ms)


def test_signature_is_hubspots_formula():
    # base64(HMAC-SHA256(secret, method + uri + body + timestamp)), computed independently here
    expected = base64.b64encode(hmac.new(SECRET.encode(), b"POST" + URI.encode() + BODY + b"1700000000000",
                                         hashlib.sha256).digest()).decode()
    assert signature_v3(SECRET, "POST", URI, BODY, "1700000000000") == expected


def test_valid_signature_passes():
    _verify(int(time.time() * 1000))


def test_url_encoded_characters_in_the_uri_are_decoded_first():
    now = int(time.time() * 1000)
    ts = str(now)
    signed = signature_v3(SECRET, "POST", "https://x.example/hook?portal=a:b", BODY, ts)
    verify_signature_v3(SECRET, method="POST", uri="https://x.example/hook?portal=a%3Ab", body=BODY,
                        signature=signed, timestamp=ts, now_ms=now)


# HubSpot's table of the characters it decodes before signing; every other %xx stays as it was sent.
HUBSPOT_DECODED = {"%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$", "%27": "'", "%28": "(",
                   "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";"}


def test_only_the_characters_hubspot_lists_are_decoded_before_checking():
    now = int(time.time() * 1000)
    stamp = str(now)
    encoded = "".join(HUBSPOT_DECODED)
    posted = f"https://ingest.example.com/ingest/hubspot?name=John%20Doe&list={encoded}&pct=100%25&plus=a%2Bb"
    # What HubSpot signs, written out by hand from its documentation: the listed ones decoded, no other.
    signed = ("https://ingest.example.com/ingest/hubspot?name=John%20Doe&list=:/?@!$'()*,;&pct=100%25&plus=a%2Bb")
    assert signed == posted.replace(encoded, "".join(HUBSPOT_DECODED.values()))
    signature = base64.b64encode(hmac.new(SECRET.encode(), b"POST" + signed.encode() + BODY + stamp.encode(),
                                          hashlib.sha256).digest()).decode()
    verify_signature_v3(SECRET, method="POST", uri=posted, body=BODY, signature=signature, timestamp=stamp, now_ms=now)
    lower = posted.replace("%3A", "%3a").replace("%2F", "%2f")  # percent-encoding is case-insensitive
    verify_signature_v3(SECRET, method="POST", uri=lower, body=BODY, signature=signature, timestamp=stamp, now_ms=now)
    # Decoding everything (%20 -> " ", %25 -> "%", %2B -> "+") is not what HubSpot signed.
    with pytest.raises(SignatureError):
        verify_signature_v3(SECRET, method="POST", uri=posted, body=BODY, now_ms=now, timestamp=stamp,
                            signature=signature_v3(SECRET, "POST", signed.replace("%20", " "), BODY, stamp))


@pytest.mark.parametrize("change, message", [
    ({"body": BODY.replace(b"62515", b"62516")}, "does not match"),  # tampered body
    ({"uri": URI + "?x=1"}, "does not match"),  # another URL
    ({"secret": "other-secret"}, "does not match"),
    ({"signature": "AAAA"}, "does not match"),
    ({"signature": ""}, "missing"),
    ({"timestamp": ""}, "missing"),
    ({"timestamp": "yesterday"}, "not a number"),
])
def test_tampered_or_incomplete_requests_fail(change, message):
    with pytest.raises(SignatureError, match=message):
        _verify(int(time.time() * 1000), **change)


def test_stale_timestamp_fails_even_with_a_correct_signature():
    now = int(time.time() * 1000)
    stale = str(now - 5 * 60 * 1000 - 1)
    with pytest.raises(SignatureError, match="300 s"):
        _verify(now, timestamp=stale, signature=signature_v3(SECRET, "POST", URI, BODY, stale))
    edge = str(now - 5 * 60 * 1000)  # exactly 5 minutes: still accepted
    _verify(now, timestamp=edge, signature=signature_v3(SECRET, "POST", URI, BODY, edge))


def test_stage_map_default_and_errors():
    mapping = parse_stage_map(Settings().hubspot_stage_map, DEFAULT_STAGES)
    assert mapping["appointmentscheduled"] == "prospecting" and mapping["closedwon"] == "won"
    with pytest.raises(ValueError, match="HUBSPOT_STAGE_MAP"):
        parse_stage_map("closedwon=victory", DEFAULT_STAGES)
    with pytest.raises(ValueError, match="HUBSPOT_STAGE_MAP"):
        parse_stage_map("closedwon", DEFAULT_STAGES)


# ---------------------------------------------------------------- CRM client and mapping

@pytest.fixture
async def crm():
    fake = FakeHubSpotCrm()
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    now = [0.0]
    client = HubSpotCrm(str(server.make_url("")), fake.token, cache_seconds=60, clock=lambda: now[0])
    yield fake, client, now
    await client.close()
    await server.close()


async def test_client_reads_documented_shapes_and_caches(crm):
    fake, client, now = crm
    fake.add("deals", 7, associations={"contacts": ["41", "42"]}, amount="1200.50", dealstage="qualifiedtobuy",
             hubspot_owner_id="31")
    deal = await client.get("deals", "7", ("amount", "dealstage", "hubspot_owner_id", "closedate"), ("contacts",))
    assert deal.id == "7" and deal.prop("amount") == "1200.50" and deal.prop("closedate") is None
    assert deal.associations == {"contacts": ["41", "42"]}
    assert fake.requests[0].query["properties"] == "amount,dealstage,hubspot_owner_id,closedate"
    assert fake.requests[0].headers["Authorization"] == "Bearer pat-test"
    await client.get("deals", "7", ("amount", "dealstage", "hubspot_owner_id", "closedate"), ("contacts",))
    assert client.requests == 1  # cached
    await client.get("deals", "7", ("amount", "dealstage", "hubspot_owner_id", "closedate"), ("contacts",), fresh=True)
    assert client.requests == 2  # fresh bypasses the cache
    now[0] = 61.0
    await client.get("deals", "7", ("amount", "dealstage", "hubspot_owner_id", "closedate"), ("contacts",))
    assert client.requests == 3  # expired
    assert await client.get("deals", "404", ("amount",)) is None


@pytest.mark.parametrize("status, words", [(429, "429 .*rate limited"), (500, "500"), (401, "HUBSPOT_ACCESS_TOKEN")])
async def test_client_errors_are_retryable_enrichment_errors(crm, status, words):
    fake, client, _ = crm
    if status == 401:
        client._headers["Authorization"] = "Bearer wrong"
    else:
        fake.fail_with = status
    with pytest.raises(EnrichmentError, match=words):
        await client.get("contacts", "1", ("hubspot_owner_id",))


def _note(event_id: int, subscription: str, object_id: int, **extra) -> dict:
    return {"eventId": event_id, "subscriptionId": 9, "portalId": 62515, "appId": 4, "occurredAt": 1763888100000,
            "subscriptionType": subscription, "attemptNumber": 0, "objectId": object_id, "changeSource": "CRM_UI",
            **extra}


async def test_mapping_of_every_supported_notification(crm):
    fake, client, _ = crm
    fake.add("contacts", 11, hubspot_owner_id="31", hs_analytics_source="ORGANIC_SEARCH")
    fake.add("deals", 21, associations={"contacts": ["11"]}, amount="5000", dealstage="appointmentscheduled",
             hubspot_owner_id="31")
    fake.add("deals", 22, amount="750.25", dealstage="closedwon", hubspot_owner_id=None)
    fake.add("calls", 41, associations={"contacts": ["11"]}, hs_call_direction="OUTBOUND", hs_call_status="COMPLETED",
             hs_call_disposition="b2cf5968-551e-4856-9783-52b3da59a7d0", hs_call_duration="95500",
             hubspot_owner_id="31", hs_timestamp="2025-11-23T08:55:00.000Z")
    mapper = HubSpotMapper(client, parse_stage_map(Settings().hubspot_stage_map, DEFAULT_STAGES), DEFAULT_STAGES)
    notes = [
        _note(1, "contact.creation", 11),
        _note(2, "contact.propertyChange", 11, propertyName="hubspot_owner_id", propertyValue="32"),
        _note(3, "deal.creation", 21),
        _note(4, "deal.propertyChange", 21, propertyName="dealstage", propertyValue="contractsent"),
        _note(5, "deal.propertyChange", 21, propertyName="amount", propertyValue="5500"),
        _note(6, "deal.propertyChange", 22, propertyName="dealstage", propertyValue="closedwon"),
        _note(7, "deal.propertyChange", 21, propertyName="dealstage", propertyValue="closedlost"),
        _note(8, "object.creation", 41, objectTypeId="0-48"),
        _note(9, "deal.creation", 22),
        _note(10, "company.creation", 5),
        _note(11, "deal.propertyChange", 21, propertyName="dealstage", propertyValue="mycustomstage"),
        _note(12, "deal.creation", 999),
        {"eventId": 13, "subscriptionType": "contact.creation"},
    ]
    out = await map_notifications(mapper, notes)
    at = "2025-11-23T08:55:00.000Z"
    assert out[0] == [{"event_id": "hs-62515-1", "type": "lead.created", "occurred_at": at, "lead_id": "hs-contact-11",
                       "rep_id": "hs-owner-31", "source": "organic_search"}]
    assert out[1] == [{"event_id": "hs-62515-2-hubspot_owner_id", "type": "lead.assigned", "occurred_at": at,
                       "lead_id": "hs-contact-11", "rep_id": "hs-owner-32"}]
    assert out[2] == [{"event_id": "hs-62515-3", "type": "deal.created", "occurred_at": at, "deal_id": "hs-deal-21",
                       "rep_id": "hs-owner-31", "amount": "5000", "stage": "prospecting", "lead_id": "hs-contact-11"}]
    assert out[3] == [{"event_id": "hs-62515-4-dealstage", "type": "deal.stage_changed", "occurred_at": at,
                       "deal_id": "hs-deal-21", "to_stage": "negotiation"}]
    # amount change: the deal's current HubSpot stage (appointmentscheduled) with the new amount
    assert out[4] == [{"event_id": "hs-62515-5-amount", "type": "deal.stage_changed", "occurred_at": at,
                       "deal_id": "hs-deal-21", "to_stage": "prospecting", "amount": "5500"}]
    assert out[5] == [{"event_id": "hs-62515-6-dealstage", "type": "deal.won", "occurred_at": at,
                       "deal_id": "hs-deal-22", "amount": "750.25"}]
    assert out[6] == [{"event_id": "hs-62515-7-dealstage", "type": "deal.lost", "occurred_at": at, "deal_id": "hs-deal-21"}]
    assert out[7] == [{"event_id": "hs-62515-8", "type": "call.logged", "occurred_at": "2025-11-23T08:55:00Z",
                       "call_id": "hs-call-41", "rep_id": "hs-owner-31", "direction": "outbound",
                       "outcome": "voicemail", "duration_s": 95.5, "lead_id": "hs-contact-11"}]
    # created already won, without an owner: created in the first stage, then won
    assert [e["type"] for e in out[8]] == ["deal.created", "deal.won"]
    assert out[8][0]["rep_id"] == "unassigned" and out[8][0]["stage"] == "prospecting"
    assert out[8][1]["event_id"] == "hs-62515-9-won" and out[8][1]["amount"] == "750.25"
    skips = {i: (o.status, o.reason) for i, o in enumerate(out) if isinstance(o, Skip)}
    assert skips == {9: ("ignored", "unsupported_subscription"), 10: ("rejected", "unmapped_stage"),
                     11: ("rejected", "not_found"), 12: ("rejected", "missing_field")}
    validator = EventValidator()
    for events in out:
        if isinstance(events, list):
            for event in events:
                validator.validate(orjson.dumps(event))  # every mapped event is contract-valid


async def test_mapping_without_crm_access(crm):
    mapper = HubSpotMapper(None, parse_stage_map(Settings().hubspot_stage_map, DEFAULT_STAGES), DEFAULT_STAGES)
    lead, deal, won = await map_notifications(mapper, [
        _note(1, "contact.creation", 11), _note(3, "deal.creation", 21),
        _note(6, "deal.propertyChange", 22, propertyName="dealstage", propertyValue="closedwon")])
    assert lead[0]["type"] == "lead.created" and "rep_id" not in lead[0]
    assert (deal.status, deal.reason) == ("rejected", "enrichment_unavailable")
    assert won[0]["type"] == "deal.won" and "amount" not in won[0]  # the last known amount counts


async def test_a_crm_outage_fails_the_whole_batch(crm):
    fake, client, _ = crm
    fake.fail_with = 503
    mapper = HubSpotMapper(client, parse_stage_map(Settings().hubspot_stage_map, DEFAULT_STAGES), DEFAULT_STAGES)
    with pytest.raises(EnrichmentError):
        await map_notifications(mapper, [_note(1, "contact.creation", 11), _note(3, "deal.creation", 21)])
