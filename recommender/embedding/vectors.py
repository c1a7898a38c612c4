"""Vector store: paper ids and their L2-normalised float32 vectors in Arrow IPC files, with top-k search.

One directory per embedding key (model name + dimension + variant), so vectors of two models never mix;
``meta.json`` names the key. Each :meth:`VectorIndex.add` writes one new part file (``part-*.arrow``: columns
``id`` string and ``vector`` fixed-size list of float32) through a temporary name and a rename, so a crash
leaves either the whole part or none; a later part wins for an id written twice (the id keeps its row).
:meth:`compact` merges the parts into one file (record batches of :data:`SEGMENT_ROWS`). Vectors are never
copied into one big matrix: each record batch is a memory-mapped segment, so a process holding a million
vectors keeps only the pages it touches (and the ids) in memory.

Search: exact (a matrix product per segment, ``argpartition``, a sort of the k best) for a store of fewer than
``ann_min_vectors`` vectors (:data:`ANN_MIN_VECTORS`); from there on through an approximate HNSW graph
(:mod:`recommender.embedding.ann`: usearch, int8, memory-mapped, in ``ann-*.usearch`` beside the parts) that
proposes candidates which are rescored exactly from the fp32 vectors, plus an exact pass over the rows added
since the graph was built (at most :data:`ANN_TAIL_MAX` before a writer extends it). Measured on real-derived
vectors: ``bench/results/bench_similar.json``. Searches restricted to ``candidates`` are exact on them;
``exclude``d ids are over-fetched and dropped.

Concurrency (see :mod:`recommender.engine.concurrency`): the searchable state lives in one immutable
:class:`VectorSnapshot` (ids, row map, segments, graph, and the part files it was built from). Writers
(``add``, ``compact``, ``ensure_ann``, ``import_file``, ``reload_if_changed``) hold the index's writer lock,
plus ``flock`` on ``write.lock`` in the directory against writers in other processes, build the next snapshot
completely and swap one reference; readers take the snapshot once and never lock. A graph is published as a
new file (temporary name, rename) and never changed in place. :meth:`VectorIndex.reload_if_changed` picks up
parts and graphs another process wrote, and builds or extends the graph when due.
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
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
from pyarrow import ipc

from recommender.embedding import ann
from recommender.embedding.ann import AnnGraph

log = logging.getLogger(__name__)

COMPACT_AFTER_PARTS = 32
SEGMENT_ROWS = 262_144  # rows per record batch of a compacted file (each one memory-mapped segment)
ANN_MIN_VECTORS = 50_000  # from this many vectors whole-store searches use the approximate graph
ANN_TAIL_MAX = 20_000  # rows not yet in the graph (searched exactly) before a writer extends it
ANN_FETCH = 40  # candidates the graph proposes for exact rescoring (at least; plus 4 x k and the exclusions)
_QUERY_CHUNK = 256  # queries scored at once in batch search (bounds the score matrix's memory)

FileStamp = tuple[str, int, int]  # (file name, size, mtime_ns): what a snapshot was built from


class KeyMismatch(RuntimeError):
    """The directory holds vectors of another model than the one asked for."""


def _schema(dim: int) -> pa.Schema:
    return pa.schema([("id", pa.string()), ("vector", pa.list_(pa.float32(), dim))])


def _read_part(path: Path, dim: int, with_ids: bool = True) -> tuple[list[str], list[np.ndarray]]:
    """A part's ids and its vectors as one read-only array per record batch, memory-mapped (nothing copied)."""
    ids: list[str] = []
    segments: list[np.ndarray] = []
    with pa.memory_map(str(path), "r") as source:
        reader = ipc.open_file(source)
        for b in range(reader.num_record_batches):
            batch = reader.get_batch(b)
            if not batch.num_rows:
                continue
            if with_ids:
                ids += batch.column(0).to_pylist()
            col = batch.column(1)
            flat = col.flatten().to_numpy(zero_copy_only=False) if col.offset else \
                col.values.to_numpy(zero_copy_only=False)
            segments.append(_frozen(np.asarray(flat, dtype=np.float32).reshape(batch.num_rows, dim)))
    return ids, segments


def _frozen(matrix: np.ndarray) -> np.ndarray:
    """The matrix made read-only, so a snapshot's array can never be changed in place by mistake."""
    if matrix.flags.writeable:
        matrix.flags.writeable = False
    return matrix


@dataclass(frozen=True, eq=False)
class VectorSnapshot:
    """One consistent, immutable state of an index: ``ids[r]`` is the id of logical row ``r``, ``row[id] == r``.

    The vectors stay where they were read: ``segments`` are the record batches of the part files, memory-mapped,
    in write order (physical rows); ``phys[r]`` is the physical row holding logical row ``r``'s vector (None when
    every id was written once: then physical and logical rows agree). An id written twice keeps its first row
    and takes its latest vector. ``ann`` is the approximate graph over logical rows ``[0, ann.rows)`` when the
    store is big enough to use one; the rows after it are searched exactly. Nothing here is ever mutated after
    construction; writers make a new snapshot."""

    dim: int
    ids: list[str]
    row: Mapping[str, int]
    segments: tuple[np.ndarray, ...]
    phys: np.ndarray | None = None
    files: tuple[FileStamp, ...] = ()
    ann: AnnGraph | None = None
    ann_min: int = ANN_MIN_VECTORS

    @classmethod
    def empty(cls, dim: int, ann_min: int = ANN_MIN_VECTORS) -> VectorSnapshot:
        return cls(dim, [], {}, (), None, (), None, ann_min)

    @classmethod
    def assemble(cls, dim: int, ids: list[str], segments: Sequence[np.ndarray], files: tuple[FileStamp, ...],
                 ann_min: int = ANN_MIN_VECTORS) -> VectorSnapshot:
        """A snapshot from physical rows in write order (``ids`` aligned with the stacked ``segments``)."""
        row = dict(zip(ids, range(len(ids)), strict=True))
        if len(row) == len(ids):
            return cls(dim, ids, row, tuple(segments), None, files, None, ann_min)
        row = {}
        logical: list[str] = []
        phys: list[int] = []
        for p, pid in enumerate(ids):
            r = row.get(pid)
            if r is None:
                row[pid] = len(logical)
                logical.append(pid)
                phys.append(p)
            else:  # written again: same row, the later vector
                phys[r] = p
        return cls(dim, logical, row, tuple(segments), np.array(phys, dtype=np.int64), files, None, ann_min)

    def with_vectors(self, ids: Sequence[str], segments: Sequence[np.ndarray],
                     files: tuple[FileStamp, ...]) -> VectorSnapshot:
        """The next snapshot: ``ids`` (the rows of the new ``segments``) added or (already present) replaced;
        this one is left untouched."""
        n_phys = self.physical_rows
        row = dict(self.row)
        new_ids = list(self.ids)
        phys = None if self.phys is None else self.phys.tolist()
        for i, pid in enumerate(ids):
            r = row.get(pid)
            if r is None:
                row[pid] = len(new_ids)
                new_ids.append(pid)
                if phys is not None:
                    phys.append(n_phys + i)
                elif n_phys + i != len(new_ids) - 1:  # an id twice in this batch: rows stop being physical
                    phys = list(range(len(new_ids) - 1)) + [n_phys + i]
            else:
                if phys is None:
                    phys = list(range(len(new_ids)))
                phys[r] = n_phys + i
        phys_arr = None if phys is None else np.array(phys, dtype=np.int64)
        return VectorSnapshot(self.dim, new_ids, row, self.segments + tuple(segments), phys_arr, files, self.ann,
                              self.ann_min)

    def with_ann(self, ann: AnnGraph | None) -> VectorSnapshot:
        return VectorSnapshot(self.dim, self.ids, self.row, self.segments, self.phys, self.files, ann,
                              self.ann_min)

    # -- physical storage ---------------------------------------------------------------------------------
    @cached_property
    def _starts(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum([len(s) for s in self.segments])]).astype(np.int64)

    @property
    def physical_rows(self) -> int:
        return int(self._starts[-1])

    def _gather(self, prows: np.ndarray) -> np.ndarray:
        """Vectors of physical rows (a new array)."""
        out = np.empty((len(prows), self.dim), dtype=np.float32)
        if not len(prows):
            return out
        if len(self.segments) == 1:
            np.take(self.segments[0], prows, axis=0, out=out)
            return out
        seg = np.searchsorted(self._starts, prows, side="right") - 1
        for s in np.unique(seg):
            mask = seg == s
            out[mask] = self.segments[s][prows[mask] - self._starts[s]]
        return out

    def vectors_at(self, rows: np.ndarray) -> np.ndarray:
        """Vectors of logical rows (a new array)."""
        rows = np.asarray(rows, dtype=np.int64)
        return self._gather(rows if self.phys is None else self.phys[rows])

    def block(self, start: int, stop: int) -> np.ndarray:
        """Vectors of logical rows ``[start, stop)``: views of the memory-mapped parts where they are contiguous."""
        if self.phys is not None:
            return self.vectors_at(np.arange(start, stop))
        pieces = []
        for s, seg in enumerate(self.segments):
            lo, hi = int(self._starts[s]), int(self._starts[s + 1])
            if hi <= start or lo >= stop:
                continue
            pieces.append(seg[max(start, lo) - lo:min(stop, hi) - lo])
        if len(pieces) == 1:
            only: np.ndarray = pieces[0]
            return only
        return np.concatenate(pieces) if pieces else np.zeros((0, self.dim), dtype=np.float32)

    @cached_property
    def matrix(self) -> np.ndarray:
        """All vectors in logical order as one matrix: the memory-mapped part itself for a compacted store, else
        a copy made on first use (so big stores search and rank through :meth:`search_many` and :meth:`get`)."""
        return _frozen(self.block(0, len(self.ids)))

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
        return self.vectors_at(self.rows(ids))

    @property
    def uses_ann(self) -> bool:
        """Whether whole-store searches go through the approximate graph (a big store with a graph)."""
        return self.ann is not None and len(self.ids) >= self.ann_min

    def search_many(self, queries: np.ndarray, k: int = 10, exclude: Sequence[AbstractSet[str]] | None = None,
                    candidates: Sequence[str] | None = None) -> list[list[tuple[str, float]]]:
        """Top-k for many queries: exact over ``candidates`` if given, else over the whole store (through the
        approximate graph for a big store, with exact scores; exact for a small one)."""
        q = np.asarray(queries, dtype=np.float32).reshape(-1, self.dim)
        if candidates is not None:
            cands = [c for c in dict.fromkeys(candidates) if c in self.row]
            if not cands:
                return [[] for _ in range(len(q))]
            mat = self.get(cands)
            out: list[list[tuple[str, float]]] = []
            for start in range(0, len(q), _QUERY_CHUNK):
                for j, scores in enumerate(q[start:start + _QUERY_CHUNK] @ mat.T):
                    out.append(top_k(scores, cands, k, _nth(exclude, start + j)))
            return out
        if not self.ids:
            return [[] for _ in range(len(q))]
        if self.uses_ann:
            return [self._search_ann(v, k, _nth(exclude, j)) for j, v in enumerate(q)]
        out = []
        for start in range(0, len(q), _QUERY_CHUNK):
            for j, scores in enumerate(self._scores(q[start:start + _QUERY_CHUNK])):
                out.append(top_k(scores, self.ids, k, _nth(exclude, start + j), self.row))
        return out

    def _scores(self, q: np.ndarray) -> np.ndarray:
        """Exact scores of queries against every logical row, a segment at a time (no stacked copy)."""
        if not self.segments:
            return np.zeros((len(q), 0), dtype=np.float32)
        scores = np.concatenate([q @ seg.T for seg in self.segments], axis=1)
        return scores if self.phys is None else scores[:, self.phys]

    def _search_ann(self, v: np.ndarray, k: int, exclude: AbstractSet[str]) -> list[tuple[str, float]]:
        assert self.ann is not None
        excluded = [self.row[e] for e in exclude if e in self.row]
        fetch = max(ANN_FETCH, 4 * k) + len(excluded)
        rows = self.ann.search(v, fetch)
        n, covered = len(self.ids), self.ann.rows
        scores = self.vectors_at(rows) @ v  # exact scores of the graph's candidates
        if covered < n:  # rows added since the graph was built: exact
            rows = np.concatenate([rows, np.arange(covered, n, dtype=np.int64)])
            scores = np.concatenate([scores, self.block(covered, n) @ v])
        if excluded:
            keep = ~np.isin(rows, excluded)
            rows, scores = rows[keep], scores[keep]
        best = _best(scores, k)
        return [(self.ids[int(rows[i])], float(scores[i])) for i in best]


def _nth(exclude: Sequence[AbstractSet[str]] | None, j: int) -> AbstractSet[str]:
    return exclude[j] if exclude is not None and j < len(exclude) else frozenset()


def _best(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest finite scores, best first (ties: lower position first)."""
    n = len(scores)
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-scores, k - 1)[:k] if k < n else np.arange(n)
    best: np.ndarray = part[np.argsort(-scores[part], kind="stable")]
    finite: np.ndarray = best[np.isfinite(scores[best])]
    return finite


class VectorIndex:
    """All vectors of one embedding key: an immutable snapshot in memory for search, Arrow files on disk."""

    def __init__(self, directory: Path | str, key: str, dim: int, load: bool = True,
                 ann_min_vectors: int | None = None, ann_tail_max: int | None = None) -> None:
        """``load=False``: an append-only writer for bulk jobs; it reads no vectors and keeps none of those it
        adds in memory (its snapshot stays empty), so its memory does not grow with the store; readers pick
        its parts up with :meth:`reload_if_changed`, and :func:`stored_ids` says which ids have vectors.
        ``ann_min_vectors``: from how many vectors whole-store searches use the approximate graph (default
        :data:`ANN_MIN_VECTORS`); below it search is exact. ``ann_tail_max``: how many rows may wait outside the
        graph (searched exactly) before a writer extends it (default :data:`ANN_TAIL_MAX`)."""
        self.directory = Path(directory)
        self._append_only = not load
        self.key = key
        self.dim = int(dim)
        self.ann_min = ANN_MIN_VECTORS if ann_min_vectors is None else max(1, int(ann_min_vectors))
        self.ann_tail_max = ANN_TAIL_MAX if ann_tail_max is None else max(1, int(ann_tail_max))
        self._writer = threading.RLock()
        self._last_name = 0
        self._check_meta()
        with self._writer, self._flock():
            for stale in self.directory.glob("*.tmp"):  # only a crashed writer leaves these (writers hold flock)
                stale.unlink(missing_ok=True)
            self._snap = self._read_snapshot() if load else VectorSnapshot.empty(self.dim, self.ann_min)

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
        return _stamps(self.directory.glob("part-*.arrow"))

    def _read_snapshot(self) -> VectorSnapshot:
        for _attempt in range(5):
            files = self._listing()
            ids: list[str] = []
            segments: list[np.ndarray] = []
            try:
                for name, _, _ in files:
                    part_ids, part_segments = _read_part(self.directory / name, self.dim)
                    ids += part_ids
                    segments += part_segments
            except FileNotFoundError:  # another process compacted between listing and reading: list again
                continue
            snap = VectorSnapshot.assemble(self.dim, ids, segments, files, self.ann_min)
            snap = self._attach_ann(snap)
            log.debug("loaded %d vectors of %s from %d part(s)", len(snap), self.key, len(files))
            return snap
        raise RuntimeError(f"{self.directory}: part files kept changing while being read")

    def _attach_ann(self, snap: VectorSnapshot) -> VectorSnapshot:
        """``snap`` with the newest graph file on disk that agrees with its ids (by count and digest), if any;
        the graph it already has is kept when no better file exists. Files that disagree are left for a writer
        to replace (:meth:`ensure_ann`)."""
        best = snap.ann if snap.ann is not None and snap.ann.rows <= len(snap) else None
        found = sorted(((parsed[0], p) for p in ann.graph_files(self.directory)
                        if (parsed := ann.parse_name(p.name)) is not None), reverse=True)
        for rows, path in found:
            if rows > len(snap) or (best is not None and rows <= best.rows):
                continue
            if ann.parse_name(path.name) != (rows, ann.ids_digest(snap.ids, rows)):
                log.warning("approximate index %s disagrees with the vectors: not used", path.name)
                continue
            try:
                best = ann.AnnGraph.open(path)
            except (OSError, RuntimeError, ValueError) as exc:
                log.warning("approximate index %s unreadable (%s): not used", path.name, exc)
                continue
            break
        return snap if best is snap.ann else snap.with_ann(best)

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
        self._write_batches(path, [(ids, vecs)])

    def _write_batches(self, path: Path, batches: Iterable[tuple[Sequence[str], np.ndarray]]) -> None:
        """One Arrow file of record batches (each becomes one memory-mapped segment when read back)."""
        schema = _schema(self.dim)
        tmp = path.with_name(path.name + ".tmp")
        with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, schema) as writer:
            for ids, vecs in batches:
                flat = pa.array(np.ascontiguousarray(vecs, dtype=np.float32).reshape(-1), type=pa.float32())
                writer.write_batch(pa.record_batch(
                    [pa.array(list(ids), type=pa.string()), pa.FixedSizeListArray.from_arrays(flat, self.dim)],
                    schema=schema))
        os.replace(tmp, path)

    # -- writers ----------------------------------------------------------------------------------------
    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Persist and index vectors (rows L2-normalised here if they are not already): one new part file per
        call, written atomically. When the store is big, the approximate graph is extended once the rows it
        does not cover reach :data:`ANN_TAIL_MAX` (built first when the store reaches ``ann_min_vectors``)."""
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
            _, segments = _read_part(path, self.dim, with_ids=False)  # the part just written, memory-mapped
            snap = self._snap
            self._snap = snap.with_vectors(ids, segments, snap.files + (self._stamp(path),))
            if len(self._snap.files) > COMPACT_AFTER_PARTS:
                self._compact_locked()
            self._maintain_ann_locked(force=False)

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
        n = len(snap)
        self._write_batches(path, ((snap.ids[s:s + SEGMENT_ROWS], snap.block(s, min(n, s + SEGMENT_ROWS)))
                                   for s in range(0, n, SEGMENT_ROWS)))
        for name, _, _ in snap.files:
            (self.directory / name).unlink(missing_ok=True)
        _, segments = _read_part(path, self.dim, with_ids=False)
        # the same ids in the same rows: the approximate graph stays valid
        self._snap = VectorSnapshot(snap.dim, snap.ids, snap.row, tuple(segments), None, (self._stamp(path),),
                                    snap.ann, self.ann_min)
        log.info("compacted %d parts into %s (%d vectors)", len(snap.files), path.name, len(snap))

    def ensure_ann(self) -> bool:
        """Bring the approximate graph up to date with every vector on disk (build it, extend it, or rebuild
        one that disagrees with the vectors) if the store has ``ann_min_vectors`` or more; returns whether a
        new graph was published. A writer step (minutes for a million vectors): call it off the reply path."""
        with self._writer, self._flock():
            if self._listing() != self._snap.files:
                self._snap = self._read_snapshot()
            return self._maintain_ann_locked(force=True)

    def _ann_due(self, force: bool) -> bool:
        snap = self._snap
        if self._append_only or len(snap) < self.ann_min:
            return False
        covered = snap.ann.rows if snap.ann is not None else 0
        return len(snap) > covered and (force or snap.ann is None or len(snap) - covered >= self.ann_tail_max)

    def _maintain_ann_locked(self, force: bool) -> bool:
        """(Holding both locks.) Build or extend the graph when due, publish it as a new file, drop old ones."""
        if not self._ann_due(force):
            return False
        if self._listing() != self._snap.files:  # the graph's rows must be the ones on disk
            self._snap = self._read_snapshot()
        self._snap = self._attach_ann(self._snap)  # another process may have published a newer graph
        if not self._ann_due(force):
            return True
        snap = self._snap
        n, t = len(snap), time.perf_counter()
        if snap.ann is not None:
            graph = snap.ann.extended(snap.block, n, self.dim)
        else:
            graph = ann.build(snap.block, n, self.dim)
        path = graph.save(self.directory, ann.ids_digest(snap.ids, n))
        del graph
        view = ann.AnnGraph.open(path)
        for old in ann.graph_files(self.directory):
            if old != path:
                old.unlink(missing_ok=True)
        self._snap = snap.with_ann(view)
        log.info("approximate index of %s: %d -> %d vectors in %.1f s (%s)", self.key,
                 snap.ann.rows if snap.ann is not None else 0, n, time.perf_counter() - t, path.name)
        return True

    def ann_status(self) -> dict[str, object]:
        """What serves whole-store searches: for the CLI, logs and benchmarks."""
        snap = self._snap
        graph = snap.ann
        return {"library": ann.LIBRARY if graph is not None else None, "ann_dtype": ann.DTYPE,
                "ann_rows": graph.rows if graph is not None else 0, "uses_ann": snap.uses_ann,
                "index_mb": round(graph.file_bytes / 2**20, 1) if graph is not None else 0.0,
                "ann_file": graph.path.name if graph is not None and graph.path is not None else None,
                "segments": len(snap.segments)}

    def reload_if_changed(self) -> bool:
        """Re-read the directory if its parts or graph files differ from what the snapshot was built from
        (another process wrote or compacted); a ``stat`` per file when nothing changed. Then the graph is
        built or extended if due. Returns whether a new snapshot was swapped in. A writer step: call it off
        the reply path."""
        if self._listing() == self._snap.files and not self._graphs_changed() and not self._ann_due(False):
            return False
        with self._writer, self._flock():
            before = len(self._snap)
            changed = False
            if self._listing() != self._snap.files:
                self._snap = self._read_snapshot()
                changed = True
            elif self._graphs_changed():
                attached = self._attach_ann(self._snap)
                changed = attached is not self._snap
                self._snap = attached
            changed |= self._maintain_ann_locked(force=False)
        if changed:
            log.info("vectors of %s reloaded from disk: %d -> %d", self.key, before, len(self._snap))
        return changed

    def _graphs_changed(self) -> bool:
        """Whether a graph file newer than the snapshot's (or none at all) is on disk."""
        have = self._snap.ann.path.name if self._snap.ann is not None and self._snap.ann.path is not None else None
        names = [p.name for p in ann.graph_files(self.directory)]
        return (have is None and bool(names)) or (have is not None and have not in names) or len(names) > 1

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

    def search_many(self, queries: np.ndarray, k: int = 10, exclude: Sequence[AbstractSet[str]] | None = None,
                    candidates: Sequence[str] | None = None) -> list[list[tuple[str, float]]]:
        """Top-k for many queries (exact over ``candidates``; over the whole store through the approximate
        graph when the store is big, exact otherwise)."""
        return self._snap.search_many(queries, k, exclude, candidates)


def _stamps(paths: Iterable[Path]) -> tuple[FileStamp, ...]:
    out: list[FileStamp] = []
    for p in sorted(paths):
        try:
            st = p.stat()
        except FileNotFoundError:  # compacted away meanwhile
            continue
        out.append((p.name, st.st_size, st.st_mtime_ns))
    return tuple(out)


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
