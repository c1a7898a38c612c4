"""Where the Telegram bot's work runs: the reply pool, the background worker and per-chat serial queues.

:class:`Runtime` is what handlers and jobs share (settings, the store, the commands) and decides where each
piece of work runs, so that a reply never waits behind heavy work or behind another chat:

- the *reply pool* (:meth:`Runtime.call`, a few threads) runs commands, button presses and delivery steps:
  reads plus small writes (likes, settings), each on the thread's own store connection;
- the *background worker* (:meth:`Runtime.in_background`) runs ingestion (the feed fetch included), the
  warm-up and bulk embedding and classification; the *look-up worker* runs a Reply's ``followup`` (papers
  the store lacks, fetched from arXiv), so a look-up never waits behind a long job; after each, the engine
  is asked to pick up what changed (``reload_if_changed``);
- :class:`ChatQueues` answers each chat's updates in order on the event loop, different chats in parallel;
  a handler only enqueues and returns, so per-chat pacing never holds python-telegram-bot's update slots,
  and a chat that floods the bot gets its backlog capped and one "slow down" note.

All threads are daemon threads and :meth:`Runtime.close` does not wait for them: a shutdown never waits for
arXiv or for a half-done embedding (SQLite rolls an interrupted transaction back; vector files are written
crash-safe). :func:`runtime` finds the Runtime in a handler's context; :func:`open_runtime` builds one.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import logging
import multiprocessing
import multiprocessing.process
import os
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from telegram.ext import ContextTypes

from bot.commands import Commands
from recommender.config import Settings
from recommender.sources import arxiv
from recommender.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")

REPLY_THREADS = 4
BACKGROUND_NICE = 10
MAX_BACKLOG = 20  # updates of one chat waiting to be answered; more get one "slow down" note


class DaemonPool:
    """A minimal executor of daemon threads: ``submit`` returns a concurrent Future; ``shutdown`` never
    waits (queued work is cancelled), and the interpreter does not join these threads at exit."""

    def __init__(self, threads: int, name: str, nice: int = 0) -> None:
        self.nice = nice
        self._work: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], Callable[[], Any]] | None] = \
            queue.SimpleQueue()
        self._closed = False
        self._threads = [threading.Thread(target=self._loop, name=f"{name}-{k}", daemon=True)
                         for k in range(threads)]
        for t in self._threads:
            t.start()

    def _loop(self) -> None:
        if self.nice:  # Linux: a thread's own priority; thread pools a model starts here inherit it
            with contextlib.suppress(OSError, AttributeError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
        while True:
            item = self._work.get()
            if item is None:
                return
            future, fn = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # noqa: BLE001  (handed to whoever awaits the future)
                future.set_exception(exc)

    def submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        if self._closed:
            raise RuntimeError("the bot is shutting down")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._work.put((future, fn))
        return future

    def shutdown(self) -> None:
        self._closed = True
        while True:  # cancel what has not started
            try:
                item = self._work.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[0].cancel()
        for _ in self._threads:
            self._work.put(None)

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the threads to end; True if they all did."""
        end = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, end - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)


class ChatQueues:
    """Per-chat serial queues of coroutines on the event loop: one chat's updates run in order, different
    chats in parallel. A chat with ``backlog`` updates waiting gets no more queued until it drains; the
    first refused update of such a burst triggers ``overflow`` (a "slow down" note) once."""

    def __init__(self, backlog: int = MAX_BACKLOG) -> None:
        self.backlog = backlog
        self.waiting: dict[int, collections.deque[Callable[[], Awaitable[None]]]] = {}
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.notes: dict[Any, asyncio.Task[None]] = {}  # "slow down" notes being sent
        self.warned: set[int] = set()
        self.refused = 0  # updates dropped over the backlog, for logs and benchmarks

    def submit(self, chat_id: int, work: Callable[[], Awaitable[None]],
               overflow: Callable[[], Coroutine[Any, Any, None]] | None = None, force: bool = False) -> bool:
        """Queue ``work`` for ``chat_id``; False if the chat's backlog is full (``force`` ignores the cap)."""
        waiting = self.waiting.setdefault(chat_id, collections.deque())
        if len(waiting) >= self.backlog and not force:
            self.refused += 1
            if chat_id not in self.warned:
                self.warned.add(chat_id)
                log.info("chat %s has %d updates waiting; refusing more until it drains", chat_id, len(waiting))
                if overflow is not None:
                    _spawn(self.notes, chat_id, overflow())
            return False
        waiting.append(work)
        if chat_id not in self.tasks:
            self.tasks[chat_id] = asyncio.get_running_loop().create_task(self._drain(chat_id))
        return True

    async def _drain(self, chat_id: int) -> None:
        waiting = self.waiting[chat_id]
        try:
            while waiting:
                work = waiting.popleft()
                if not waiting:
                    self.warned.discard(chat_id)
                try:
                    await work()
                except asyncio.CancelledError:
                    raise
                except Exception:  # the work reports its own errors; this only keeps the queue alive
                    log.exception("queued work for chat %s failed", chat_id)
        finally:
            self.tasks.pop(chat_id, None)
            if not waiting:
                self.waiting.pop(chat_id, None)
            self.warned.discard(chat_id)

    def pending(self) -> int:
        return sum(len(q) for q in self.waiting.values()) + len(self.tasks)

    async def cancel(self) -> None:
        tasks = [*self.tasks.values(), *self.notes.values()]
        for t in tasks:
            t.cancel()
        self.waiting.clear()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)


def _spawn(registry: dict[Any, asyncio.Task[None]], key: Any, coro: Coroutine[Any, Any, None]) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    registry[key] = task
    task.add_done_callback(lambda t: registry.pop(key, None) if registry.get(key) is t else None)


class Runtime:
    """What handlers and jobs share: settings, the store, the commands, the reply pool, the background worker
    and the per-chat queues."""

    def __init__(self, settings: Settings, store: Store, commands: Commands | None = None,
                 reply_threads: int = REPLY_THREADS, backlog: int = MAX_BACKLOG,
                 ingest_process: bool = False) -> None:
        self.settings = settings
        self.store = store
        # True (the bot, `open_runtime`): ingestion runs in a child process of its own, so its Python work
        # (parsing, storing, tf-idf, feeding the models) never competes with replies for this process's GIL;
        # False: on the background worker (tests that inject their own engine into the commands)
        self.ingest_process = ingest_process
        self.children: set[multiprocessing.process.BaseProcess] = set()
        self.commands = commands or Commands(settings, store)
        self.replies = DaemonPool(reply_threads, "arxiv-digest-reply")
        # heavy work runs at a lower CPU priority, so on a small machine the event loop and the reply pool
        # get the cores first (and so do the model thread pools the warm-up starts on this thread)
        self.background = DaemonPool(1, "arxiv-digest-background", nice=BACKGROUND_NICE)
        # follow-ups (look-ups) get their own thread: never queued behind a long job
        self.lookups = DaemonPool(1, "arxiv-digest-lookup", nice=BACKGROUND_NICE)
        self.chats = ChatQueues(backlog)
        self.delivery_lock = asyncio.Lock()
        self.tasks: dict[Any, asyncio.Task[None]] = {}  # background coroutines (jobs, follow-ups)
        self._ids = iter(range(1 << 62))
        self.closed = False

    # -- where work runs -----------------------------------------------------------------------------------
    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` on the reply pool (commands, presses, delivery steps: reads and small writes)."""
        return await asyncio.wrap_future(self.replies.submit(lambda: fn(*args, **kwargs)))

    async def in_background(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` on the background worker (ingestion, warm-up, bulk embedding and classification), then
        let the engine pick up what the job published."""
        return await self._off_reply_path(self.background, lambda: fn(*args, **kwargs))

    async def _off_reply_path(self, pool: DaemonPool, fn: Callable[[], T]) -> T:
        def job() -> T:
            try:
                return fn()
            finally:
                self._reload_engine()
        return await asyncio.wrap_future(pool.submit(job))

    def spawn(self, coro: Coroutine[Any, Any, None], name: str = "task", exclusive: bool = False) -> bool:
        """Run a coroutine on the event loop without anyone awaiting it (jobs, follow-ups); cancelled by
        :meth:`cancel_tasks`. ``exclusive``: not if a task of that name is still running (returns False)."""
        if exclusive and any(key[0] == name for key in self.tasks):
            coro.close()
            log.info("%s is still running; not starting another", name)
            return False
        _spawn(self.tasks, (name, next(self._ids)), coro)
        return True

    def followup(self, fn: Callable[[], list[Any]], then: Callable[[list[Any]], object]) -> None:
        """Run a Reply's ``followup`` (a look-up on arXiv, then the command) on the look-up worker, a
        background thread of its own so it never waits behind ingestion, then hand its Replies to ``then``
        (on the event loop; the Telegram front end queues them for the chat)."""
        async def go() -> None:
            try:
                replies = await self._off_reply_path(self.lookups, fn)
            except Exception:
                log.exception("a follow-up failed")
                return
            then(replies)
        self.spawn(go(), "follow-up")

    def _reload_engine(self) -> None:
        engine = self.commands.loaded_engine  # only if already loaded: never load it for this
        if engine is None:
            return
        try:
            engine.reload_if_changed()
        except Exception:
            log.warning("engine reload after a background job failed", exc_info=True)

    # -- jobs ------------------------------------------------------------------------------------------------
    async def ingest(self) -> Any:
        """One ingestion run on the background worker: fetch the feed, store it, embed and classify it."""
        return await self.in_background(self.ingest_once)

    def ingest_once(self) -> Any:
        """One ingestion run (blocking; the bot runs it through :meth:`in_background`): in a child process
        when ``ingest_process`` is set, else on this thread with the commands' own engine and classifier."""
        if self.ingest_process:
            return self._ingest_in_child()
        from recommender.engine.pipeline import fetch_feed, ingest, model_steps

        feed = fetch_feed(self.settings, self.store)
        engine = None
        try:
            engine = self.commands.engine
        except Exception:
            log.exception("no embedding engine for ingestion")
        steps = model_steps(self.store, engine, lambda: self.commands.classifier)
        return ingest(self.settings, self.store, feed, embed=steps.get("embed"), classify=steps.get("classify"))

    def _ingest_in_child(self) -> Any:
        """Run :func:`recommender.engine.pipeline.run_ingest` in a spawned child process at low priority and
        return its report. The child publishes through the store and the index files; the engine of this
        process picks them up after the job (``reload_if_changed``). A shutdown terminates the child."""
        ctx = multiprocessing.get_context("spawn")
        receive, send = ctx.Pipe(duplex=False)
        quiet = dataclasses.replace(self.settings, telegram_token="")  # the child never talks to Telegram
        child = ctx.Process(target=_ingest_child, args=(quiet, send), name="arxiv-digest-ingest",
                            daemon=True)
        child.start()
        send.close()
        self.children.add(child)
        try:
            while not receive.poll(0.5):
                if self.closed:
                    child.terminate()
                    raise RuntimeError("ingestion stopped: the bot is shutting down")
                if not child.is_alive():
                    raise RuntimeError(f"the ingestion process ended with exit code {child.exitcode}")
            ok, value = receive.recv()
        finally:
            child.join(timeout=5)
            self.children.discard(child)
        if not ok:
            raise RuntimeError(f"ingestion failed in its process: {value}")
        return value

    def warm_up(self) -> int:
        """Load the models and embed what lacks vectors (blocking; run it through :meth:`in_background`)."""
        engine = self.commands.engine
        n = int(engine.embed_missing(progress=False, limit=self.commands.settings.warmup_embed_limit))
        try:
            self.commands.classifier.predict("warm-up", "")  # its thread pool starts here, at low priority
        except Exception:
            log.warning("no classifier: /classify and predicted categories are unavailable", exc_info=True)
        return n

    # -- shutdown --------------------------------------------------------------------------------------------
    async def cancel_tasks(self) -> None:
        """Cancel what is queued on the event loop (chats' updates, jobs, follow-ups) and wait briefly for
        the cancellations; work already on a thread is not waited for."""
        await self.chats.cancel()
        tasks = list(self.tasks.values())
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)

    def request_shutdown(self) -> None:
        """The process is stopping: every arXiv request in it gives up at once (process-wide, see
        :func:`recommender.sources.arxiv.request_shutdown`) and both pools stop taking work."""
        arxiv.request_shutdown()
        self._stop_pools()

    def _stop_pools(self) -> None:
        for child in list(self.children):  # an ingestion in its own process stops with the bot
            child.terminate()
        if not self.closed:
            self.closed = True
            for pool in (self.replies, self.background, self.lookups):
                pool.shutdown()

    def close(self, grace: float = 2.0) -> bool:
        """Stop both pools without waiting for queued work; gives running work ``grace`` seconds to end and
        returns whether it did (daemon threads still running die with the process)."""
        self._stop_pools()
        done = all([pool.join(grace / 3) for pool in (self.replies, self.background, self.lookups)])
        if not done:
            log.info("background work still running at shutdown; it is abandoned")
        return done


def _ingest_child(settings: Settings, send: Any) -> None:
    """The child process of :meth:`Runtime._ingest_in_child`: one whole ingestion, its report sent back."""
    from recommender.engine.pipeline import run_ingest

    with contextlib.suppress(OSError):
        os.nice(BACKGROUND_NICE)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s[ingest]: %(message)s",
                        handlers=[logging.FileHandler(settings.home / "bot.log", encoding="utf-8")])
    try:
        result: tuple[bool, Any] = (True, run_ingest(settings))
    except BaseException as exc:  # reported to the parent, which logs it
        logging.getLogger(__name__).exception("ingestion failed")
        result = (False, f"{type(exc).__name__}: {exc}")
    send.send(result)
    send.close()


def runtime(context: ContextTypes.DEFAULT_TYPE) -> Runtime:
    rt: Runtime = context.application.bot_data["runtime"]
    return rt


def open_runtime(settings: Settings) -> Runtime:
    settings.ensure_home()
    store = Store(settings.db_path, taxonomy=settings.taxonomy_path)
    return Runtime(settings, store, ingest_process=True)
