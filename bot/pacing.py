"""Pacing of Bot API requests: ~30 messages a second overall, ~1 a second per chat, and 429s retried.

:class:`Pacer` is a python-telegram-bot rate limiter. Every request that targets a chat waits for a slot
of its chat (sends only: ``per_chat_interval`` apart) and then for a slot of the bot (``1/overall_rate``
apart). Slots are spaced evenly rather than granted in bursts, so a delivery run never trips Telegram's
per-second limit. When Telegram still answers 429, all requests pause for ``retry_after`` and the request
is retried, up to ``max_retries`` times (PTB's own limiter gives up at once by default, which would lose a
digest).
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Coroutine

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

log = logging.getLogger(__name__)

PER_CHAT_METHODS = {"sendMessage", "sendDocument", "sendPhoto", "copyMessage", "forwardMessage"}


def retry_seconds(exc: RetryAfter) -> float:
    """Seconds to wait for a 429 (PTB 22 keeps a timedelta; its public attribute warns of a type change)."""
    value = getattr(exc, "_retry_after", None)
    if value is None:
        value = exc.retry_after
    return value.total_seconds() if hasattr(value, "total_seconds") else float(value)


class _Slots:
    """Evenly spaced time slots: ``take()`` returns how long to wait for the next one."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.next = 0.0

    def take(self, now: float) -> float:
        slot = max(now, self.next)
        self.next = slot + self.interval
        return slot - now


class Pacer(BaseRateLimiter[int]):
    def __init__(self, overall_rate: float = 28.0, per_chat_interval: float = 1.0, max_retries: int = 6) -> None:
        self.overall = _Slots(1.0 / overall_rate) if overall_rate > 0 else None
        self.per_chat_interval = per_chat_interval
        self.chats: dict[int | str, _Slots] = {}
        self.max_retries = max_retries
        self.resume = asyncio.Event()
        self.resume.set()
        self.retries = 0  # 429s absorbed, for logs and benchmarks

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    def _chat_slots(self, chat: int | str) -> _Slots:
        if len(self.chats) > 4096:
            now = time.monotonic()
            self.chats = {k: v for k, v in self.chats.items() if v.next > now}
        slots = self.chats.get(chat)
        if slots is None:
            slots = self.chats[chat] = _Slots(self.per_chat_interval)
        return slots

    async def process_request(self, callback: Callable[..., Coroutine[Any, Any, Any]], args: Any,
                              kwargs: dict[str, Any], endpoint: str, data: dict[str, Any],
                              rate_limit_args: int | None) -> Any:
        chat = data.get("chat_id")
        retries = rate_limit_args if rate_limit_args is not None else self.max_retries
        for attempt in range(retries + 1):
            await self.resume.wait()
            if chat is not None:
                if endpoint in PER_CHAT_METHODS and self.per_chat_interval > 0:
                    await asyncio.sleep(self._chat_slots(chat).take(time.monotonic()))
                if self.overall is not None:
                    await asyncio.sleep(self.overall.take(time.monotonic()))
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                if attempt >= retries:
                    log.warning("%s still rate limited after %d retries", endpoint, retries)
                    raise
                wait = retry_seconds(exc)
                self.retries += 1
                log.info("429 from Telegram on %s: pausing all requests for %.1fs", endpoint, wait)
                self.resume.clear()
                try:
                    await asyncio.sleep(wait + 0.1)
                finally:
                    self.resume.set()
        raise AssertionError("unreachable")
