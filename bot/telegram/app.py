"""Wiring of the Telegram front end: the PTB Application with every handler, the JobQueue jobs (warm-up,
ingestion every ``ingest_interval_minutes``, a delivery run every minute), token redaction in logs, and the
``run`` / ``deliver`` entry points.

Jobs only start their work (on the runtime's background worker or as a task) and return, so stopping the
bot never waits for them. ``run`` stops on SIGINT or SIGTERM within a few seconds whatever arXiv does:
python-telegram-bot stops polling, :func:`stop_runtime` makes arXiv requests give up and cancels queued
work, and a model call still running after a short grace is abandoned with the process.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator

from telegram import BotCommand, Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ChatMemberHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.commands import COMMANDS
from bot.pacing import Pacer
from bot.telegram.delivery import Deliverer, DeliveryReport, delivery_job
from bot.telegram.documents import on_document
from bot.telegram.groups import on_migrate
from bot.telegram.handlers import on_button, on_edited, on_error, on_group, on_membership, on_other, on_text
from bot.telegram.redact import protect_token
from bot.telegram.runtime import Runtime, open_runtime, runtime
from bot.telegram.updates import ScreeningRequest
from recommender.config import Settings

log = logging.getLogger(__name__)


async def ingest_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Start an ingestion run on the background worker (unless one is going) and return at once."""
    rt = runtime(context)
    rt.spawn(_ingest(rt), "ingest", exclusive=True)


async def _ingest(rt: Runtime) -> None:
    try:
        report = await rt.ingest()
    except Exception:
        log.exception("scheduled ingestion failed")
        return
    log.info("ingestion: %s", "no announcement" if report.announced is None else
             f"{report.announced}, {report.inserted} new papers")


async def warmup_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Load the models and embed what lacks vectors, on the background worker, once polling is up."""
    rt = runtime(context)

    async def warm() -> None:
        try:
            n = await rt.in_background(rt.warm_up)
            log.info("warm-up: embedded %d papers", n)
        except Exception:
            log.exception("warm-up failed; /similar and digests may be incomplete")
    rt.spawn(warm(), "warm-up", exclusive=True)


async def deliver_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Start a delivery run (it skips itself while another one is going) and return at once, so a stopping
    bot never waits for a run that paces thousands of messages."""
    rt = runtime(context)
    rt.spawn(delivery_job(context), "deliver", exclusive=True)


async def stop_runtime(app: Application) -> None:
    """``post_stop`` of ``run``: arXiv requests give up, queued replies and jobs are cancelled."""
    rt: Runtime = app.bot_data["runtime"]
    rt.request_shutdown()
    await rt.cancel_tasks()


async def set_commands(app: Application) -> None:
    await app.bot.set_my_commands([BotCommand(c.name, c.summary[:256]) for c in COMMANDS])


def build_application(rt: Runtime, pacer: Pacer | None = None, timeout: float = 10.0) -> Application:
    """The PTB Application with every handler; ``timeout`` bounds each Bot API request (then retried)."""
    s = rt.settings
    app = (ApplicationBuilder().token(s.telegram_token).base_url(s.telegram_api_url)
           .base_file_url(s.telegram_api_url.replace("/bot", "/file/bot"))
           .rate_limiter(pacer or Pacer()).concurrent_updates(64).connection_pool_size(128)
           .read_timeout(timeout).write_timeout(timeout).connect_timeout(timeout).pool_timeout(timeout)
           .get_updates_request(ScreeningRequest())  # one malformed update is skipped, not retried forever
           .post_init(set_commands).post_stop(stop_runtime).build())
    app.bot_data["runtime"] = rt
    app.add_handler(MessageHandler(filters.UpdateType.EDITED, on_edited))
    app.add_handler(MessageHandler(filters.ChatType.GROUPS & filters.COMMAND, on_group))
    app.add_handler(MessageHandler(filters.ChatType.PRIVATE & filters.TEXT, on_text))
    app.add_handler(MessageHandler(filters.ChatType.PRIVATE & filters.Document.ALL, on_document))  # a library
    app.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, on_migrate))  # a group became a supergroup
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
    jq.run_repeating(deliver_job, interval=delivery_every, first=10, name="deliver")


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
            await rt.cancel_tasks()  # what the chats and jobs still had queued
            await app.updater.stop()
            await app.stop()


def run_telegram(settings: Settings) -> int:
    """``arxiv-digest run`` with a token: long polling until interrupted."""
    protect_token(settings.telegram_token)
    rt = open_runtime(settings)
    try:
        app = build_application(rt)
        schedule_jobs(app, rt)
        log.info("arxiv-digest bot polling %s", settings.telegram_api_url.rsplit("/bot", 1)[0])
        app.run_polling(allowed_updates=Update.ALL_TYPES)  # SIGINT / SIGTERM stop it, then stop_runtime runs
    finally:
        finished = rt.close(grace=2.0)  # never waits for arXiv; a running job gets two seconds
        rt.store.close()
    if not finished:  # a model call cannot be interrupted: leave it rather than wait for it
        log.info("exiting with a background job unfinished")
        logging.shutdown()
        os._exit(0)
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
