"""Outgoing messages: JSON bodies routes can query, and a bounded outbox that rides out disconnects."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from azure.iot.device import Message
from pydantic import BaseModel

from energy_edge_base.metrics import ModuleMetrics

log = logging.getLogger("energy_edge_base.outbox")

SEND_TIMEOUT_S = 30.0
RETRY_MIN_S = 0.5
RETRY_MAX_S = 30.0


def build_message(body: BaseModel | Mapping[str, Any], properties: Mapping[str, str] | None = None) -> Message:
    """A message with a JSON body, `application/json` + `utf-8` (so routes can use `$body`)."""
    if isinstance(body, BaseModel):
        text = body.model_dump_json()
    else:
        text = json.dumps(body, separators=(",", ":"))
    message = Message(text, message_id=str(uuid.uuid4()), content_encoding="utf-8",
                      content_type="application/json")
    message.custom_properties.update({k: str(v) for k, v in (properties or {}).items()})
    return message


@dataclass
class _Pending:
    output: str
    message: Message


class Outbox:
    """Holds messages until edgeHub takes them; when full, the oldest is dropped and counted.

    One sender task sends in order, retrying the head message with backoff while the link is down.
    """

    def __init__(self, send: Callable[[Message, str], Awaitable[None]], metrics: ModuleMetrics,
                 capacity: int = 1000) -> None:
        self._send = send
        self._metrics = metrics
        self._queue: collections.deque[_Pending] = collections.deque()
        self.capacity = capacity
        self._ready = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self.connected = asyncio.Event()

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, output: str, message: Message) -> None:
        if len(self._queue) >= self.capacity:
            dropped = self._queue.popleft()
            self._metrics.messages_dropped.labels(reason="outbox_full").inc()
            log.warning("outbox full (%d): dropped the oldest message for %s", self.capacity, dropped.output)
        self._queue.append(_Pending(output, message))
        self._metrics.outbox_depth.set(len(self._queue))
        self._ready.set()
        self._empty.clear()

    async def run(self) -> None:
        delay_s = RETRY_MIN_S
        while True:
            if not self._queue:
                self._ready.clear()
                self._empty.set()
                await self._ready.wait()
                continue
            await self.connected.wait()
            head = self._queue[0]
            try:
                await asyncio.wait_for(self._send(head.message, head.output), SEND_TIMEOUT_S)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("send to %s failed (%s); retrying in %.1f s", head.output, exc, delay_s)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, RETRY_MAX_S)
                continue
            delay_s = RETRY_MIN_S
            if self._queue and self._queue[0] is head:
                self._queue.popleft()
            self._metrics.messages_sent.labels(output=head.output).inc()
            self._metrics.outbox_depth.set(len(self._queue))

    async def flush(self, timeout_s: float) -> bool:
        """Wait until everything queued was sent; False if that took longer than `timeout_s`."""
        try:
            await asyncio.wait_for(self._empty.wait(), timeout_s)
            return True
        except asyncio.TimeoutError:
            return False
