"""Approximate nearest-neighbour graph over a vector store's rows: usearch HNSW with int8 vectors, memory-mapped.

Chosen by measurement (``bench/bench_similar.py --libraries``: usearch, faiss-cpu and hnswlib on the same
real-derived MiniLM vectors, the ``libraries`` section of ``bench/results/bench_similar.json``). hnswlib keeps
fp32 vectors in RAM and cannot memory-map its file (1.46 GB of vectors alone at 1M: over the bot's memory goal)
and has had no release since 2023. faiss (HNSW + 8-bit scalar quantiser, memory-mapped with
``IO_FLAG_MMAP_IFC``) and usearch (HNSW, int8, ``view``) both serve a graph straight from its file at a quarter
of fp32's size; faiss was a little faster and more precise per ``ef`` at 50k, but its quantiser is *trained* on
the vectors present when the graph is built (per-dimension ranges: a store that grows from 50k to millions of
papers would be quantised with its first topics' ranges) and its HNSW cannot remove a key; usearch quantises a
unit vector without training, removes and renames keys, and is a small wheel. usearch it is, with M 32 and ef
256 (M 16 lost recall on the dense neighbourhoods of 135k vectors, whatever the ef). The graph only proposes
candidates: :class:`recommender.embedding.vectors.VectorIndex` rescores them exactly with the fp32 vectors, so
int8 costs no precision in the scores shown.

Keys are the store's *logical row numbers* (an id's row never changes: new ids are appended, a replaced vector
keeps its row, compaction keeps the order), so a graph over rows ``[0, rows)`` stays valid while the store
grows; the rows after it (the tail) are searched exactly until the graph is extended. A graph file is named
``ann-<rows>-<digest>.usearch``, the digest being a hash of the ids of those rows: the name says what the file
covers, is written through a temporary name and a rename (atomic), and a graph whose ids disagree with the
vectors (a crash, a deleted part) is recognised by its name and rebuilt. An :class:`AnnGraph` is never changed
once made: extending loads a writable copy, adds the tail, and saves a new file that readers then open. A
replaced vector (a new version of a paper) keeps its old place in the graph until a rebuild; it is rescored with
its new vector, and a new version's text rarely moves it far.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from usearch.index import Index

log = logging.getLogger(__name__)

LIBRARY = "usearch"
DTYPE = "i8"  # the graph's own copy of the vectors; exact scores come from the fp32 store
CONNECTIVITY = 32  # HNSW "M" (16 gave recall@10 0.75 at 135k real-derived vectors, 32: 0.995 at ef 256)
EXPANSION_ADD = 128  # HNSW "efConstruction"
EXPANSION_SEARCH = 256  # HNSW "ef" per query (bench_similar: recall@10 0.998 at 50k; see its JSON for 135k)
EXPANSION_PER_ROWS = 500  # ...and at least one per this many rows: a bigger graph needs a wider search
EXPANSION_MAX = 4096


def expansion_for(rows: int) -> int:
    """The search width for a graph of ``rows``: at 1M real-derived vectors ef 256 found recall@10 0.70, 512 0.82,
    1024 0.92 and 2048 0.97 (p50 9 ms on this CPU; bench_similar), at 135k ef 256 already 0.9997."""
    return int(min(EXPANSION_MAX, max(EXPANSION_SEARCH, rows // EXPANSION_PER_ROWS)))


_NAME = re.compile(r"^ann-(\d{12})-([0-9a-f]{16})\.usearch$")
_ADD_CHUNK = 65_536

RowReader = Callable[[int, int], np.ndarray]  # (start, stop) -> fp32 vectors of logical rows [start, stop)


def ids_digest(ids: Sequence[str], rows: int) -> str:
    """A hash of the first ``rows`` ids, in order: what a graph file covers."""
    h = hashlib.blake2b(digest_size=8)
    for start in range(0, rows, 65_536):
        h.update("\n".join(ids[start:min(rows, start + 65_536)]).encode())
        h.update(b"\n")
    return h.hexdigest()


def file_name(rows: int, digest: str) -> str:
    return f"ann-{rows:012d}-{digest}.usearch"


def parse_name(name: str) -> tuple[int, str] | None:
    """(rows, digest) of a graph file's name, or None for another file."""
    m = _NAME.match(name)
    return (int(m.group(1)), m.group(2)) if m else None


def graph_files(directory: Path) -> Iterator[Path]:
    return (p for p in directory.glob("ann-*.usearch") if parse_name(p.name) is not None)


@dataclass(frozen=True, eq=False)
class AnnGraph:
    """An immutable HNSW graph over logical rows ``[0, rows)``, usually a memory-mapped view of ``path``."""

    index: Index
    rows: int
    path: Path | None

    @property
    def file_bytes(self) -> int:
        return self.path.stat().st_size if self.path is not None and self.path.exists() else 0

    def search(self, query: np.ndarray, count: int) -> np.ndarray:
        """Up to ``count`` candidate rows for one query (unordered; the caller rescores them exactly)."""
        if self.rows == 0 or count <= 0:
            return np.zeros(0, dtype=np.int64)
        # the graph explores max(its expansion_search, count) candidates: a bigger ``count`` searches wider
        found = self.index.search(np.asarray(query, dtype=np.float32), min(count, self.rows), threads=1)
        keys = np.asarray(found.keys, dtype=np.int64)
        return keys[(keys >= 0) & (keys < self.rows)]

    @classmethod
    def open(cls, path: Path) -> AnnGraph:
        """A read-only, memory-mapped view of a saved graph (raises if the file is unreadable)."""
        from usearch.index import Index

        parsed = parse_name(path.name)
        if parsed is None:
            raise ValueError(f"{path} is not a graph file")
        index = Index.restore(str(path), view=True, expansion_search=expansion_for(parsed[0]))
        if index is None or len(index) != parsed[0]:
            raise ValueError(f"{path}: holds {None if index is None else len(index)} rows, its name says {parsed[0]}")
        return cls(index, parsed[0], path)

    def extended(self, read: RowReader, rows: int, ndim: int) -> AnnGraph:
        """A new, writable graph over ``[0, rows)``: this one's file loaded into memory plus the tail rows."""
        from usearch.index import Index

        if self.path is None or self.rows == 0:
            return build(read, rows, ndim)
        index = Index(ndim=ndim, metric="cos", dtype=DTYPE, connectivity=CONNECTIVITY,
                      expansion_add=EXPANSION_ADD, expansion_search=expansion_for(rows))
        index.load(str(self.path))
        _add_rows(index, read, self.rows, rows)
        return AnnGraph(index, rows, None)

    def save(self, directory: Path, digest: str) -> Path:
        """Write this graph as ``ann-<rows>-<digest>.usearch`` (temporary name, then rename); returns the path."""
        path = directory / file_name(self.rows, digest)
        tmp = directory / f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp"
        self.index.save(str(tmp))
        os.replace(tmp, path)
        return path


def _add_rows(index: Index, read: RowReader, start: int, stop: int) -> None:
    threads = os.cpu_count() or 1
    for s in range(start, stop, _ADD_CHUNK):
        e = min(stop, s + _ADD_CHUNK)
        index.add(np.arange(s, e, dtype=np.uint64), np.ascontiguousarray(read(s, e), dtype=np.float32),
                  threads=threads)


def build(read: RowReader, rows: int, ndim: int) -> AnnGraph:
    """A new, writable graph over logical rows ``[0, rows)``."""
    from usearch.index import Index

    index = Index(ndim=ndim, metric="cos", dtype=DTYPE, connectivity=CONNECTIVITY, expansion_add=EXPANSION_ADD,
                  expansion_search=expansion_for(rows))
    _add_rows(index, read, 0, rows)
    return AnnGraph(index, rows, None)
