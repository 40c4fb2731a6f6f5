"""The ``Enricher`` that reads HubSpot's CRM v3 objects API, with a small TTL cache.

``GET {HUBSPOT_API_URL}/crm/v3/objects/{deals|contacts|calls}/{id}?properties=a,b&associations=contacts``
with ``Authorization: Bearer <private app token>`` answers ``{"id", "properties": {name: string|null},
"createdAt", "updatedAt", "archived", "associations": {"contacts": {"results": [{"id", "type"}]}}}``;
404 when the object does not exist. Anything else that is not 200 (429 rate limit, 5xx, 401 bad token,
a timeout) raises ``EnrichmentError``: the webhook is answered 503 and HubSpot retries it later.

The cache holds answers for ``cache_seconds`` (a webhook retried by HubSpot, or several notifications
about one contact, cost one request); callers pass ``fresh=True`` for properties that move (a deal's
stage and amount), which refreshes the entry instead of reading it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Callable, Sequence

import aiohttp

from stream.ingest.hubspot import CrmObject, EnrichmentError

REQUEST_TIMEOUT_S = 3.0  # HubSpot gives a webhook 5 s to be answered; enrichment must fit in that


class HubSpotCrm:
    def __init__(self, base_url: str, token: str, *, cache_seconds: float = 300.0, max_entries: int = 10_000,
                 session: aiohttp.ClientSession | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self.cache_seconds = cache_seconds
        self.max_entries = max_entries
        self._session = session
        self._own_session = session is None
        self._clock = clock
        self._cache: OrderedDict[tuple, tuple[float, CrmObject | None]] = OrderedDict()
        self.requests = 0  # HTTP requests made (the cache's effect is visible in tests and metrics)

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()

    async def get(self, object_type: str, object_id: str, properties: Sequence[str],
                  associations: Sequence[str] = (), *, fresh: bool = False) -> CrmObject | None:
        key = (object_type, object_id, tuple(properties), tuple(associations))
        now = self._clock()
        if not fresh and (hit := self._cache.get(key)) is not None and hit[0] > now:
            self._cache.move_to_end(key)
            return hit[1]
        obj = await self._fetch(object_type, object_id, properties, associations)
        self._cache[key] = (now + self.cache_seconds, obj)
        self._cache.move_to_end(key)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
        return obj

    async def _fetch(self, object_type: str, object_id: str, properties: Sequence[str],
                     associations: Sequence[str]) -> CrmObject | None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S))
        params = {"properties": ",".join(properties)}
        if associations:
            params["associations"] = ",".join(associations)
        url = f"{self.base_url}/crm/v3/objects/{object_type}/{object_id}"
        self.requests += 1
        try:
            async with self._session.get(url, params=params, headers=self._headers,
                                         timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)) as resp:
                if resp.status == 404:
                    return None
                if resp.status != 200:
                    hint = {401: " (check HUBSPOT_ACCESS_TOKEN)", 403: " (the token lacks a crm.objects read scope)",
                            429: " (rate limited)"}.get(resp.status, "")
                    raise EnrichmentError(f"HubSpot CRM answered {resp.status} for {object_type}/{object_id}{hint}")
                doc = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise EnrichmentError(f"HubSpot CRM at {self.base_url} did not answer ({type(exc).__name__})") from None
        except ValueError:
            raise EnrichmentError(f"HubSpot CRM sent unreadable JSON for {object_type}/{object_id}") from None
        return _crm_object(doc, object_id)


def _crm_object(doc: object, object_id: str) -> CrmObject:
    if not isinstance(doc, dict) or not isinstance(doc.get("properties"), dict):
        raise EnrichmentError(f"HubSpot CRM answer for {object_id} has no `properties` object")
    props = {str(k): (None if v is None else str(v)) for k, v in doc["properties"].items()}
    assocs: dict[str, list[str]] = {}
    for name, block in (doc.get("associations") or {}).items():
        results = block.get("results", []) if isinstance(block, dict) else []
        assocs[str(name)] = [str(r["id"]) for r in results if isinstance(r, dict) and "id" in r]
    return CrmObject(id=str(doc.get("id", object_id)), properties=props, associations=assocs)
