"""Vector store: paper ids and their L2-normalised float32 vectors in Arrow IPC files, with exact top-k search.

One directory per embedding key (model name + dimension + variant), so vectors of two models never mix;
``meta.json`` names the key. Each :meth:`VectorIndex.add` writes one new part file (``part-*.arrow``: columns
``id`` string and ``vector`` fixed-size list of float32) through a temporary name and a rename, so a crash
leaves either the whole part or none; a later part wins for an id written twice. :meth:`compact` merges the
parts into one file, which is then memory-mapped without copying on load. Search is brute force (a matrix
product, ``argpartition``, then a sort of the k best): exact, and ~10 ms per query at 250k x 384 on 2 cores.

Concurrency (see :mod:`recommender.engine.concurrency`): the searchable state lives in one immutable
:class:`VectorSnapshot` (ids, row map, matrix, and the part files it was built from). Writers (``add``,
``compact``, ``import_file``, ``reload_if_changed``) hold the index's writer lock, plus ``flock`` on
``write.lock`` in the directory against writers in other processes, build the next snapshot completely and
swap one reference; readers take the snapshot once and never lock. :meth:`VectorIndex.reload_if_changed`
picks up parts another process wrote.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from pyarrow import ipc

log = logging.getLogger(__name__)

COMPACT_AFTER_PARTS = 32
_QUERY_CHUNK = 256  # queries scored at once in batch search (bounds the score matrix's memory)

FileStamp = tuple[str, int, int]  # (part file name, size, mtime_ns): what a snapshot was built from


class KeyMismatch(RuntimeError):
    """The directory holds vectors of another model than the one asked for."""


def _schema(dim: int) -> pa.Schema:
    return pa.schema([("id", pa.string()), ("vector", pa.list_(pa.float32(), dim))])


def _read_part(path: Path, dim: int) -> tuple[list[str], np.ndarray]:
    with pa.memory_map(str(path), "r") as source:
        table = ipc.open_file(source).read_all()
    ids = table.column("id").to_pylist()
    col = table.column("vector").combine_chunks()
    flat = col.values.to_numpy(zero_copy_only=False) if len(col) else np.zeros(0, np.float32)
    return ids, np.asarray(flat, dtype=np.float32).reshape(len(ids), dim)


def _frozen(matrix: np.ndarray) -> np.ndarray:
    """The matrix made read-only, so a snapshot's array can never be changed in place by mistake."""
    if matrix.flags.writeable:
        matrix.flags.writeable = False
    return matrix


@dataclass(frozen=True, eq=False)
class VectorSnapshot:
    """One consistent, immutable state of an index: ``ids[r]`` is the id of ``matrix[r]``, ``row[id] == r``.

    Nothing here is ever mutated after construction; writers make a new snapshot."""

    dim: int
    ids: list[str]
    row: Mapping[str, int]
    matrix: np.ndarray
    files: tuple[FileStamp, ...] = ()

    @classmethod
    def empty(cls, dim: int) -> VectorSnapshot:
        return cls(dim, [], {}, _frozen(np.zeros((0, dim), dtype=np.float32)))

    @classmethod
    def build(cls, dim: int, ids: list[str], matrix: np.ndarray, files: tuple[FileStamp, ...]) -> VectorSnapshot:
        """A snapshot from rows in write order; for an id that appears twice the later row wins."""
        row: dict[str, int] = {}
        for r, pid in enumerate(ids):
            row[pid] = r
        if len(row) != len(ids):
            keep = np.array(sorted(row.values()), dtype=np.int64)
            matrix = matrix[keep]
            ids = [ids[r] for r in keep]
            row = {pid: r for r, pid in enumerate(ids)}
        return cls(dim, ids, row, _frozen(matrix), files)

    def with_vectors(self, ids: Sequence[str], vecs: np.ndarray, files: tuple[FileStamp, ...]) -> VectorSnapshot:
        """The next snapshot: ``ids`` added or (already present) replaced; this one is left untouched."""
        last = {pid: i for i, pid in enumerate(ids)}  # an id twice in one batch: the later row wins
        row = dict(self.row)
        fresh_ids: list[str] = []
        fresh_src: list[int] = []
        replace_rows: list[int] = []
        replace_src: list[int] = []
        for pid, i in last.items():
            r = row.get(pid)
            if r is None:
                row[pid] = len(self.ids) + len(fresh_ids)
                fresh_ids.append(pid)
                fresh_src.append(i)
            else:
                replace_rows.append(r)
                replace_src.append(i)
        if fresh_ids:
            matrix = np.concatenate([self.matrix, vecs[fresh_src]])  # a new array
        elif replace_rows:
            matrix = self.matrix.copy()
        else:
            matrix = self.matrix
        if replace_rows:
            matrix[replace_rows] = vecs[replace_src]
        return VectorSnapshot(self.dim, self.ids + fresh_ids, row, _frozen(matrix), files)

    # -- reads ------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, paper_id: object) -> bool:
        return paper_id in self.row

    def missing(self, ids: Iterable[str]) -> list[str]:
        return [i for i in ids if i not in self.row]

    def rows(self, ids: Sequence[str]) -> np.ndarray:
        """Row numbers of ``ids`` (KeyError for an id without a vector)."""
        return np.array([self.row[i] for i in ids], dtype=np.int64)

    def get(self, ids: Sequence[str]) -> np.ndarray:
        """Vectors of ``ids`` in order, shape (len(ids), dim); KeyError for an id without a vector."""
        if not len(ids):
            return np.zeros((0, self.dim), dtype=np.float32)
        out: np.ndarray = self.matrix[self.rows(ids)]
        return out

    def search_many(self, queries: np.ndarray, k: int = 10, exclude: Sequence[set[str]] | None = None,
                    candidates: Sequence[str] | None = None) -> list[list[tuple[str, float]]]:
        """Exact top-k for many queries at once (one matrix product per chunk of queries)."""
        q = np.asarray(queries, dtype=np.float32).reshape(-1, self.dim)
        if candidates is None:
            mat, ids = self.matrix, self.ids
        else:
            cands = [c for c in dict.fromkeys(candidates) if c in self.row]
            mat, ids = self.get(cands), cands
        out: list[list[tuple[str, float]]] = []
        if not len(ids):
            return [[] for _ in range(len(q))]
        for start in range(0, len(q), _QUERY_CHUNK):
            scores = q[start:start + _QUERY_CHUNK] @ mat.T
            for j, row in enumerate(scores):
                ex = exclude[start + j] if exclude is not None and start + j < len(exclude) else set()
                out.append(top_k(row, ids, k, ex, self.row if candidates is None else None))
        return out


class VectorIndex:
    """All vectors of one embedding key: an immutable snapshot in memory for search, Arrow files on disk."""

    def __init__(self, directory: Path | str, key: str, dim: int, load: bool = True) -> None:
        """``load=False``: an append-only writer for bulk jobs; it reads no vectors and keeps none of those it
        adds in memory (its snapshot stays empty), so its memory does not grow with the store; readers pick
        its parts up with :meth:`reload_if_changed`, and :func:`stored_ids` says which ids have vectors."""
        self.directory = Path(directory)
        self._append_only = not load
        self.key = key
        self.dim = int(dim)
        self._writer = threading.RLock()
        self._last_name = 0
        self._check_meta()
        with self._writer, self._flock():
            for stale in self.directory.glob("*.tmp"):  # only a crashed writer leaves these (writers hold flock)
                stale.unlink(missing_ok=True)
            self._snap = self._read_snapshot() if load else VectorSnapshot.empty(self.dim)

    # -- the snapshot readers use ------------------------------------------------------------------------
    def snapshot(self) -> VectorSnapshot:
        """The current state; take it once and work on it (it never changes)."""
        return self._snap

    @property
    def ids(self) -> list[str]:
        return self._snap.ids

    @property
    def matrix(self) -> np.ndarray:
        return self._snap.matrix

    # -- disk -------------------------------------------------------------------------------------------
    def _check_meta(self) -> None:
        meta_path = self.directory / "meta.json"
        if meta_path.is_file():
            meta = json.loads(meta_path.read_text())
            if meta.get("key") != self.key or int(meta.get("dim", -1)) != self.dim:
                raise KeyMismatch(f"{self.directory} holds vectors of {meta.get('key')!r} "
                                  f"(dim {meta.get('dim')}), not {self.key!r} (dim {self.dim})")
        else:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = meta_path.with_name(f"meta.json.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps({"key": self.key, "dim": self.dim}))
            os.replace(tmp, meta_path)

    @contextmanager
    def _flock(self) -> Iterator[None]:
        """Exclusive against vector writers of other processes on this directory."""
        self.directory.mkdir(parents=True, exist_ok=True)  # the first write into a new index directory
        with open(self.directory / "write.lock", "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _listing(self) -> tuple[FileStamp, ...]:
        out: list[FileStamp] = []
        for p in sorted(self.directory.glob("part-*.arrow")):
            try:
                st = p.stat()
            except FileNotFoundError:  # compacted away meanwhile
                continue
            out.append((p.name, st.st_size, st.st_mtime_ns))
        return tuple(out)

    def _read_snapshot(self) -> VectorSnapshot:
        for _attempt in range(5):
            files = self._listing()
            try:
                loaded = [_read_part(self.directory / name, self.dim) for name, _, _ in files]
            except FileNotFoundError:  # another process compacted between listing and reading: list again
                continue
            if not loaded:
                return VectorSnapshot.empty(self.dim)
            if len(loaded) == 1:
                ids, mat = loaded[0]
            else:
                ids = [i for part_ids, _ in loaded for i in part_ids]
                mat = np.concatenate([m for _, m in loaded]) if ids else np.zeros((0, self.dim), np.float32)
            snap = VectorSnapshot.build(self.dim, ids, mat, files)
            log.debug("loaded %d vectors of %s from %d part(s)", len(snap), self.key, len(files))
            return snap
        raise RuntimeError(f"{self.directory}: part files kept changing while being read")

    def _stamp(self, path: Path) -> FileStamp:
        st = path.stat()
        return (path.name, st.st_size, st.st_mtime_ns)

    def _part_path(self) -> Path:
        # chosen under flock and strictly increasing, so "a later part wins" also holds across processes
        stamp = max(time.time_ns(), self._last_name + 1)
        newest = self._listing()
        if newest and newest[-1][0][5:25].isdigit():
            stamp = max(stamp, int(newest[-1][0][5:25]) + 1)
        self._last_name = stamp
        return self.directory / f"part-{stamp:020d}.arrow"

    def _write(self, path: Path, ids: Sequence[str], vecs: np.ndarray) -> None:
        flat = pa.array(np.ascontiguousarray(vecs, dtype=np.float32).reshape(-1), type=pa.float32())
        table = pa.Table.from_arrays(
            [pa.array(list(ids), type=pa.string()), pa.FixedSizeListArray.from_arrays(flat, self.dim)],
            schema=_schema(self.dim))
        tmp = path.with_name(path.name + ".tmp")
        with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        os.replace(tmp, path)

    # -- writers ----------------------------------------------------------------------------------------
    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Persist and index vectors (rows L2-normalised here if they are not already)."""
        ids = list(ids)
        if not ids:
            return
        vecs = np.asarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        if not np.allclose(norms, 1.0, atol=1e-3):
            vecs = vecs / np.maximum(norms, 1e-12)
        with self._writer, self._flock():
            path = self._part_path()
            self._write(path, ids, vecs)
            if self._append_only:
                return
            snap = self._snap
            self._snap = snap.with_vectors(ids, vecs, snap.files + (self._stamp(path),))
            if len(self._snap.files) > COMPACT_AFTER_PARTS:
                self._compact_locked()

    def compact(self) -> None:
        """Merge all parts into one file (written first, then the old parts removed)."""
        with self._writer, self._flock():
            self._compact_locked()

    def _compact_locked(self) -> None:
        if self._listing() != self._snap.files:  # parts of another process we have not read: read them first
            self._snap = self._read_snapshot()
        snap = self._snap
        if len(snap.files) <= 1:
            return
        path = self._part_path()
        self._write(path, snap.ids, snap.matrix)
        for name, _, _ in snap.files:
            (self.directory / name).unlink(missing_ok=True)
        self._snap = VectorSnapshot(snap.dim, snap.ids, snap.row, snap.matrix, (self._stamp(path),))
        log.info("compacted %d parts into %s (%d vectors)", len(snap.files), path.name, len(snap))

    def reload_if_changed(self) -> bool:
        """Re-read the directory if its parts differ from what the snapshot was built from (another process
        wrote or compacted); a ``stat`` per part when nothing changed. Returns whether a new snapshot was
        swapped in. A writer step: call it off the reply path."""
        if self._listing() == self._snap.files:
            return False
        with self._writer, self._flock():
            if self._listing() == self._snap.files:
                return False
            before = len(self._snap)
            self._snap = self._read_snapshot()
        log.info("vectors of %s reloaded from disk: %d -> %d", self.key, before, len(self._snap))
        return True

    def export(self, path: Path | str, ids: Sequence[str] | None = None) -> int:
        """Write these vectors (or all) to one Arrow file carrying the key, e.g. to ship a demo's vectors."""
        snap = self._snap
        ids = list(snap.ids if ids is None else ids)
        vecs = snap.get(ids)
        flat = pa.array(np.ascontiguousarray(vecs).reshape(-1), type=pa.float32())
        schema = _schema(self.dim).with_metadata({"key": self.key})
        table = pa.Table.from_arrays([pa.array(ids, type=pa.string()),
                                      pa.FixedSizeListArray.from_arrays(flat, self.dim)], schema=schema)
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, schema) as writer:
            writer.write_table(table)
        os.replace(tmp, path)
        return len(ids)

    def import_file(self, path: Path | str, only: Iterable[str] | None = None) -> int:
        """Add the vectors of an exported file that this index lacks (restricted to ``only`` if given);
        0 if the file was made with another model (its key differs)."""
        with pa.memory_map(str(path), "r") as source:
            reader = ipc.open_file(source)
            key = (reader.schema.metadata or {}).get(b"key", b"").decode()
            if key != self.key:
                log.info("%s holds vectors of %r, not %r: not used", path, key, self.key)
                return 0
            table = reader.read_all()
        ids = table.column("id").to_pylist()
        vecs = np.asarray(table.column("vector").combine_chunks().values.to_numpy(zero_copy_only=False),
                          dtype=np.float32).reshape(len(ids), self.dim)
        wanted = set(only) if only is not None else None
        with self._writer:
            have = self._snap.row
            keep = [i for i, pid in enumerate(ids) if pid not in have and (wanted is None or pid in wanted)]
            if keep:
                self.add([ids[i] for i in keep], vecs[keep])
        return len(keep)

    # -- reads (each on one snapshot) -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._snap)

    def __contains__(self, paper_id: object) -> bool:
        return paper_id in self._snap

    def missing(self, ids: Iterable[str]) -> list[str]:
        return self._snap.missing(ids)

    def rows(self, ids: Sequence[str]) -> np.ndarray:
        """Row numbers of ``ids`` in the current snapshot (KeyError for an id without a vector)."""
        return self._snap.rows(ids)

    def get(self, ids: Sequence[str]) -> np.ndarray:
        """Vectors of ``ids`` in order, shape (len(ids), dim); KeyError for an id without a vector."""
        return self._snap.get(ids)

    # -- search -----------------------------------------------------------------------------------------
    def search(self, query: np.ndarray, k: int = 10, exclude: Iterable[str] = (),
               candidates: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """The ``k`` nearest ids to one query vector by cosine, best first, skipping ``exclude``."""
        return self._snap.search_many(np.asarray(query, np.float32)[None, :], k, [set(exclude)], candidates)[0]

    def search_many(self, queries: np.ndarray, k: int = 10, exclude: Sequence[set[str]] | None = None,
                    candidates: Sequence[str] | None = None) -> list[list[tuple[str, float]]]:
        """Exact top-k for many queries at once (one matrix product per chunk of queries)."""
        return self._snap.search_many(queries, k, exclude, candidates)


def stored_ids(directory: Path | str) -> set[str]:
    """The ids that have a vector in an index directory, reading only the id column of each part (the vectors
    stay memory-mapped, unread): what a bulk job needs to know what is missing."""
    for _attempt in range(5):
        ids: set[str] = set()
        try:
            for path in sorted(Path(directory).glob("part-*.arrow")):
                with pa.memory_map(str(path), "r") as source:
                    ids.update(ipc.open_file(source).read_all().column("id").to_pylist())
        except FileNotFoundError:  # compacted meanwhile: list again
            continue
        return ids
    raise RuntimeError(f"{directory}: part files kept changing while being read")


def top_k(scores: np.ndarray, ids: Sequence[str], k: int, exclude: AbstractSet[str] = frozenset(),
          row_of: Mapping[str, int] | None = None) -> list[tuple[str, float]]:
    """The ``k`` best (id, score) of a score vector aligned with ``ids``, best first, skipping ``exclude``."""
    scores = np.asarray(scores, dtype=np.float32)
    if exclude:
        scores = scores.copy()
        if row_of is None:
            row_of = {pid: r for r, pid in enumerate(ids)} if len(exclude) < len(ids) else None
        if row_of is not None:
            rows = [row_of[e] for e in exclude if e in row_of]
        else:
            rows = [r for r, pid in enumerate(ids) if pid in exclude]
        scores[rows] = -np.inf
    n = len(scores)
    k = min(k, n)
    if k <= 0:
        return []
    if k < n:
        part = np.argpartition(-scores, k - 1)[:k]
    else:
        part = np.arange(n)
    best = part[np.argsort(-scores[part], kind="stable")]
    return [(ids[i], float(scores[i])) for i in best if np.isfinite(scores[i])]
