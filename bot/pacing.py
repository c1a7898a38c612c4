"""Pacing of Bot API requests: ~30 messages a second overall, ~1 a second per chat, and 429s retried.

:class:`Pacer` is a python-telegram-bot rate limiter. Every request that targets a chat waits for a slot
of its chat (sends and edits: ``per_chat_interval`` apart), then for a slot of the bot (``1/overall_rate``
apart), then for room in a sliding one-second window of ``overall_rate`` requests. Slots are spaced evenly
rather than granted in bursts, and the window holds even when a lagging event loop wakes several senders at
once, so a delivery run stays under Telegram's per-second limit. When Telegram still answers 429, all requests
pause for ``retry_after`` and the request is retried, up to ``max_retries`` times (PTB's own limiter gives up
at once by default, which would lose a digest). The per-chat wait happens in the chat's own queue (see
:mod:`bot.telegram.runtime`), never in a slot python-telegram-bot needs for other updates.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import time
import warnings
from collections.abc import Callable, Coroutine
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter
from telegram.warnings import PTBDeprecationWarning

log = logging.getLogger(__name__)

PER_CHAT_METHODS = {"sendMessage", "sendDocument", "sendPhoto", "copyMessage", "forwardMessage", "editMessageText",
                    "editMessageReplyMarkup"}


def retry_seconds(exc: RetryAfter) -> float:
    """Seconds to wait for a 429. PTB 22 gives ``retry_after`` as seconds and warns that PTB 23 will give a
    timedelta (unless PTB_TIMEDELTA is set); both are read here, without the warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value: Any = exc.retry_after
    return float(value.total_seconds()) if hasattr(value, "total_seconds") else float(value)


class _Slots:
    """Evenly spaced time slots: ``take()`` returns how long to wait for the next one."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.next = 0.0

    def take(self, now: float) -> float:
        slot = max(now, self.next)
        self.next = slot + self.interval
        return slot - now


class _Window:
    """At most ``limit`` acquisitions in any ``period`` seconds, checked at dispatch time: evenly spaced
    slots alone can still bunch up when the event loop lags and several late sleepers wake at once."""

    def __init__(self, limit: int, period: float = 1.0) -> None:
        self.limit, self.period = limit, period
        self.times: collections.deque[float] = collections.deque()

    async def acquire(self) -> None:
        while True:
            now = time.monotonic()
            while self.times and now - self.times[0] >= self.period:
                self.times.popleft()
            if len(self.times) < self.limit:
                self.times.append(now)
                return
            await asyncio.sleep(self.times[0] + self.period - now + 0.001)


class Pacer(BaseRateLimiter[int]):
    def __init__(self, overall_rate: float = 28.0, per_chat_interval: float = 1.0, max_retries: int = 6) -> None:
        self.overall = _Slots(1.0 / overall_rate) if overall_rate > 0 else None
        self.window = _Window(max(1, int(overall_rate))) if overall_rate > 0 else None
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
                while True:
                    await self.resume.wait()
                    if self.overall is not None:
                        await asyncio.sleep(self.overall.take(time.monotonic()))
                    if self.resume.is_set():
                        break  # else a pause began while we slept: queue for a fresh slot after it
                if self.window is not None:
                    await self.window.acquire()
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                if attempt >= retries:
                    log.warning("%s still rate limited after %d retries", endpoint, retries)
                    raise
                wait = retry_seconds(exc) + 0.1
                self.retries += 1
                log.info("429 from Telegram on %s: pausing all requests for %.1fs", endpoint, wait)
                if self.resume.is_set():
                    self.resume.clear()
                    if self.overall is not None:  # resume evenly spaced, not in a burst
                        self.overall.next = max(self.overall.next, time.monotonic() + wait)
                    try:
                        await asyncio.sleep(wait)
                    finally:
                        self.resume.set()
        raise AssertionError("unreachable")
