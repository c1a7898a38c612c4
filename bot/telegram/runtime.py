"""What the Telegram front end's handlers and jobs share: settings, the store, the commands, the workers.

:func:`runtime` finds it in a handler's context; :func:`open_runtime` builds it for ``run`` and ``deliver``.
"""
from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Callable, TypeVar

from telegram.ext import ContextTypes

from bot.commands import Commands
from recommender.config import Settings
from recommender.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")


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
        from recommender.sources.arxiv import ArxivClient

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
        from recommender.engine.pipeline import ingest, model_steps

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


def open_runtime(settings: Settings) -> Runtime:
    settings.ensure_home()
    store = Store(settings.db_path, taxonomy=settings.taxonomy_path)
    return Runtime(settings, store)
