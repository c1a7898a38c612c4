"""The bot on Telegram: python-telegram-bot v22 handlers, rendering of Replies, jobs for ingestion and delivery.

Handlers are small: they turn an update into a :class:`~bot.commands.Caller` plus text or button data, run the
transport-free command on the one worker thread that owns the store (so SQLite and the models are never
used from two threads), and render what comes back: HTML with every span escaped, long texts split at 4096
characters, inline keyboards, documents. Group chats, edited messages and non-text messages get a short
explanation. Sending goes through :class:`~bot.pacing.Pacer` (30/s overall, 1/s per chat, 429s retried);
other transient errors (5xx, timeouts) are retried with backoff; a 403 marks the user inactive.

JobQueue jobs run the day: a warm-up (load the models, embed what lacks vectors) once polling is up,
ingestion every ``ingest_interval_minutes`` and a delivery run every minute.
A delivery run logs each digest in the store before and after sending (``pending`` -> ``sent``) with the
message id, so a restart resumes with no duplicates and no one skipped; a cancelled run finishes the
messages it already started.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import partial
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

from telegram import (BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Message,
                      Update)
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import (Application, ApplicationBuilder, CallbackQueryHandler, ChatMemberHandler, ContextTypes,
                          MessageHandler, filters)

from recommender.config import Settings
from recommender.store import Store

from .commands import COMMANDS, Caller, Commands, DigestPlan
from .pacing import Pacer, retry_seconds
from .reply import Button, Reply, keyboard_equal
from .rich import split, to_html
from .schedule import Due, due_now

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_TEXT = 4096
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


# -- the shared runtime -----------------------------------------------------------------------------------------
class Runtime:
    """What handlers and jobs share: settings, the store, the commands and the one worker thread."""

    def __init__(self, settings: Settings, store: Store, commands: Commands | None = None) -> None:
        self.settings = settings
        self.store = store
        self.commands = commands or Commands(settings, store)
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="arxiv-digest-worker")
        self.delivery_lock = asyncio.Lock()

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.worker, partial(fn, *args, **kwargs))

    async def ingest(self) -> Any:
        """One ingestion run: the feed is fetched on a thread of its own (a slow arXiv must not hold up
        commands), then stored, embedded and classified on the worker."""
        from recommender.arxiv import ArxivClient

        def fetch() -> Any:
            client = ArxivClient(self.settings)
            try:
                return client.fetch_rss(list(self.settings.categories))
            finally:
                client.close()

        feed = await asyncio.to_thread(fetch)
        return await self.call(self.ingest_once, _Prefetched(feed))

    def ingest_once(self, client: Any = None) -> Any:
        """One ingestion run (blocking; call it through :meth:`call`); ``client`` may be prefetched."""
        from recommender.pipeline import ingest, model_steps

        engine = None
        try:
            engine = self.commands.engine
        except Exception:
            log.exception("no embedding engine for ingestion")
        steps = model_steps(self.store, engine, lambda: self.commands.classifier)
        return ingest(self.settings, self.store, client=client, **steps)

    def close(self) -> None:
        self.worker.shutdown(wait=True)


class _Prefetched:
    """Stands in for an ArxivClient whose feed was already fetched."""

    def __init__(self, feed: Any) -> None:
        self.feed = feed

    def fetch_rss(self, categories: Any) -> Any:
        return self.feed

    def close(self) -> None:
        pass


def runtime(context: ContextTypes.DEFAULT_TYPE) -> Runtime:
    return context.application.bot_data["runtime"]


# -- rendering ----------------------------------------------------------------------------------------------------
def keyboard(buttons: list[list[Button]]) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    return InlineKeyboardMarkup([
        [InlineKeyboardButton(b.label, url=b.url) if b.url else InlineKeyboardButton(b.label, callback_data=b.data)
         for b in row] for row in buttons if row])


def buttons_of(markup: InlineKeyboardMarkup | None) -> list[list[Button]]:
    if markup is None:
        return []
    rows = []
    for row in markup.inline_keyboard:
        cells = []
        for b in row:
            if isinstance(b.callback_data, str) or b.url:
                cells.append(Button(b.text, b.callback_data if isinstance(b.callback_data, str) else "",
                                    b.url or ""))
        rows.append(cells)
    return rows


async def retrying(make: Callable[[], Awaitable[T]], what: str, attempts: int = 4) -> T:
    """Run a Bot API call, retrying 5xx errors, timeouts and leftover 429s with backoff."""
    delay = 0.5
    for attempt in range(1, attempts + 1):
        try:
            return await make()
        except (BadRequest, Forbidden):
            raise
        except RetryAfter as exc:
            if attempt == attempts:
                raise
            await asyncio.sleep(retry_seconds(exc) + 0.1)
        except NetworkError as exc:  # includes TimedOut and 5xx
            if attempt == attempts:
                raise
            log.info("%s failed (%s); retry %d in %.1fs", what, exc, attempt, delay)
            await asyncio.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


async def send_reply(bot: Any, chat_id: int, reply: Reply) -> list[Message]:
    """Send a Reply as one or more messages (text split at 4096, keyboard on the last), plus its document."""
    sent: list[Message] = []
    pieces = split(reply.text, MAX_TEXT) if reply.text else []
    for k, piece in enumerate(pieces):
        markup = keyboard(reply.buttons) if k == len(pieces) - 1 else None
        sent.append(await retrying(lambda p=piece, m=markup: bot.send_message(
            chat_id, to_html(p), parse_mode=ParseMode.HTML, reply_markup=m, link_preview_options=NO_PREVIEW),
            "sendMessage"))
    if reply.document is not None:
        doc = reply.document
        sent.append(await retrying(lambda: bot.send_document(
            chat_id, document=doc.content, filename=doc.filename, caption=doc.caption or None), "sendDocument"))
    if not pieces and reply.document is None and reply.buttons:
        sent.append(await retrying(lambda: bot.send_message(
            chat_id, "Choose:", reply_markup=keyboard(reply.buttons)), "sendMessage"))
    return sent


async def log_digest(rt: Runtime, user_id: int, plan: DigestPlan, message_id: int | None) -> None:
    def record() -> None:
        with rt.store.transaction():
            for pid, rank, score in plan.items:
                rt.store.record_delivery(user_id, pid, plan.day, rank=rank, score=score, message_id=message_id)
            rt.store.set_digest_status(user_id, plan.day, "sent")
    await rt.call(record)


async def answer(rt: Runtime, bot: Any, chat_id: int, user_id: int, replies: list[Reply]) -> None:
    for reply in replies:
        try:
            sent = await send_reply(bot, chat_id, reply)
        except Forbidden:
            await rt.call(rt.store.update_user, user_id, active=0)
            log.info("user %s blocked the bot", user_id)
            return
        if isinstance(reply.delivery, DigestPlan) and reply.delivery.items and sent:
            await log_digest(rt, user_id, reply.delivery, sent[-1].message_id)


# -- handlers -------------------------------------------------------------------------------------------------------
def caller_of(update: Update) -> Caller:
    user, chat = update.effective_user, update.effective_chat
    assert user is not None and chat is not None
    return Caller(user_id=user.id, chat_id=chat.id, name=user.first_name or "")


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    rt, msg = runtime(context), update.effective_message
    assert msg is not None and msg.text is not None
    caller = caller_of(update)
    replies = await rt.call(rt.commands.handle, caller, msg.text)
    await answer(rt, context.bot, msg.chat_id, caller.user_id, replies)


async def on_group(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    msg = update.effective_message
    assert msg is not None
    addressed = (msg.text or "").split()[0].partition("@")[2] if msg.text else ""
    if addressed and addressed.lower() != (context.bot.username or "").lower():
        return  # a command for another bot in the group
    await send_reply(context.bot, msg.chat_id, Commands.group_chat())


async def on_membership(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A user blocked (or unblocked) the bot: stop (or resume) their digests at once."""
    change = update.my_chat_member
    if change is None or change.chat.type != "private":
        return
    active = change.new_chat_member.status not in ("kicked", "left")
    rt = runtime(context)
    try:
        await rt.call(rt.store.update_user, change.from_user.id, active=int(active))
        log.info("user %s %s the bot", change.from_user.id, "unblocked" if active else "blocked")
    except KeyError:
        pass  # never talked to us


async def on_edited(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    msg = update.effective_message
    if msg is not None and msg.chat.type == "private":
        await send_reply(context.bot, msg.chat_id, Commands.edited())


async def on_other(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    msg = update.effective_message
    assert msg is not None
    kind = "stickers" if msg.sticker else "photos" if msg.photo else "voice messages" if msg.voice else \
        "files" if msg.document else "that kind of message"
    await send_reply(context.bot, msg.chat_id, Commands.unsupported(kind))


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    rt, query = runtime(context), update.callback_query
    assert query is not None
    caller = caller_of(update)
    message = query.message if isinstance(query.message, Message) else None
    old = buttons_of(message.reply_markup) if message else []
    replies = await rt.call(rt.commands.press, caller, query.data or "", old)
    first = replies[0] if replies else Reply()
    with contextlib.suppress(BadRequest):  # an answer to an expired query fails harmlessly
        await query.answer(first.toast[:200] or None)
    rest = replies[1:]
    chat_id = message.chat_id if message else update.effective_chat.id if update.effective_chat else None
    if first.edit and message is not None:
        try:
            if first.text:
                html = to_html(split(first.text, MAX_TEXT)[0])
                await retrying(lambda: message.edit_text(html, parse_mode=ParseMode.HTML,
                                                         reply_markup=keyboard(first.buttons),
                                                         link_preview_options=NO_PREVIEW), "editMessageText")
            elif not keyboard_equal(first.buttons, old):
                await retrying(lambda: message.edit_reply_markup(reply_markup=keyboard(first.buttons)),
                               "editMessageReplyMarkup")
        except BadRequest as exc:
            if "not modified" not in str(exc).lower():
                raise
    elif first.text or first.document:  # not an edit, or the message is too old to edit: send it anew
        rest = replies
    if rest and chat_id is not None:
        await answer(rt, context.bot, chat_id, caller.user_id, rest)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    where = ""
    if isinstance(update, Update):
        user = update.effective_user
        where = f" (update {update.update_id}, user {user.id if user else '?'})"
    log.error("error handling an update%s", where, exc_info=context.error)
    if isinstance(update, Update) and update.effective_chat and update.effective_chat.type == "private":
        with contextlib.suppress(TelegramError):
            await context.bot.send_message(update.effective_chat.id, "Sorry, something went wrong on my side. "
                                           "It has been logged; please try again in a moment.")


# -- delivery -------------------------------------------------------------------------------------------------------
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


# -- jobs and wiring ------------------------------------------------------------------------------------------------
async def ingest_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    rt = runtime(context)
    try:
        report = await rt.ingest()
    except Exception:
        log.exception("scheduled ingestion failed")
        return
    log.info("ingestion: %s", "no announcement" if report.announced is None else
             f"{report.announced}, {report.inserted} new papers")


async def warmup_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Load the models and embed what lacks vectors, on the worker, once polling is up."""
    rt = runtime(context)
    try:
        n = await rt.call(lambda: rt.commands.engine.embed_missing(progress=False))
        log.info("warm-up: embedded %d papers", n)
    except Exception:
        log.exception("warm-up failed; /similar and digests may be incomplete")


async def delivery_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    rt = runtime(context)
    await Deliverer(rt, context.bot).run()


async def set_commands(app: Application) -> None:
    await app.bot.set_my_commands([BotCommand(c.name, c.summary[:256]) for c in COMMANDS])


class RedactToken(logging.Filter):
    """Removes the bot token from every log record (httpx logs request URLs, which contain it)."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        if self.token:
            msg = record.getMessage()
            if self.token in msg:
                record.msg, record.args = msg.replace(self.token, "<token>"), ()
        return True


def protect_token(token: str) -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    f = RedactToken(token)
    for h in logging.getLogger().handlers:
        h.addFilter(f)


def build_application(rt: Runtime, pacer: Pacer | None = None, timeout: float = 10.0) -> Application:
    """The PTB Application with every handler; ``timeout`` bounds each Bot API request (then retried)."""
    s = rt.settings
    app = (ApplicationBuilder().token(s.telegram_token).base_url(s.telegram_api_url)
           .base_file_url(s.telegram_api_url.replace("/bot", "/file/bot"))
           .rate_limiter(pacer or Pacer()).concurrent_updates(64).connection_pool_size(128)
           .read_timeout(timeout).write_timeout(timeout).connect_timeout(timeout).pool_timeout(timeout)
           .post_init(set_commands).build())
    app.bot_data["runtime"] = rt
    app.add_handler(MessageHandler(filters.UpdateType.EDITED, on_edited))
    app.add_handler(MessageHandler(filters.ChatType.GROUPS & filters.COMMAND, on_group))
    app.add_handler(MessageHandler(filters.ChatType.PRIVATE & filters.TEXT, on_text))
    app.add_handler(MessageHandler(filters.ChatType.PRIVATE & ~filters.TEXT & ~filters.StatusUpdate.ALL, on_other))
    app.add_handler(CallbackQueryHandler(on_button))
    app.add_handler(ChatMemberHandler(on_membership, ChatMemberHandler.MY_CHAT_MEMBER))
    app.add_error_handler(on_error)
    return app


def schedule_jobs(app: Application, rt: Runtime, delivery_every: float = 60.0) -> None:
    jq = app.job_queue
    assert jq is not None, "install python-telegram-bot[job-queue]"
    jq.run_once(warmup_job, when=1, name="warm-up")
    jq.run_repeating(ingest_job, interval=rt.settings.ingest_interval_minutes * 60, first=5, name="ingest")
    jq.run_repeating(delivery_job, interval=delivery_every, first=10, name="deliver")


@contextlib.asynccontextmanager
async def running(rt: Runtime, pacer: Pacer | None = None, poll_timeout: float = 1.0,
                  jobs: bool = False) -> AsyncIterator[Application]:
    """Run the bot (long polling) inside an ``async with``, for tests, benchmarks and ``deliver``."""
    app = build_application(rt, pacer)
    async with app:
        await set_commands(app)
        if jobs:
            schedule_jobs(app, rt)
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0.0, timeout=int(max(poll_timeout, 0)) or 1,
                                        allowed_updates=Update.ALL_TYPES)
        try:
            yield app
        finally:
            await app.updater.stop()
            await app.stop()


def open_runtime(settings: Settings) -> Runtime:
    settings.ensure_home()
    store = Store(settings.db_path, taxonomy=settings.taxonomy_path)
    return Runtime(settings, store)


def run_telegram(settings: Settings) -> int:
    """``arxiv-digest run`` with a token: long polling until interrupted."""
    protect_token(settings.telegram_token)
    rt = open_runtime(settings)
    try:
        app = build_application(rt)
        schedule_jobs(app, rt)
        log.info("arxiv-digest bot polling %s", settings.telegram_api_url.rsplit("/bot", 1)[0])
        app.run_polling(allowed_updates=Update.ALL_TYPES)
    finally:
        rt.close()
        rt.store.close()
    return 0


def deliver_once(settings: Settings, now: bool = False) -> DeliveryReport:
    """``arxiv-digest deliver``: one delivery run over Telegram, then exit."""
    protect_token(settings.telegram_token)
    rt = open_runtime(settings)

    async def go() -> DeliveryReport:
        app = build_application(rt)
        async with app:
            return await Deliverer(rt, app.bot).run(force=now)

    try:
        return asyncio.run(go())
    finally:
        rt.close()
        rt.store.close()
