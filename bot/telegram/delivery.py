"""The delivery run: send what :func:`bot.schedule.due_now` says is due, ranking all due users of a day in one
batched pass first, and recording each digest before and after its request so a crash loses nothing.

What holds (the delivery guarantee):

- **Nobody is missed.** A digest is done only once recorded ``sent``, ``empty`` or ``failed``; until then the
  user is due again at the next run (every minute while the bot runs, or ``arxiv-digest deliver``).
- **At least once, never a silent repeat.** Right before a digest's request, its planned papers and the status
  ``sending`` are recorded in one transaction; right after Telegram answers, the message id and ``sent`` in
  another. Telegram has no idempotency key, so a crash (or a request whose answer never came: timeout, 5xx
  after retries) between the two leaves the digest's fate unknown. The next run re-sends exactly those papers,
  headed "↻ Re-sent after an interruption; you may have had this already", and counts it
  (``DeliveryReport.resent``). So a user may see one digest twice, at most once per interruption, and then
  always marked; the number of such repeats is at most the number of requests in flight when the process died
  (``concurrency``, 40 by default). A digest whose request never left gets no repeat: the marked copy is then
  its only copy.
- **Never twice otherwise.** Papers recorded for a user (sending or sent) never appear in a later digest.
- **Notices and "nothing matched" messages at most once.** They are recorded before they are sent: after a crash
  in that window the user misses a note that says there is nothing for them, never gets it twice.
- **Refusals end visibly.** A digest Telegram refuses with 400 (unparsable entities, too long, a bad button) is
  sent again as plain text without entities, then in smaller pieces, then without buttons; if Telegram still
  refuses, one log line ``delivery gave up: user=<id> day=<day> reason=<Telegram's words>`` is written, its
  papers are forgotten (they were not delivered) and the digest is recorded ``failed`` (shown by
  ``arxiv-digest users``; not retried that day). A user who blocked the bot is marked inactive and their
  digest is left to be built afresh when they come back.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from telegram import Bot, Message
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import ContextTypes

from bot.commands import DigestPlan
from bot.reply import Reply
from bot.rich import Rich, split, to_html, to_plain
from bot.schedule import Due, due_now
from bot.telegram.quickcheck import send_quick_check
from bot.telegram.runtime import Runtime, runtime
from bot.telegram.sending import MAX_TEXT, NO_PREVIEW, keyboard, retrying, send_reply

log = logging.getLogger(__name__)
PLAIN_TEXT = 3500  # plain-text pieces leave room for the links written out in full
SMALL_TEXT = 1500  # pieces after Telegram refused the plain ones


async def log_digest(rt: Runtime, user_id: int, plan: DigestPlan, message_id: int | None) -> None:
    """Record a digest sent on request (/digest): the store's one way of recording a delivered digest."""
    await rt.call(rt.store.record_digest, user_id, plan.day, plan.items, message_id)


class GaveUp(Exception):
    """Telegram refused a digest in every form we could send it."""


@dataclass
class DeliveryReport:
    due: int = 0
    sent: int = 0
    empty: int = 0
    notices: int = 0
    blocked: int = 0
    failed: int = 0
    resent: int = 0  # digests re-sent, marked, after an interrupted run (included in sent)
    repaired: int = 0  # digests sent only after a 400 (as plain text or in smaller pieces; included in sent)
    messages: int = 0
    seconds: float = 0.0
    ranking_seconds: float = 0.0  # the batched ranking of the run's digests
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        rate = self.messages / self.seconds if self.seconds else 0.0
        return (f"{self.due} due: {self.sent} digests ({self.resent} re-sent after an interruption), "
                f"{self.empty} empty, {self.notices} notices, {self.blocked} blocked, {self.failed} failed; "
                f"{self.messages} messages in {self.seconds:.1f}s ({rate:.1f}/s)")


class Deliverer:
    """Sends what :func:`bot.schedule.due_now` says is due (see the module docstring for what holds)."""

    def __init__(self, rt: Runtime, bot: Bot, concurrency: int = 40) -> None:
        self.rt, self.bot, self.concurrency = rt, bot, concurrency

    async def run(self, now: datetime | None = None, force: bool = False) -> DeliveryReport:
        report = DeliveryReport()
        if self.rt.delivery_lock.locked():
            log.info("a delivery run is already going; skipping this one")
            return report
        async with self.rt.delivery_lock:
            start = time.monotonic()
            now = now or datetime.now(UTC)
            dues = await self.rt.call(due_now, self.rt.store, now, force)
            report.due = len(dues)
            if dues:
                log.info("delivery run: %d due", len(dues))
            plans = await self._plans([d for d in dues if d.kind == "digest"], report)
            queue: asyncio.Queue[Due] = asyncio.Queue()
            for d in dues:
                queue.put_nowait(d)
            inflight: set[asyncio.Task[None]] = set()

            async def worker() -> None:
                while not queue.empty():
                    d = queue.get_nowait()
                    task = asyncio.ensure_future(self._one(d, plans.get((d.user.id, d.day)), report))
                    inflight.add(task)
                    task.add_done_callback(inflight.discard)
                    await asyncio.shield(task)  # a cancelled run still finishes (and records) this message

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

    async def _plans(self, dues: list[Due], report: DeliveryReport) -> dict[tuple[int, str], DigestPlan]:
        """The digests of the run: interrupted ones from their recorded papers (marked), the others ranked in
        one batched pass per announcement day (and per set of covered days: weekly digests). Whatever fails here
        is built user by user when sent."""
        rt = self.rt
        plans: dict[tuple[int, str], DigestPlan] = {}
        days: dict[tuple[str, tuple[str, ...]], list[Due]] = {}
        for d in dues:
            days.setdefault((d.day, d.days), []).append(d)
        t = time.monotonic()
        for (day, covered), group in days.items():
            statuses = await rt.call(rt.store.digest_statuses, day)
            fresh = []
            for d in group:
                if statuses.get(d.user.id) == "sending":
                    plan = await rt.call(rt.commands.resend_digest, d.user, day)
                    if plan is not None:
                        plans[(d.user.id, day)] = plan
                        continue
                fresh.append(d.user)
            if not fresh:
                continue
            try:
                built = await rt.call(rt.commands.build_digests, fresh, day, covered)
            except Exception:
                log.exception("batched ranking of %d digests for %s failed; ranking them one by one", len(fresh),
                              day)
                continue
            plans.update({(uid, day): plan for uid, plan in built.items()})
        report.ranking_seconds = time.monotonic() - t
        return plans

    async def _one(self, d: Due, plan: DigestPlan | None, report: DeliveryReport) -> None:
        rt, user = self.rt, d.user
        chat = user.chat_id
        assert chat is not None
        try:
            if d.kind == "notice":
                reply = await rt.call(rt.commands.no_announcement, user, d.day, d.last_day)
                await rt.call(rt.store.record_notice, user.id, d.day)  # at most once
                await send_reply(self.bot, chat, reply)
                report.notices += 1
                report.messages += 1
                return
            if plan is None:
                plan = await rt.call(rt.commands.build_digest, user, d.day, None, d.days)
            if not plan.items:
                await rt.call(rt.store.set_digest_status, user.id, d.day, "empty")  # at most once
                sent = await send_reply(self.bot, chat, plan.reply)
                report.messages += len(sent)
                report.empty += 1
                return
            await rt.call(rt.store.begin_digest, user.id, d.day, plan.items)
            sent, repaired = await self._send_digest(chat, plan.reply)
            await rt.call(rt.store.record_digest, user.id, d.day, plan.items, sent[-1].message_id if sent else None)
            report.messages += len(sent)
            report.sent += 1
            report.resent += plan.resent
            report.repaired += repaired
            if plan.resent:
                log.info("digest re-sent after an interruption: user=%s day=%s", user.id, d.day)
            report.messages += await send_quick_check(rt, self.bot, user, d.day, chat)  # at most once a digest
        except Forbidden:
            log.info("user %s blocked the bot; marking inactive", user.id)
            await rt.call(rt.store.update_user, user.id, active=0)
            if plan is not None and plan.items:
                await rt.call(rt.store.abandon_digest, user.id, d.day, plan.items, "pending")
            report.blocked += 1
        except GaveUp as exc:
            log.error("delivery gave up: user=%s day=%s reason=%s", user.id, d.day, exc)
            assert plan is not None
            await rt.call(rt.store.abandon_digest, user.id, d.day, plan.items, "failed")
            report.failed += 1
            report.errors.append(f"{user.id}: {exc}")
        except TelegramError as exc:  # no answer after retries: fate unknown; the next run re-sends it marked
            log.warning("digest for user %s not confirmed (%s); the next run re-sends it", user.id, exc)
            report.failed += 1
            report.errors.append(f"{user.id}: {exc}")
        except Exception as exc:
            log.exception("digest for user %s failed", user.id)
            report.failed += 1
            report.errors.append(f"{user.id}: {type(exc).__name__}: {exc}")

    async def _send_digest(self, chat: int, reply: Reply) -> tuple[list[Message], bool]:
        """Send a digest piece by piece; when Telegram refuses a piece (400), send the rest as plain text, then
        in smaller pieces, then without buttons, before giving up (:class:`GaveUp`). Pieces already accepted
        are never sent again. Returns the messages and whether a repair was needed."""
        pieces = split(reply.text, MAX_TEXT)
        stages = ["html", "plain", "small", "bare"]
        stage = 0
        reasons: list[str] = []
        sent: list[Message] = []
        k = 0
        while k < len(pieces):
            piece, last = pieces[k], k == len(pieces) - 1
            markup = keyboard(reply.buttons) if last and stages[stage] != "bare" else None
            try:
                sent.append(await self._send_piece(chat, piece, markup, html=stages[stage] == "html"))
                k += 1
            except BadRequest as exc:
                reasons.append(f"{stages[stage]}: {exc.message}")
                stage += 1
                if stage == len(stages):
                    raise GaveUp("; ".join(reasons)) from exc
                rest = Rich()
                for p in pieces[k:]:
                    rest.extend(p)
                limit = {"plain": PLAIN_TEXT, "small": SMALL_TEXT, "bare": SMALL_TEXT}[stages[stage]]
                pieces = pieces[:k] + split(rest, limit)
                log.warning("digest to chat %s refused (%s); sending it as %s", chat, exc.message,
                            {"plain": "plain text", "small": "smaller pieces", "bare": "text without buttons"}
                            [stages[stage]])
        return sent, stage > 0

    async def _send_piece(self, chat: int, piece: Rich, markup: Any, html: bool) -> Message:
        if html:
            return await retrying(lambda: self.bot.send_message(
                chat, to_html(piece), parse_mode=ParseMode.HTML, reply_markup=markup,
                link_preview_options=NO_PREVIEW), "sendMessage")
        return await retrying(lambda: self.bot.send_message(
            chat, to_plain(piece), reply_markup=markup, link_preview_options=NO_PREVIEW), "sendMessage")


async def delivery_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    rt = runtime(context)
    await Deliverer(rt, context.bot).run()
