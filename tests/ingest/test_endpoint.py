"""POST /ingest/events and /ingest/hubspot against the real broker: what is accepted arrives on the right
topic with the right key, every rejection reason is reported, auth, oversize and unreadable bodies."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

import orjson
import pytest
import yarl

from stream.events import REASONS
from stream.ingest.hubspot import signature_v3
from tests.conftest import BOOTSTRAP
from tests.ingest.conftest import HUBSPOT_SECRET, running_ingest
from tests.ingest.helpers import count_messages, read_topics, ts

pytestmark = pytest.mark.integration


def _ev(eid: str, etype: str, **fields) -> dict:
    return {"event_id": eid, "type": etype, "occurred_at": fields.pop("at", ts(-60)), **fields}


VALID = [
    _ev("v1", "lead.created", lead_id="L1", source="web"),
    _ev("v2", "lead.touched", lead_id="L1", rep_id="hana", channel="email"),
    _ev("v3", "call.logged", call_id="C1", lead_id="L1", rep_id="hana", direction="outbound", outcome="connected",
        duration_s=95.5),
    _ev("v4", "call.logged", call_id="C2", rep_id="hugo", direction="inbound", outcome="busy", duration_s=0),
    _ev("v5", "deal.created", deal_id="D1", rep_id="hana", amount="1200.50", stage="prospecting"),
    _ev("v6", "deal.won", deal_id="D1", amount=1300),
    _ev("v7", "spend.recorded", channel="paid_search", campaign="spring", amount="250.00"),
    _ev("v8", "lead.marketing_qualified", lead_id="L1"),
]
EXPECTED_ROUTE = {"v1": ("leads", "L1"), "v2": ("leads", "L1"), "v3": ("calls", "L1"), "v4": ("calls", "C2"),
                  "v5": ("deals", "D1"), "v6": ("deals", "D1"), "v7": ("spend", "paid_search"), "v8": ("leads", "L1")}

# one line per rejection reason the worker has (wrong_topic cannot happen: the topic follows the type)
INVALID_LINES = {
    "oversize": orjson.dumps(_ev("b0", "lead.created", lead_id="X0", source="x" * 70_000)),
    "not_json": b"{not json",
    "not_object": b"[1, 2]",
    "unknown_type": orjson.dumps(_ev("b3", "lead.exploded", lead_id="X3")),
    "missing_field": orjson.dumps(_ev("b4", "lead.touched", lead_id="X4", channel="email")),
    "invalid_field": orjson.dumps(_ev("b5", "lead.touched", lead_id="X5", rep_id=42, channel="email")),
    "bad_timestamp": orjson.dumps(_ev("b6", "lead.created", lead_id="X6", at="yesterday")),
    "future": orjson.dumps(_ev("b7", "lead.created", lead_id="X7", at=ts(3600))),
    "negative_amount": orjson.dumps(_ev("b8", "deal.created", deal_id="X8", rep_id="r", amount=-1, stage="prospecting")),
    "invalid_amount": orjson.dumps(_ev("b9", "deal.won", deal_id="X9", amount="Infinity")),
    "wrong_currency": orjson.dumps(_ev("b10", "deal.created", deal_id="X10", rep_id="r", amount=5, stage="prospecting",
                                       currency="EUR")),
    "unknown_stage": orjson.dumps(_ev("b11", "deal.created", deal_id="X11", rep_id="r", amount=5, stage="won")),
    "unknown_kind": orjson.dumps(_ev("b13", "deal.created", deal_id="X13", rep_id="r", amount=5, stage="proposal",
                                     kind="upsell")),
    "invalid_term": orjson.dumps(_ev("b14", "deal.won", deal_id="X14", term_months=0)),
    "too_late": orjson.dumps(_ev("b12", "lead.created", lead_id="X12", at=ts(-26 * 3600))),
    "invalid_period": orjson.dumps(_ev("b13", "forecast.submitted", rep_id="r", period="2026-13", amount=5)),
}


def _topics(prefix: str) -> list[str]:
    return [prefix + s for s in ("leads", "calls", "deals", "spend")]


async def test_valid_and_invalid_events_in_one_json_lines_batch(ingest):
    lines = [orjson.dumps(e) for e in VALID[:3]] + list(INVALID_LINES.values()) + [orjson.dumps(e) for e in VALID[3:]]
    answer = await ingest.post("/ingest/events", b"\n".join(lines) + b"\n", content_type="application/x-ndjson")
    assert answer.status == 202, answer.doc
    assert (answer.doc["accepted"], answer.doc["rejected"]) == (len(VALID), len(INVALID_LINES))
    rejected = [r for r in answer.doc["results"] if r["status"] == "rejected"]
    assert [r["reason"] for r in rejected] == list(INVALID_LINES)
    assert set(INVALID_LINES) == set(REASONS) - {"wrong_topic", "entity_full"}  # entity_full: the worker's verdict on an entity
    assert all(r["detail"] for r in rejected)
    assert [r["line"] for r in answer.doc["results"]] == list(range(1, len(lines) + 1))

    records = await read_topics(BOOTSTRAP, _topics(ingest.prefix), len(VALID))
    got = {orjson.loads(r.value)["event_id"]: (r.topic, r.key.decode(), r.partition, r.offset) for r in records}
    assert set(got) == {e["event_id"] for e in VALID} and len(records) == len(VALID)  # nothing invalid produced
    for eid, (suffix, key) in EXPECTED_ROUTE.items():
        assert got[eid][:2] == (ingest.prefix + suffix, key), eid
    for result in answer.doc["results"]:
        if result["status"] == "accepted":  # the answer says where each event went
            assert got[result["event_id"]] == (result["topic"], result["key"], result["partition"], result["offset"])
    by_id = {orjson.loads(r.value)["event_id"]: r.value for r in records}
    assert by_id["v1"] == lines[0]  # JSON Lines are produced byte for byte


async def test_single_object_and_json_array(ingest):
    one = await ingest.post("/ingest/events", VALID[0])
    assert one.status == 202 and one.doc["accepted"] == 1
    array = await ingest.post("/ingest/events", [VALID[4], VALID[5], 17])
    assert array.status == 202 and (array.doc["accepted"], array.doc["rejected"]) == (2, 1)
    assert array.doc["results"][2] == {"index": 2, "status": "rejected", "reason": "not_object",
                                       "detail": array.doc["results"][2]["detail"]}
    records = await read_topics(BOOTSTRAP, _topics(ingest.prefix), 3)
    assert sorted((r.topic.rsplit(".", 1)[1], r.key.decode()) for r in records) == [("deals", "D1"), ("deals", "D1"),
                                                                                    ("leads", "L1")]


async def test_array_elements_reach_kafka_byte_for_byte(ingest):
    # Decimal amounts a float cannot hold, odd spacing and key order: what Kafka gets is what was sent.
    sent = [b'{"event_id": "x1", "type": "deal.created", "occurred_at": "%s", "deal_id": "DX", "rep_id": "hana",'
            b'  "stage": "proposal", "amount": 1234567890123.123456}' % ts(-60).encode(),
            b'{ "amount": 9999999999999999.99, "deal_id": "DX", "type": "deal.won", "event_id": "x2",'
            b' "occurred_at": "%s" }' % ts(-30).encode()]
    answer = await ingest.post("/ingest/events", b"[\n  " + b",\n  ".join(sent) + b"\n]")
    assert answer.status == 202 and answer.doc["accepted"] == 2, answer.doc
    records = await read_topics(BOOTSTRAP, _topics(ingest.prefix), 2)
    assert sorted(r.value for r in records) == sorted(sent)


async def test_auth(ingest):
    for token in (None, "wrong-token"):
        answer = await ingest.post("/ingest/events", VALID[0], token=token)
        assert answer.status == 401 and answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert "KPI_INGEST_TOKEN" in answer.doc["detail"]
    answer = await ingest.post("/ingest/events", VALID[0], token=None, headers={"Authorization": "Basic abc"})
    assert answer.status == 401
    assert await count_messages(BOOTSTRAP, _topics(ingest.prefix)) == 0


async def test_oversize_and_unreadable_bodies(ingest):
    limit = ingest.service.settings.kpi_ingest_max_body_bytes
    big = orjson.dumps([VALID[0]] * (limit // len(orjson.dumps(VALID[0])) + 10))
    assert len(big) > limit
    answer = await ingest.post("/ingest/events", big)
    assert answer.status == 413 and answer.doc["error"] == "too_large" and "KPI_INGEST_MAX_BODY_BYTES" in answer.doc["detail"]

    async def chunks():  # no Content-Length: the limit holds while reading
        for start in range(0, len(big), 65536):
            yield big[start:start + 65536]

    async with ingest.session.post(ingest.url("/ingest/events"), data=chunks(),
                                   headers={"Authorization": "Bearer ingest-test-token"}) as resp:
        assert resp.status == 413
    for body in (b"", b"42", b"{broken", b'"just a string"'):
        answer = await ingest.post("/ingest/events", body)
        assert answer.status == 400 and answer.doc["error"] == "unreadable_body", body
    assert await count_messages(BOOTSTRAP, _topics(ingest.prefix)) == 0


def _signed(body: bytes, url: str, secret: str = HUBSPOT_SECRET, age_ms: int = 0) -> dict:
    stamp = str(int(time.time() * 1000) - age_ms)
    return {"X-HubSpot-Signature-v3": signature_v3(secret, "POST", url, body, stamp),
            "X-HubSpot-Request-Timestamp": stamp, "X-HubSpot-Signature-Version": "v3"}


def _note(event_id: int, subscription: str, object_id: int, **extra) -> dict:
    return {"eventId": event_id, "subscriptionId": 9, "portalId": 62515, "appId": 4,
            "occurredAt": int(time.time() * 1000) - 30_000, "subscriptionType": subscription, "attemptNumber": 0,
            "objectId": object_id, "changeSource": "CRM_UI", **extra}


async def test_hubspot_webhook_to_kafka(ingest, hubspot_crm):
    hubspot_crm.add("contacts", 11, hubspot_owner_id="31", hs_analytics_source="PAID_SEARCH")
    hubspot_crm.add("deals", 21, associations={"contacts": ["11"]}, amount="5000", dealstage="qualifiedtobuy",
                    hubspot_owner_id="31")
    hubspot_crm.add("calls", 41, associations={"contacts": ["11"]}, hs_call_direction="INBOUND",
                    hs_call_status="COMPLETED", hs_call_duration="61000", hubspot_owner_id="31")
    notes = [_note(1, "contact.creation", 11), _note(2, "deal.creation", 21),
             _note(3, "deal.propertyChange", 21, propertyName="dealstage", propertyValue="closedwon"),
             _note(4, "object.creation", 41, objectTypeId="0-48"), _note(5, "company.creation", 3),
             _note(6, "deal.propertyChange", 21, propertyName="dealstage", propertyValue="unknownstage")]
    body = orjson.dumps(notes)
    url = ingest.url("/ingest/hubspot")
    answer = await ingest.post("/ingest/hubspot", body, token=None, headers=_signed(body, url))
    assert answer.status == 202, answer.doc
    assert [r["status"] for r in answer.doc["results"]] == ["accepted"] * 4 + ["ignored", "rejected"]
    records = await read_topics(BOOTSTRAP, _topics(ingest.prefix), 4)
    got = sorted((r.topic.rsplit(".", 1)[1], r.key.decode(), orjson.loads(r.value)["type"]) for r in records)
    assert got == [("calls", "hs-contact-11", "call.logged"), ("deals", "hs-deal-21", "deal.created"),
                   ("deals", "hs-deal-21", "deal.won"), ("leads", "hs-contact-11", "lead.created")]
    won = next(orjson.loads(r.value) for r in records if b"deal.won" in r.value)
    assert won["amount"] == "5000" and won["event_id"] == "hs-62515-3-dealstage"

    # HubSpot retries the same batch: the same event ids again (the worker applies each once)
    again = await ingest.post("/ingest/hubspot", body, token=None, headers=_signed(body, url))
    assert again.status == 202
    ids = lambda doc: [e["event_id"] for r in doc["results"] if r["status"] == "accepted" for e in r["events"]]
    assert ids(again.doc) == ids(answer.doc)


async def test_hubspot_signature_is_enforced(ingest, hubspot_crm):
    hubspot_crm.add("contacts", 11, hubspot_owner_id="31")
    body = orjson.dumps([_note(1, "contact.creation", 11)])
    url = ingest.url("/ingest/hubspot")
    tampered = body.replace(b'"objectId":11', b'"objectId":12')
    cases = {
        "tampered": (tampered, _signed(body, url)),
        "stale": (body, _signed(body, url, age_ms=6 * 60 * 1000)),
        "wrong secret": (body, _signed(body, url, secret="not-the-secret")),
        "unsigned": (body, {}),
        "bearer token instead": (body, {"Authorization": "Bearer ingest-test-token"}),
    }
    for name, (data, headers) in cases.items():
        answer = await ingest.post("/ingest/hubspot", data, token=None, headers=headers)
        assert answer.status == 401 and answer.doc["error"] == "bad_signature", name
    assert await count_messages(BOOTSTRAP, _topics(ingest.prefix)) == 0
    assert hubspot_crm.requests == []  # refused before any enrichment


async def test_hubspot_signs_the_url_as_sent_with_only_its_listed_escapes_decoded(ingest, hubspot_crm):
    hubspot_crm.add("contacts", 11, hubspot_owner_id="31")
    body = orjson.dumps([_note(1, "contact.creation", 11)])
    path = "/ingest/hubspot?portal=Acme%20Inc&team=a%2Bb&tilde=%7E&ratio=1%3A2"
    # Signed as HubSpot does: %3A decoded (it is on HubSpot's list), %20, %2B and %7E as sent.
    signed_url = ingest.url("/ingest/hubspot") + "?portal=Acme%20Inc&team=a%2Bb&tilde=%7E&ratio=1:2"
    async with ingest.session.post(yarl.URL(ingest.url("/ingest/hubspot")[:-len("/ingest/hubspot")] + path, encoded=True),
                                   data=body, headers={"Content-Type": "application/json",
                                                       **_signed(body, signed_url)}) as resp:
        assert resp.status == 202, await resp.text()
        assert (await resp.json())["accepted"] == 1


async def test_one_bad_hubspot_notification_gets_its_own_verdict(ingest, hubspot_crm):
    hubspot_crm.add("contacts", 11, hubspot_owner_id="31")
    hubspot_crm.add("calls", 41, associations={"contacts": ["11"]}, hs_call_status="COMPLETED",
                    hs_call_duration="1000", hubspot_owner_id="31", hs_timestamp=str(10**17))
    notes = [_note(1, "contact.creation", 11), {**_note(2, "contact.creation", 12), "occurredAt": 10**17},
             _note(3, "object.creation", 41, objectTypeId="0-48"), {**_note(4, "contact.creation", 13), "objectId": [1]},
             "not a notification", _note(5, "contact.creation", 11)]
    body = orjson.dumps(notes)
    answer = await ingest.post("/ingest/hubspot", body, token=None, headers=_signed(body, ingest.url("/ingest/hubspot")))
    assert answer.status == 202, answer.doc
    assert [(r["status"], r.get("reason")) for r in answer.doc["results"]] == [
        ("accepted", None), ("rejected", "invalid_field"), ("accepted", None), ("rejected", "invalid_field"),
        ("rejected", "not_object"), ("accepted", None)]
    assert "occurredAt" in answer.doc["results"][1]["detail"]
    records = await read_topics(BOOTSTRAP, _topics(ingest.prefix), 3)
    assert sorted(orjson.loads(r.value)["event_id"] for r in records) == ["hs-62515-1", "hs-62515-3", "hs-62515-5"]
    call = next(orjson.loads(r.value) for r in records if b"call.logged" in r.value)
    # hs_timestamp 10**17 ms is no calendar time: the call keeps the notification's own occurredAt.
    fallback = datetime.fromtimestamp(notes[2]["occurredAt"] / 1000, timezone.utc)
    assert call["occurred_at"] == fallback.isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def test_hubspot_crm_outage_answers_503_and_produces_nothing(ingest, hubspot_crm):
    hubspot_crm.fail_with = 429
    body = orjson.dumps([_note(1, "contact.creation", 11)])
    answer = await ingest.post("/ingest/hubspot", body, token=None, headers=_signed(body, ingest.url("/ingest/hubspot")))
    assert answer.status == 503 and answer.headers["Retry-After"] == "5"
    assert answer.doc["error"] == "enrichment_unavailable"
    assert await count_messages(BOOTSTRAP, _topics(ingest.prefix)) == 0


async def test_in_flight_is_bounded(deployment):
    """More events waiting for Kafka's acknowledgement than KPI_INGEST_MAX_IN_FLIGHT: 503 + Retry-After;
    a single request that could never fit: 413. What was accepted is exactly what is on the topics."""
    async with running_ingest(deployment.prefix, kpi_ingest_max_in_flight=10) as ingest:
        too_many = await ingest.post("/ingest/events", [_ev(f"t{i}", "lead.created", lead_id=f"T{i}") for i in range(11)])
        assert too_many.status == 413 and too_many.doc["error"] == "too_many_events"

        def batch(n: int) -> list:
            return [_ev(f"c{n}-{i}", "lead.created", lead_id=f"C{n}-{i}") for i in range(8)]

        answers = await asyncio.gather(*(ingest.post("/ingest/events", batch(n)) for n in range(20)))
        busy = [a for a in answers if a.status == 503]
        assert busy and all(a.doc["error"] == "at_capacity" and a.headers["Retry-After"] == "1" for a in busy)
        accepted = sum(a.doc["accepted"] for a in answers if a.status == 202)
        assert accepted == 8 * (len(answers) - len(busy)) > 0
        assert ingest.service.producer.in_flight == 0
    assert await count_messages(BOOTSTRAP, _topics(deployment.prefix)) == accepted
