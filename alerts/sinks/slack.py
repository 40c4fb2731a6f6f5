"""Slack: an incoming webhook (one message per notification) or the Web API with a bot token.

Both send the same Block Kit layout: a header with the state and title, the sentence with the mentions,
fields (value vs threshold, owner, since…), a context line with the rule and idempotency key, and a
button to the Grafana panel. With a bot token (``chat.postMessage``) the first message's ``ts`` is kept in
the alert state store, so escalations and repeats reply in its thread and the resolve edits it in place
(``chat.update``): a channel reads as one line per incident, whichever worker sends the later notices.
"""

from __future__ import annotations

from typing import Any, Protocol

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from alerts.notification import Notification
from alerts.notification import slack_escape as _escape
from alerts.sinks.base import SinkError, http_error

DEFAULT_API_URL = "https://slack.com/api/"
_ICON = {"firing": ":red_circle:", "repeat": ":repeat:", "escalation": ":rotating_light:", "resolved": ":large_green_circle:"}
_STATE = {"firing": "FIRING", "repeat": "STILL FIRING", "escalation": "ESCALATED", "resolved": "RESOLVED"}
# Errors no retry can fix; anything else (ratelimited, internal_error, timeouts) is retried.
PERMANENT = {
    "channel_not_found", "not_in_channel", "is_archived", "invalid_auth", "not_authed", "account_inactive",
    "token_revoked", "token_expired", "missing_scope", "invalid_blocks", "invalid_blocks_format", "msg_too_long",
    "no_text", "restricted_action", "cant_update_message", "edit_window_closed", "invalid_arguments",
}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fallback_text(n: Notification) -> str:
    """The notification text for clients that do not render blocks (and for push notifications).

    Slack reads it as mrkdwn, like every text here but the header: the title (event text) is escaped,
    the mentions (built from the roster) are not.
    """
    mentions = " ".join(n.mentions)
    return _cut(f"[{_STATE[n.kind]}] {_escape(n.title)} {mentions}".strip(), 3000)


def build_blocks(n: Notification) -> list[dict[str, Any]]:
    """Block Kit blocks; slack_sdk's models check Slack's limits (header 150 chars, 10 fields, …).

    Every mrkdwn text escapes what came from events; the header is plain_text, which Slack shows as is.
    """
    header = HeaderBlock(text=PlainTextObject(text=_cut(f"{_STATE[n.kind]}: {n.title}", 150), emoji=True))
    sentence = _escape(n.text)
    if n.mentions:
        sentence = f"{' '.join(n.mentions)} {sentence}"
    if n.repeat:
        sentence += "\n_This may repeat a notification already sent (same idempotency key)._"
    fields = [MarkdownTextObject(text=_cut(f"*{_escape(k)}*\n{_escape(v)}", 2000)) for k, v in n.facts[:10]]
    section = SectionBlock(text=MarkdownTextObject(text=_cut(f"{_ICON[n.kind]} {sentence}", 3000)), fields=fields or None)
    context = ContextBlock(elements=[MarkdownTextObject(text=_cut(
        f"rule `{_escape(n.rule)}` · severity *{n.severity}* · key `{n.key}`" + (f" · {_escape(n.app_id)}" if n.app_id else ""), 3000))])
    blocks: list[Any] = [header, section, context]
    if n.link:
        blocks.append(ActionsBlock(elements=[ButtonElement(text="Open in Grafana", url=_cut(n.link, 3000), action_id="grafana")]))
    return [b.to_dict() for b in blocks]


def message(n: Notification) -> dict[str, Any]:
    return {"text": fallback_text(n), "blocks": build_blocks(n)}


class SlackWebhookSink:
    """Incoming webhook: posts to the channel the webhook was created for."""

    name = "slack"
    supports_refresh = False

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self._url = url
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._client: AsyncWebhookClient | None = None

    def _webhook(self) -> AsyncWebhookClient:
        if self._client is None:
            self._session = aiohttp.ClientSession()
            self._client = AsyncWebhookClient(url=self._url, timeout=int(max(1, self._timeout)), session=self._session)
        return self._client

    async def send(self, n: Notification) -> None:
        body = message(n)
        response = await self._webhook().send(text=body["text"], blocks=body["blocks"])
        if response.status_code != 200:
            retry_after = (response.headers or {}).get("Retry-After") or (response.headers or {}).get("retry-after")
            raise http_error(response.status_code, f"slack webhook answered {_cut(str(response.body), 100)!r}", retry_after)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = self._client = None


class MessageRefs(Protocol):
    async def get_meta(self, fingerprint: str, episode: int) -> dict[str, str] | None: ...
    async def set_meta(self, fingerprint: str, episode: int, meta: dict[str, str]) -> None: ...


class SlackBotSink:
    """Web API with a bot token: first message per incident, thread replies, resolve by chat.update."""

    name = "slack"
    supports_refresh = False

    def __init__(self, token: str, default_channel: str | None, refs: MessageRefs, *,
                 api_url: str = DEFAULT_API_URL, timeout: float = 5.0) -> None:
        self._token = token
        self.default_channel = default_channel
        self.refs = refs
        self.api_url = api_url if api_url.endswith("/") else api_url + "/"
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._client: AsyncWebClient | None = None

    def _web(self) -> AsyncWebClient:
        if self._client is None:
            self._session = aiohttp.ClientSession()
            self._client = AsyncWebClient(token=self._token, base_url=self.api_url, timeout=int(max(1, self._timeout)),
                                          session=self._session, retry_handlers=[])
        return self._client

    async def send(self, n: Notification) -> None:
        body = message(n)
        try:
            ref = await self.refs.get_meta(n.fingerprint, n.episode) if n.kind != "firing" else None
            if ref and n.kind == "resolved":
                try:
                    await self._web().chat_update(channel=ref["channel"], ts=ref["ts"], **body)
                    return
                except SlackApiError as exc:
                    if exc.response.get("error") not in ("message_not_found", "cant_update_message", "edit_window_closed"):
                        raise
            if ref and n.kind in ("escalation", "repeat"):
                await self._web().chat_postMessage(channel=ref["channel"], thread_ts=ref["ts"], **body)
                return
            channel = n.channel or self.default_channel
            if not channel:
                raise SinkError("no Slack channel: set SLACK_CHANNEL or the team's slack_channel in the roster", permanent=True)
            response = await self._web().chat_postMessage(channel=channel, **body)
            if n.kind != "resolved":
                await self.refs.set_meta(n.fingerprint, n.episode, {"channel": str(response["channel"]), "ts": str(response["ts"])})
        except SlackApiError as exc:
            error = str(exc.response.get("error", "unknown_error"))
            retry_after = exc.response.headers.get("Retry-After") if exc.response.headers else None
            raise SinkError(f"slack API: {error}", permanent=error in PERMANENT,
                            retry_after=float(retry_after) if retry_after else None) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = self._client = None
