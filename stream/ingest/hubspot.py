"""HubSpot webhooks → contract events: v3 signature check, id mapping and the enrichment interface.

HubSpot posts batches of notifications (``[{eventId, subscriptionId, portalId, appId, occurredAt,
subscriptionType, attemptNumber, objectId, propertyName?, propertyValue?, changeSource, …}]``), in the
legacy form (``deal.propertyChange``) or the generic one (``object.propertyChange`` with ``objectTypeId``
``0-1`` contact, ``0-3`` deal, ``0-48`` call). They carry ids, not owners or amounts, so what is missing
comes from an ``Enricher`` (``hubspot_crm.HubSpotCrm`` reads HubSpot's CRM v3 objects API).

Mapping (docs/ingest.md has the full table and the assumptions):

- ``contact.creation`` → ``lead.created`` (owner and ``hs_analytics_source`` from the contact)
- contact ``hubspot_owner_id`` change → ``lead.assigned``
- ``deal.creation`` → ``deal.created`` (owner, amount, stage, first associated contact); a deal created
  already closed also gets its ``deal.won``/``deal.lost``
- deal ``dealstage`` change → ``deal.stage_changed``, or ``deal.won`` (with the deal's current amount) /
  ``deal.lost`` for stages mapped to ``won``/``lost`` (``HUBSPOT_STAGE_MAP``)
- deal ``amount`` change → ``deal.stage_changed`` to the deal's current stage with the new amount
- call creation → ``call.logged`` (direction, outcome from the disposition or status, duration, owner,
  first associated contact)

Ids are deterministic, so a retried webhook produces the same ``event_id`` and the worker applies it once:
``event_id = hs-<portalId>-<eventId>[-<propertyName>]``, ``lead_id = hs-contact-<id>``,
``deal_id = hs-deal-<id>``, ``call_id = hs-call-<id>``, ``rep_id = hs-owner-<hubspot_owner_id>``
(``unassigned`` when a deal or call has no owner).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol, Sequence, Union

import msgspec

from stream.ingest.json_split import NotJson, array_elements, check_one_value

log = logging.getLogger("kpi_monitor.ingest")

SIGNATURE_MAX_AGE_MS = 5 * 60 * 1000
# The only percent-escapes HubSpot decodes in the URL before signing it (its "validating requests" guide);
# any other, such as %20 or %25, is signed as sent.
SIGNED_URL_DECODING = {"%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$", "%27": "'",
                       "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";"}
_SIGNED_URL_ESCAPE = re.compile("|".join(SIGNED_URL_DECODING), re.IGNORECASE)
UNASSIGNED = "unassigned"
OUTCOMES = ("won", "lost")
OBJECT_TYPE_IDS = {"0-1": "contact", "0-3": "deal", "0-48": "call"}

# HubSpot's default call dispositions (hs_call_disposition GUIDs) and call statuses.
DISPOSITION_OUTCOMES = {
    "f240bbac-87c9-4f6e-bf70-924b57d47db7": "connected",  # Connected
    "a4c4c377-d246-4b32-a13b-75a56a4cd0ff": "connected",  # Left live message: a person answered
    "b2cf5968-551e-4856-9783-52b3da59a7d0": "voicemail",  # Left voicemail
    "73a0d17f-1163-4015-bdd5-ec830791da20": "no_answer",  # No answer
    "9d9162e7-6cf3-4944-bf63-4dff82258764": "busy",  # Busy
    "17b47fee-58de-441e-a44c-c6300d46f273": "failed",  # Wrong number
}
STATUS_OUTCOMES = {"COMPLETED": "connected", "BUSY": "busy", "NO_ANSWER": "no_answer", "FAILED": "failed",
                   "CANCELED": "failed"}
CONTACT_PROPERTIES = ("hubspot_owner_id", "hs_analytics_source")
DEAL_PROPERTIES = ("amount", "dealstage", "hubspot_owner_id")
CALL_PROPERTIES = ("hs_call_direction", "hs_call_disposition", "hs_call_status", "hs_call_duration",
                   "hubspot_owner_id", "hs_timestamp")


# ---------------------------------------------------------------- signature v3

class SignatureError(ValueError):
    """The request is not provably from HubSpot (HTTP 401); the message says why."""


def signature_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """base64(HMAC-SHA256(secret, method + uri + body + timestamp)), as HubSpot computes it."""
    message = method.encode() + uri.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def signed_url(uri: str) -> str:
    """The URL as HubSpot signs it: SIGNED_URL_DECODING applied, every other character left as it is."""
    return _SIGNED_URL_ESCAPE.sub(lambda m: SIGNED_URL_DECODING[m.group().upper()], uri)


def verify_signature_v3(secret: str, *, method: str, uri: str, body: bytes, signature: str | None,
                        timestamp: str | None, now_ms: int) -> None:
    """Raise SignatureError unless the signature matches and the timestamp is within 5 minutes of now.

    ``uri`` is the full URL HubSpot posted to; the escapes HubSpot lists are decoded first, as it does.
    """
    if not signature or not timestamp:
        raise SignatureError("missing X-HubSpot-Signature-v3 or X-HubSpot-Request-Timestamp")
    try:
        sent_ms = int(timestamp)
    except ValueError:
        raise SignatureError("X-HubSpot-Request-Timestamp is not a number of milliseconds") from None
    # Older than 5 minutes: a replay. Far ahead: a wrong clock or a forged header; both are refused.
    if abs(now_ms - sent_ms) > SIGNATURE_MAX_AGE_MS:
        raise SignatureError(f"X-HubSpot-Request-Timestamp is {abs(now_ms - sent_ms) / 1000:.0f} s from now "
                             f"(the limit is {SIGNATURE_MAX_AGE_MS // 1000} s)")
    expected = signature_v3(secret, method.upper(), signed_url(uri), body, timestamp)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise SignatureError("X-HubSpot-Signature-v3 does not match the request")


# ---------------------------------------------------------------- enrichment interface

@dataclass(frozen=True)
class CrmObject:
    id: str
    properties: dict[str, str | None]
    associations: dict[str, list[str]] = field(default_factory=dict)  # e.g. {"contacts": ["601"]}

    def prop(self, name: str) -> str | None:
        value = self.properties.get(name)
        return value if value not in (None, "") else None


class EnrichmentError(Exception):
    """The CRM could not answer now (network, 5xx, rate limit, rejected token): retry the webhook later."""


class Enricher(Protocol):
    async def get(self, object_type: str, object_id: str, properties: Sequence[str],
                  associations: Sequence[str] = (), *, fresh: bool = False) -> CrmObject | None:
        """The object (``object_type`` is ``contacts``, ``deals`` or ``calls``), or None when it does not exist.

        ``fresh`` skips the cache (for properties that change: a deal's stage and amount).
        """
        ...


# ---------------------------------------------------------------- reading a batch

class Skip(Exception):
    """A notification that maps to no event: ``status`` is ``ignored`` (not ours) or ``rejected`` (unusable)."""

    def __init__(self, status: str, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


Scalar = Union[int, float, str, bool, None]


class _Notification(msgspec.Struct):
    """The fields of a notification that the mapping reads. Any other field is skipped unread, and these
    are scalars, so no notification can make us build more than a handful of small objects."""

    eventId: Scalar | msgspec.UnsetType = msgspec.UNSET
    portalId: Scalar | msgspec.UnsetType = msgspec.UNSET
    occurredAt: Scalar | msgspec.UnsetType = msgspec.UNSET
    subscriptionType: Scalar | msgspec.UnsetType = msgspec.UNSET
    objectId: Scalar | msgspec.UnsetType = msgspec.UNSET
    objectTypeId: Scalar | msgspec.UnsetType = msgspec.UNSET
    propertyName: Scalar | msgspec.UnsetType = msgspec.UNSET
    propertyValue: Scalar | msgspec.UnsetType = msgspec.UNSET


_read_notification = msgspec.json.Decoder(_Notification)


def read_notifications(body: bytes, limit: int) -> list[dict | Skip]:
    """A webhook body (an array of notifications, or one) → each as a dict of the fields we read, or its Skip.

    Raises NotJson (HTTP 400) and json_split.TooManyElements past ``limit`` (413); counted before copied.
    """
    body = body.strip()
    if not body.startswith((b"{", b"[")):
        raise NotJson("expected a JSON array of HubSpot webhook notifications")
    try:
        if body.startswith(b"{"):
            check_one_value(body)
            raws = [body]
        else:
            raws = array_elements(body, limit)
    except NotJson as exc:
        raise NotJson(f"not JSON: {exc}") from None
    if not raws:
        raise NotJson("expected a JSON array of HubSpot webhook notifications; got an empty one")
    notes: list[dict | Skip] = []
    for raw in raws:
        try:
            note = _read_notification.decode(raw)
        except msgspec.ValidationError as exc:
            if not raw.startswith(b"{"):
                notes.append(Skip("rejected", "not_object", "a notification must be a JSON object"))
            else:
                notes.append(Skip("rejected", "invalid_field", f"a field holds what HubSpot never sends ({exc})"))
            continue
        notes.append({name: value for name in note.__struct_fields__
                      if (value := getattr(note, name)) is not msgspec.UNSET})
    return notes


# ---------------------------------------------------------------- mapping


def parse_stage_map(text: str, open_stages: Sequence[str]) -> dict[str, str]:
    """``hsstage=stage,…`` → dict; each target is a configured open stage or ``won``/``lost``."""
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        source, sep, target = (s.strip() for s in item.partition("="))
        if not sep or not source or not target:
            raise ValueError(f"HUBSPOT_STAGE_MAP: {item!r} is not hubspot_stage=stage")
        if target not in open_stages and target not in OUTCOMES:
            raise ValueError(f"HUBSPOT_STAGE_MAP: {target!r} is neither a configured stage "
                             f"({', '.join(open_stages)}) nor won/lost")
        mapping[source] = target
    return mapping


def _rfc3339_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _owner(obj: CrmObject | None, fallback: str | None = None) -> str | None:
    owner = obj.prop("hubspot_owner_id") if obj is not None else None
    return f"hs-owner-{owner}" if owner else fallback


def _first(obj: CrmObject, association: str) -> str | None:
    ids = obj.associations.get(association) or []
    return ids[0] if ids else None


class HubSpotMapper:
    """One notification → contract events (plain dicts, validated by the caller like any other event)."""

    def __init__(self, enricher: Enricher | None, stage_map: dict[str, str], open_stages: Sequence[str]) -> None:
        self.enricher = enricher
        self.stage_map = stage_map
        self.first_stage = open_stages[0]

    async def map(self, note: Any) -> list[dict]:
        if not isinstance(note, dict):
            raise Skip("rejected", "not_object", "a notification must be a JSON object")
        try:
            object_id = str(int(note["objectId"]))
            occurred_ms = int(note["occurredAt"])
            base_id = f"hs-{int(note['portalId'])}-{int(note['eventId'])}"
            subscription = str(note["subscriptionType"])
        except KeyError as exc:
            raise Skip("rejected", "missing_field", f"the notification has no `{exc.args[0]}`") from None
        except (TypeError, ValueError) as exc:
            raise Skip("rejected", "invalid_field", f"objectId, occurredAt, portalId and eventId must be integers ({exc})") from None
        try:
            common = {"occurred_at": _rfc3339_ms(occurred_ms)}
        except (ValueError, OverflowError, OSError):
            raise Skip("rejected", "invalid_field", f"occurredAt {occurred_ms} is not a time in milliseconds") from None
        kind, _, change = subscription.partition(".")
        if kind == "object":
            kind = OBJECT_TYPE_IDS.get(str(note.get("objectTypeId")), f"objectTypeId {note.get('objectTypeId')}")
        prop, value = note.get("propertyName"), note.get("propertyValue")
        value = None if value in (None, "") else str(value)
        handler = {
            ("contact", "creation"): self._contact_created,
            ("contact", "propertyChange"): self._contact_changed,
            ("deal", "creation"): self._deal_created,
            ("deal", "propertyChange"): self._deal_changed,
            ("call", "creation"): self._call_created,
        }.get((kind, change))
        if handler is None:
            raise Skip("ignored", "unsupported_subscription", f"{subscription} ({kind}) maps to no contract event")
        if change == "propertyChange":
            if not isinstance(prop, str) or not prop:
                raise Skip("rejected", "missing_field", "a propertyChange needs `propertyName`")
            base_id = f"{base_id}-{prop}"
        return await handler(object_id, base_id, common, prop, value)

    async def _fetch(self, object_type: str, object_id: str, properties: Sequence[str],
                     associations: Sequence[str] = (), *, fresh: bool = False, required: bool = True) -> CrmObject | None:
        if self.enricher is None:
            if not required:
                return None
            raise Skip("rejected", "enrichment_unavailable",
                       f"{object_type} need the CRM API for owner/amount/stage: set HUBSPOT_ACCESS_TOKEN")
        obj = await self.enricher.get(object_type, object_id, properties, associations, fresh=fresh)
        if obj is None:
            raise Skip("rejected", "not_found", f"HubSpot has no {object_type[:-1]} {object_id} (deleted since?)")
        return obj

    # --- contacts → leads
    async def _contact_created(self, oid: str, eid: str, common: dict, _prop, _value) -> list[dict]:
        contact = await self._fetch("contacts", oid, CONTACT_PROPERTIES, required=False)
        event = {"event_id": eid, "type": "lead.created", **common, "lead_id": f"hs-contact-{oid}"}
        if (owner := _owner(contact)) is not None:
            event["rep_id"] = owner
        if contact is not None and (source := contact.prop("hs_analytics_source")):
            event["source"] = source.lower()
        return [event]

    async def _contact_changed(self, oid: str, eid: str, common: dict, prop: str, value: str | None) -> list[dict]:
        if prop != "hubspot_owner_id":
            raise Skip("ignored", "unsupported_property", f"contact property {prop} maps to no contract event")
        if value is None:
            raise Skip("ignored", "owner_removed", "the contact's owner was cleared; the contract has no un-assignment")
        return [{"event_id": eid, "type": "lead.assigned", **common, "lead_id": f"hs-contact-{oid}",
                 "rep_id": f"hs-owner-{value}"}]

    # --- deals
    def _stage(self, hs_stage: str | None) -> str:
        target = self.stage_map.get(hs_stage or "")
        if target is None:
            raise Skip("rejected", "unmapped_stage",
                       f"HubSpot deal stage {hs_stage!r} is not in HUBSPOT_STAGE_MAP; add it (stage id=contract stage)")
        return target

    async def _deal_created(self, oid: str, eid: str, common: dict, _prop, _value) -> list[dict]:
        deal = await self._fetch("deals", oid, DEAL_PROPERTIES, ("contacts",), fresh=True)
        target = self._stage(deal.prop("dealstage"))
        amount = deal.prop("amount") or "0"
        created = {"event_id": eid, "type": "deal.created", **common, "deal_id": f"hs-deal-{oid}",
                   "rep_id": _owner(deal, UNASSIGNED), "amount": amount,
                   "stage": self.first_stage if target in OUTCOMES else target}
        if (contact := _first(deal, "contacts")) is not None:
            created["lead_id"] = f"hs-contact-{contact}"
        if target == "won":
            return [created, {"event_id": f"{eid}-won", "type": "deal.won", **common, "deal_id": created["deal_id"],
                              "amount": amount}]
        if target == "lost":
            return [created, {"event_id": f"{eid}-lost", "type": "deal.lost", **common, "deal_id": created["deal_id"]}]
        return [created]

    async def _deal_changed(self, oid: str, eid: str, common: dict, prop: str, value: str | None) -> list[dict]:
        deal_id = f"hs-deal-{oid}"
        if prop == "dealstage":
            target = self._stage(value)
            if target == "lost":
                return [{"event_id": eid, "type": "deal.lost", **common, "deal_id": deal_id}]
            if target == "won":
                # The final amount is the deal's amount now; without the CRM API the last known amount counts.
                event = {"event_id": eid, "type": "deal.won", **common, "deal_id": deal_id}
                deal = await self._fetch("deals", oid, DEAL_PROPERTIES, fresh=True, required=False)
                if deal is not None and deal.prop("amount") is not None:
                    event["amount"] = deal.prop("amount")
                return [event]
            return [{"event_id": eid, "type": "deal.stage_changed", **common, "deal_id": deal_id, "to_stage": target}]
        if prop == "amount":
            if value is None:
                raise Skip("ignored", "amount_cleared", "the deal's amount was cleared; its last amount stays")
            # The contract carries amounts on stage events: re-enter the deal's current stage with the new amount.
            deal = await self._fetch("deals", oid, DEAL_PROPERTIES, fresh=True)
            target = self._stage(deal.prop("dealstage"))
            if target in OUTCOMES:
                raise Skip("ignored", "deal_closed", "the deal is closed; its final amount was taken when it was won")
            return [{"event_id": eid, "type": "deal.stage_changed", **common, "deal_id": deal_id, "to_stage": target,
                     "amount": value}]
        raise Skip("ignored", "unsupported_property", f"deal property {prop} maps to no contract event")

    # --- calls
    async def _call_created(self, oid: str, eid: str, common: dict, _prop, _value) -> list[dict]:
        call = await self._fetch("calls", oid, CALL_PROPERTIES, ("contacts",))
        status = (call.prop("hs_call_status") or "").upper()
        outcome = DISPOSITION_OUTCOMES.get(call.prop("hs_call_disposition") or "") or STATUS_OUTCOMES.get(status)
        if outcome is None:
            raise Skip("ignored", "call_not_finished", f"call status {status or 'unknown'} with no known disposition")
        direction = (call.prop("hs_call_direction") or "OUTBOUND").lower()
        try:
            duration_s = max(0.0, float(call.prop("hs_call_duration") or 0) / 1000)
        except ValueError:
            raise Skip("rejected", "invalid_field", f"hs_call_duration {call.prop('hs_call_duration')!r} is not a number") from None
        event = {"event_id": eid, "type": "call.logged", **common, "call_id": f"hs-call-{oid}",
                 "rep_id": _owner(call, UNASSIGNED), "direction": direction, "outcome": outcome,
                 "duration_s": duration_s}
        if (when := call.prop("hs_timestamp")) is not None:
            event["occurred_at"] = _call_time(when, common["occurred_at"])
        if (contact := _first(call, "contacts")) is not None:
            event["lead_id"] = f"hs-contact-{contact}"
        return [event]


def _call_time(value: str, fallback: str) -> str:
    """hs_timestamp (when the call happened) as RFC 3339: the API gives ISO text, sometimes epoch ms."""
    try:
        if value.isdigit():
            return _rfc3339_ms(int(value))
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):  # not a time, or one no calendar holds
        return fallback
    return parsed.isoformat().replace("+00:00", "Z") if parsed.tzinfo else fallback


async def map_notifications(mapper: HubSpotMapper, notes: list[Any], concurrency: int = 8) -> list[list[dict] | Skip]:
    """Map a batch concurrently (enrichment is I/O); EnrichmentError propagates: the whole batch is retried.

    Every other failure is that notification's own verdict: one bad notification never fails the rest.
    """
    gate = asyncio.Semaphore(concurrency)

    async def one(note: Any) -> list[dict] | Skip:
        if isinstance(note, Skip):  # already refused when the batch was read
            return note
        async with gate:
            try:
                return await mapper.map(note)
            except Skip as skip:
                return skip
            except EnrichmentError:
                raise
            except Exception:
                log.exception("a HubSpot notification could not be mapped; rejecting it")
                return Skip("rejected", "internal_error", "the ingest failed to map this notification; see its log")

    return list(await asyncio.gather(*(one(n) for n in notes)))
