"""The handoff service's only way to reach a customer: Rasa's HTTP API.

Agent replies are appended to the customer's own tracker as ``bot`` events with the
agent's name in their metadata, with ``execute_side_effects=true&output_channel=latest``,
so they reach the customer on whatever channel they use and stay in the one transcript.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import aiohttp


class RasaError(RuntimeError):
    pass


class RasaApi:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.token = token

    def _url(self, conversation_id: str, path: str) -> str:
        return f"{self.base_url}/conversations/{quote(conversation_id, safe=':')}/{path}"

    async def _call(self, method: str, url: str, params: dict | None = None, json: Any = None) -> Any:
        params = {"token": self.token, **(params or {})}
        try:
            async with self.session.request(
                method, url, params=params, json=json, timeout=aiohttp.ClientTimeout(total=30)
            ) as response:
                if response.status >= 400:
                    raise RasaError(f"Rasa answered {response.status} to {method} {url}: {await response.text()}")
                return await response.json(content_type=None)
        except aiohttp.ClientError as exc:
            raise RasaError(f"cannot reach Rasa at {self.base_url}: {exc}") from exc

    async def append(self, conversation_id: str, events: list[dict]) -> Any:
        """Append events and deliver any bot message through the customer's latest channel."""
        return await self._call(
            "POST",
            self._url(conversation_id, "tracker/events"),
            params={"execute_side_effects": "true", "output_channel": "latest"},
            json=events,
        )

    async def say(
        self,
        conversation_id: str,
        text: str,
        agent: str | None = None,
        buttons: list[dict] | None = None,
        reply_id: str | None = None,
    ) -> None:
        event: dict[str, Any] = {"event": "bot", "text": text, "timestamp": time.time()}
        if buttons:
            event["data"] = {"buttons": buttons}
        if agent:
            event["metadata"] = {"agent": agent, **({"reply_id": reply_id} if reply_id else {})}
        await self.append(conversation_id, [event])

    async def has_reply(self, conversation_id: str, reply_id: str) -> bool:
        """Whether an agent's reply with this id is already in the transcript."""
        events = (await self.tracker(conversation_id)).get("events") or []
        return any(e.get("event") == "bot" and (e.get("metadata") or {}).get("reply_id") == reply_id for e in events)

    async def resume_with(
        self,
        conversation_id: str,
        text: str,
        buttons: list[dict] | None = None,
        ended: dict[str, Any] | None = None,
        slots: dict[str, Any] | None = None,
    ) -> None:
        """Resume the bot with its first message, then listen.

        One append: the bot's words reach the customer's channel, and ``action_listen``
        makes the customer's next message a new turn for the bot's rules. ``ended`` goes on
        the resume event (how the handoff ended and who ended it, for the team lead's
        figures); ``slots`` are set with it (``csat``: a rating was asked for).
        """
        now = time.time()
        message: dict[str, Any] = {"event": "bot", "text": text, "timestamp": now}
        if buttons:
            message["data"] = {"buttons": buttons}
        resume: dict[str, Any] = {"event": "resume", "timestamp": now}
        if ended:
            resume["metadata"] = ended
        slot_events = [{"event": "slot", "name": k, "value": v, "timestamp": now} for k, v in (slots or {}).items()]
        await self.append(
            conversation_id,
            [resume, *slot_events, message, {"event": "action", "name": "action_listen", "timestamp": now}],
        )

    async def tracker(self, conversation_id: str) -> dict:
        return await self._call("GET", self._url(conversation_id, "tracker"))
