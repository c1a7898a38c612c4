"""The delivery run: send what :func:`bot.schedule.due_now` says is due, logging each digest before and after
sending (``pending`` -> ``sent``) with the message id.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import ContextTypes

from bot.commands import DigestPlan
from bot.schedule import Due, due_now
from bot.telegram.runtime import Runtime, runtime
from bot.telegram.sending import send_reply

log = logging.getLogger(__name__)


async def log_digest(rt: Runtime, user_id: int, plan: DigestPlan, message_id: int | None) -> None:
    def record() -> None:
        with rt.store.transaction():
            for pid, rank, score in plan.items:
                rt.store.record_delivery(user_id, pid, plan.day, rank=rank, score=score, message_id=message_id)
            rt.store.set_digest_status(user_id, plan.day, "sent")
    await rt.call(record)


@dataclass
class DeliveryReport:
    due: int = 0
    sent: int = 0
    empty: int = 0
    notices: int = 0
    blocked: int = 0
    failed: int = 0
    messages: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        rate = self.messages / self.seconds if self.seconds else 0.0
        return (f"{self.due} due: {self.sent} digests, {self.empty} empty, {self.notices} notices, "
                f"{self.blocked} blocked, {self.failed} failed; {self.messages} messages in {self.seconds:.1f}s "
                f"({rate:.1f}/s)")


class Deliverer:
    """Sends what :func:`bot.schedule.due_now` says is due, logging each digest before and after sending."""

    def __init__(self, rt: Runtime, bot: Any, concurrency: int = 40) -> None:
        self.rt, self.bot, self.concurrency = rt, bot, concurrency

    async def run(self, now: datetime | None = None, force: bool = False) -> DeliveryReport:
        report = DeliveryReport()
        if self.rt.delivery_lock.locked():
            log.info("a delivery run is already going; skipping this one")
            return report
        async with self.rt.delivery_lock:
            start = time.monotonic()
            now = now or datetime.now(timezone.utc)
            dues = await self.rt.call(due_now, self.rt.store, now, force)
            report.due = len(dues)
            if dues:
                log.info("delivery run: %d due", len(dues))
            queue: asyncio.Queue[Due] = asyncio.Queue()
            for d in dues:
                queue.put_nowait(d)
            inflight: set[asyncio.Task] = set()

            async def worker() -> None:
                while not queue.empty():
                    d = queue.get_nowait()
                    task = asyncio.ensure_future(self._one(d, report))
                    inflight.add(task)
                    task.add_done_callback(inflight.discard)
                    await asyncio.shield(task)  # a cancelled run still finishes (and logs) this message

            workers = [asyncio.ensure_future(worker()) for _ in range(min(self.concurrency, len(dues)))]
            try:
                await asyncio.gather(*workers)
            except asyncio.CancelledError:
                for w in workers:
                    w.cancel()
                if inflight:
                    await asyncio.wait(set(inflight))
                raise
            finally:
                report.seconds = time.monotonic() - start
            if dues:
                log.info("delivery run: %s", report.summary())
            return report

    async def _one(self, d: Due, report: DeliveryReport) -> None:
        rt, user = self.rt, d.user
        chat = user.chat_id
        assert chat is not None
        try:
            if d.kind == "notice":
                reply = await rt.call(rt.commands.no_announcement, user, d.day, d.last_day)
                await send_reply(self.bot, chat, reply)
                await rt.call(rt.store.record_notice, user.id, d.day)
                report.notices += 1
                report.messages += 1
                return
            await rt.call(rt.store.set_digest_status, user.id, d.day, "pending")
            plan = await rt.call(rt.commands.build_digest, user, d.day)
            sent = await send_reply(self.bot, chat, plan.reply)
            report.messages += len(sent)
            if plan.items:
                await log_digest(rt, user.id, plan, sent[-1].message_id if sent else None)
                report.sent += 1
            else:
                await rt.call(rt.store.set_digest_status, user.id, d.day, "empty")
                report.empty += 1
        except Forbidden:
            log.info("user %s blocked the bot; marking inactive", user.id)
            await rt.call(rt.store.update_user, user.id, active=0)
            report.blocked += 1
        except BadRequest as exc:
            log.error("digest for user %s rejected by Telegram: %s", user.id, exc)
            if d.kind == "digest":
                await rt.call(rt.store.set_digest_status, user.id, d.day, "failed")
            report.failed += 1
            report.errors.append(f"{user.id}: {exc}")
        except TelegramError as exc:  # still failing after retries: stays pending, next run tries again
            log.warning("digest for user %s not sent (%s); will retry next run", user.id, exc)
            report.failed += 1
            report.errors.append(f"{user.id}: {exc}")
        except Exception as exc:
            log.exception("digest for user %s failed", user.id)
            report.failed += 1
            report.errors.append(f"{user.id}: {type(exc).__name__}: {exc}")


async def delivery_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    rt = runtime(context)
    await Deliverer(rt, context.bot).run()
