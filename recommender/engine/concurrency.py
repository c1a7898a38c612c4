"""The concurrency model of arxiv-digest (this docstring), and the Engine's writer lock.

Rule: replies never wait behind heavy or slow work. The reply path (commands, button presses, delivery runs)
only *reads* published state; everything heavy (ingestion, the warm-up, lookups of unknown ids, bulk
embedding, classification) builds new state elsewhere and *publishes* it atomically.

## Who owns what
- **Vector index** (:class:`recommender.embedding.vectors.VectorIndex`, one per embedding key) and **lexical
  index** (:class:`recommender.embedding.lexical.LexicalIndex`): in one process, one object per directory,
  held by the one :class:`recommender.engine.Engine` of that process (the bot, the terminal's warm-up and
  the commands share it; never open a second Engine on the same state directory in one process). Each index
  has one writer at a time (its writer lock); readers take no lock.
- **Engine**: its writer steps (``embed_missing``, ``refresh``, ``seed_vectors``, ``embed_ids``,
  ``sync_lexical``, ``reload_if_changed``) are serialised by one writer lock (:class:`WriterLock`), held only
  by background work; the reply path (``similar``, ``recommend``, ``digest``, ``profile``, ``embed_text``,
  ``vectors``, ``missing_vectors``) never takes it. ``ensure_papers`` (look-ups of unknown ids: blocks on
  arXiv, so it runs on a background thread) publishes its few new vectors through the index's own writer
  lock, held only for one part file and a swap, so a look-up is not queued behind a day's bulk embedding.
  ``vectors(ids)`` reads only: a few papers without a vector are encoded on the spot without being stored;
  more raise ``VectorsPending`` (rankings leave them out, logged) until a writer step (``embed_ids``) has
  embedded them. Encoding a one-line query is never queued behind bulk embedding: bulk embedding encodes in
  chunks of 32 with no engine lock, and the ONNX session and torch inference run on several threads at once.
- **SQLite store**: one connection per thread (WAL); rows committed by a writer are seen by the next read.
- **arXiv**: every API request of the process, and of every other process on the same state directory, takes
  one slot of one politeness budget (below).

## How readers see a consistent state
Each index keeps its searchable state (ids, row map, matrix; for tf-idf also the fitted vectoriser) in one
immutable snapshot object held in one attribute. A writer builds the next snapshot completely (new
arrays, new dicts; the old ones are never mutated), then swaps one reference. A reader takes the snapshot
once per operation and works on it alone, so it never sees a row map that disagrees with its matrix and
never waits for a writer.

## A separate process's writes (``arxiv-digest ingest``, ``embed``, ``fetch``)
They write the same files the bot reads, crash-safe (temp file + rename): new vector part files, a new tf-idf
pickle/matrix/ids, committed SQLite rows. Each snapshot remembers the file listing (names, sizes, mtimes)
it was built from; ``VectorIndex.reload_if_changed()``, ``LexicalIndex.reload_if_changed()`` and
``Engine.reload_if_changed()`` compare that with the directory (a ``stat`` per file, cheap) and, if it
changed, build a new snapshot from disk and swap it in. The bot calls ``Engine.reload_if_changed()`` on a
background thread after each of its own jobs and periodically, never on the reply path. Vector writers of
several processes are serialised by ``flock`` on ``<vectors dir>/write.lock``: part names are chosen under it
(strictly increasing, so "a later part wins" holds across processes), and compaction (merging the parts) first
reads the parts other processes wrote, so the merged file holds everything on disk before the parts go. A big
store's approximate graph (``ann-<rows>-<digest>.usearch``, see :mod:`recommender.embedding.ann`) is published
the same way by whichever writer holds the flock (a new file, then the old one removed; never changed in place),
and ``reload_if_changed`` maps the new file in, or builds/extends the graph itself when it is due.

## The one arXiv politeness budget
arXiv asks for one API request every ``api_delay`` seconds (3 s) from a client, overall. Every request of
every :class:`recommender.sources.arxiv.ArxivClient` reserves the next free slot from one limiter per API
host in the process, and from the file ``<home>/arxiv_budget`` (the time of the latest reserved slot,
updated under ``fcntl.flock``) shared by every process on that state directory: the bot, ``ingest``,
``fetch``, harvests. The reserved slot is ``max(now, previous slot + api_delay)``; the client waits for it,
and a send the machine delayed past its slot moves the latest slot to the actual send time.
A 429 / 503 with ``Retry-After`` pushes the shared slot out too, so no client hammers a throttling arXiv.
Interactive lookups may use a shorter timeout and fewer retries, never a shorter delay. The RSS feed
(another host, one request per ingestion) is not paced.

## Shutdown
``recommender.sources.arxiv.request_shutdown()`` sets one process-wide stop event: every budget wait, backoff
sleep and in-flight request of every client returns at once with :class:`~recommender.sources.arxiv.
ArxivShutdown` (an in-flight HTTP request is left to its own timeout on a daemon thread), and every later
call raises it immediately. ``ArxivClient.close()`` does the same for one client.

## The bot
(``bot.telegram.runtime``.) python-telegram-bot's handlers only put an update in its chat's serial queue and
return, so PTB's update slots are never held. Each chat's queue (one asyncio task while it has work; backlog
capped at 20, the excess answered once with a "slow down" note) answers in order, pacing included; different
chats run in parallel. Commands, button presses and delivery steps run on the *reply pool* (4 daemon threads,
each with its own SQLite connection: ``Store`` is one connection per thread, WAL, busy timeout): reads of
snapshots plus small writes (likes, settings). Ingestion (the RSS fetch included) runs in a *child
process* (spawned, niced, one at a time, :func:`recommender.engine.pipeline.run_ingest` with a store and
models of its own, exactly what ``arxiv-digest ingest`` does), driven from the *background worker*: its
parsing, storing, tf-idf and model feeding never compete with replies for the bot's GIL, and it publishes
through committed rows and the index files like any separate ingest process. The warm-up and other bulk
embedding / classification of the bot run on the background worker itself (one thread, niced; bulk
encoding uses its own ONNX session with one core fewer than the machine has); a Reply's ``followup`` (a paper the
store lacks: "fetching ..." is answered at once, the look-up and the command's outcome follow as a new
message) runs on the *look-up worker* (one thread), so it never queues behind ingestion. After every
background or look-up job the bot calls ``Engine.reload_if_changed()``. Jobs only start their work and return.
Shutdown (SIGINT/SIGTERM): PTB stops polling, then ``request_shutdown()`` makes arXiv calls raise, queued
chat work and jobs are cancelled, the pools take no more work and running work gets a ~2 s grace; a model
call still running is abandoned with the process (daemon threads; SQLite and the index files are crash-safe);
an ingestion child is terminated.
The terminal runs follow-ups right away, in line.
"""
from __future__ import annotations

import threading
from types import TracebackType
from typing import Self


class WriterLock:
    """The one writer lock of a component, with a name for logs and a check that the caller holds it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.RLock()
        self._owner: int | None = None
        self._depth = 0

    def __enter__(self) -> Self:
        self._lock.acquire()
        self._owner = threading.get_ident()
        self._depth += 1
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
        self._lock.release()

    @property
    def held(self) -> bool:
        """Whether the calling thread holds the lock."""
        return self._owner == threading.get_ident()

    @property
    def busy(self) -> bool:
        """Whether any thread holds the lock (a hint for logs; it may change at once)."""
        return self._owner is not None
