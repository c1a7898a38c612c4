"""Lexical index: tf-idf vectors of the stored papers, the word-level half of the recommender's similarity.

On the author proxy, exact vocabulary (a group's method names, acronyms, datasets) predicts what a researcher
writes next better than MiniLM's sentence meaning does, so papers are compared on both (see
:mod:`recommender.ranking.profile`). The vectoriser follows arxiv-sanity-lite (word 1-2 grams, English stop words,
sublinear tf, l2 norm, at most 20,000 terms, terms in more than 10% of papers dropped) and is fitted on the
store's papers; later papers are transformed with the fitted vocabulary until the store has grown by half,
then everything is refitted. Files (``<dir>/tfidf.pkl``, ``<dir>/matrix.npz``, ``<dir>/ids.json``) are written
through temporary names and renamed, so a crash leaves the previous index.

At scale (all of arXiv, 2.7M papers) neither the fit nor the rows may hold the whole store: the vocabulary and
idf are fitted on a fixed random sample of at most :data:`FIT_SAMPLE` papers (:func:`fit_sample`; an idf from
200k papers is the corpus's idf to within noise for the 20,000 terms kept), and a store of more than
:data:`STORED_ROWS_MAX` papers keeps no rows at all (``stores_rows`` False): the rows a ranking needs, the day's
candidates and the user's likes, are transformed when it needs them (:meth:`recommender.engine.Engine.
lexical_rows` does that for any paper the index lacks), so the process holds only the vectoriser. Small stores
are unchanged: fitted on every paper, rows stored. Measured on the 135k corpus (``bench/bench_lexical.py``,
``bench/results/bench_lexical.json``). The fitted vectoriser drops sklearn's ``stop_words_`` (every pruned term,
millions of bigrams on a big corpus; not used by ``transform``).

Concurrency (see :mod:`recommender.engine.concurrency`): the fitted vectoriser, ids, row map and matrix live in
one immutable :class:`LexicalSnapshot`; writers (``fit``, ``add``, ``reload_if_changed``) hold the writer lock,
build the next snapshot and swap one reference, readers take the snapshot once and never lock.
:meth:`LexicalIndex.reload_if_changed` picks up files another process saved (compared by size and mtime).
"""
from __future__ import annotations

import json
import logging
import os
import pickle
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    from sklearn.feature_extraction.text import TfidfVectorizer

log = logging.getLogger(__name__)

REFIT_GROWTH = 1.5  # refit once the store holds this many times the papers it had when fitted
FIT_SAMPLE = 200_000  # the vocabulary and idf of a bigger store are fitted on a random sample of this many papers
STORED_ROWS_MAX = 300_000  # a bigger store keeps no rows: those a ranking needs are transformed when needed
FILES = ("tfidf.pkl", "matrix.npz", "ids.json")

FileStamp = tuple[str, int, int]  # (file name, size, mtime_ns)


def fit_sample(ids: Sequence[str], size: int = FIT_SAMPLE, seed: int = 0) -> list[str]:
    """The papers a store's vocabulary is fitted on: all of them up to ``size``, else a fixed random sample
    (the same ids for the same store), in the store's order."""
    if len(ids) <= size:
        return list(ids)
    keep = np.sort(np.random.default_rng(seed).choice(len(ids), size, replace=False))
    return [ids[i] for i in keep]


def make_vectorizer(n_docs: int) -> TfidfVectorizer:
    from sklearn.feature_extraction.text import TfidfVectorizer

    small = n_docs < 1000  # on a tiny store the document-frequency cut-offs would leave almost nothing
    return TfidfVectorizer(strip_accents="unicode", lowercase=True, analyzer="word", stop_words="english",
                           token_pattern=r"(?u)\b[a-zA-Z_][a-zA-Z0-9_]+\b", ngram_range=(1, 2),
                           max_features=20000, norm="l2", use_idf=True, smooth_idf=True, sublinear_tf=True,
                           max_df=0.5 if small else 0.1, min_df=1 if small else 2, dtype=np.float32)


@dataclass(frozen=True, eq=False)
class LexicalSnapshot:
    """One consistent, immutable state: ``matrix[row[id]]`` is the tf-idf row of ``id`` under ``vectorizer``."""

    vectorizer: TfidfVectorizer | None
    fitted_on: int
    ids: list[str]
    row: Mapping[str, int]
    matrix: sp.csr_matrix
    files: tuple[FileStamp, ...] = ()
    stores_rows: bool = True  # False for a big store: no rows kept, a ranking transforms the papers it needs

    @classmethod
    def empty(cls) -> LexicalSnapshot:
        return cls(None, 0, [], {}, sp.csr_matrix((0, 0), dtype=np.float32))

    @property
    def ready(self) -> bool:
        return self.vectorizer is not None

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, paper_id: object) -> bool:
        return paper_id in self.row

    def missing(self, ids: Sequence[str]) -> list[str]:
        return [i for i in ids if i not in self.row]

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        if self.vectorizer is None:
            raise RuntimeError("the lexical index is not fitted")
        return self.vectorizer.transform(list(texts)).tocsr().astype(np.float32)

    def get(self, ids: Sequence[str]) -> sp.csr_matrix:
        """Rows of ``ids`` (KeyError for an id not in the index)."""
        return self.matrix[[self.row[i] for i in ids]]

    def with_rows(self, ids: Sequence[str], rows: sp.csr_matrix) -> LexicalSnapshot:
        """The next snapshot with ``rows`` added or (ids already present) replaced; this one is untouched."""
        last = {pid: k for k, pid in enumerate(ids)}
        n = len(self.ids)
        source = np.arange(n, dtype=np.int64)  # row r of the result comes from row source[r] of [old; rows]
        row = dict(self.row)
        new_ids = list(self.ids)
        fresh: list[int] = []
        for pid, k in last.items():
            r = row.get(pid)
            if r is None:
                row[pid] = len(new_ids)
                new_ids.append(pid)
                fresh.append(n + k)
            else:
                source[r] = n + k
        source = np.concatenate([source, np.array(fresh, dtype=np.int64)])
        stacked = sp.vstack([self.matrix, rows]).tocsr() if n else rows.tocsr()  # n == 0: indices are k
        matrix = stacked[source].tocsr()
        return LexicalSnapshot(self.vectorizer, self.fitted_on, new_ids, row, matrix, self.files, self.stores_rows)


class LexicalIndex:
    """tf-idf rows of papers by id; ``fit``/``add``, ``get``, persisted in ``directory``."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self._writer = threading.RLock()
        saved = self._read()  # (not `or`: a big store's snapshot holds no rows, so it has length 0)
        self._snap = saved if saved is not None else LexicalSnapshot.empty()

    # -- the snapshot readers use ------------------------------------------------------------------------
    def snapshot(self) -> LexicalSnapshot:
        """The current state; take it once and work on it (it never changes)."""
        return self._snap

    @property
    def vectorizer(self) -> TfidfVectorizer | None:
        return self._snap.vectorizer

    @property
    def fitted_on(self) -> int:
        return self._snap.fitted_on

    @property
    def ids(self) -> list[str]:
        return self._snap.ids

    @property
    def matrix(self) -> sp.csr_matrix:
        return self._snap.matrix

    # -- disk -------------------------------------------------------------------------------------------
    def _listing(self) -> tuple[FileStamp, ...]:
        out: list[FileStamp] = []
        for name in FILES:
            try:
                st = (self.directory / name).stat()
            except FileNotFoundError:
                continue
            out.append((name, st.st_size, st.st_mtime_ns))
        return tuple(out)

    def _read(self) -> LexicalSnapshot | None:
        """The saved index, or None if there is none or it is unreadable (a damaged index is rebuilt)."""
        files = self._listing()
        if len(files) != len(FILES):
            return None
        try:
            with open(self.directory / FILES[0], "rb") as fh:
                state = pickle.load(fh)
            vectorizer, fitted_on = state["vectorizer"], int(state["fitted_on"])
            stores_rows = bool(state.get("stores_rows", True))
            matrix = sp.load_npz(self.directory / FILES[1]).tocsr().astype(np.float32)
            ids = json.loads((self.directory / FILES[2]).read_text())
            if matrix.shape[0] != len(ids):
                raise ValueError("matrix and ids disagree")
            if matrix.shape[1] != len(vectorizer.vocabulary_):
                raise ValueError("matrix and vocabulary disagree")
        except Exception as exc:  # noqa: BLE001 - a damaged index is rebuilt, not fatal
            log.warning("lexical index in %s unreadable (%s); it will be rebuilt", self.directory, exc)
            return None
        return LexicalSnapshot(vectorizer, fitted_on, ids, {pid: r for r, pid in enumerate(ids)}, matrix, files,
                               stores_rows)

    def save(self) -> None:
        """Write the current snapshot (each file through a temporary name and a rename)."""
        with self._writer:
            snap = self._snap
            self.directory.mkdir(parents=True, exist_ok=True)
            tag = f"{os.getpid()}.{threading.get_ident()}.tmp"
            tmp = self.directory / f"tfidf.pkl.{tag}"
            with open(tmp, "wb") as fh:
                pickle.dump({"vectorizer": snap.vectorizer, "fitted_on": snap.fitted_on,
                             "stores_rows": snap.stores_rows}, fh)
            os.replace(tmp, self.directory / "tfidf.pkl")
            tmp = self.directory / f"matrix.npz.{tag}"
            with open(tmp, "wb") as fh:
                sp.save_npz(fh, snap.matrix)
            os.replace(tmp, self.directory / "matrix.npz")
            tmp = self.directory / f"ids.json.{tag}"
            tmp.write_text(json.dumps(snap.ids))
            os.replace(tmp, self.directory / "ids.json")
            self._remove_stale_temporaries()
            self._snap = LexicalSnapshot(snap.vectorizer, snap.fitted_on, snap.ids, snap.row, snap.matrix,
                                         self._listing(), snap.stores_rows)

    def _remove_stale_temporaries(self, age: float = 3600.0) -> None:
        """Temporary files a crashed save left behind (an hour old: no save takes that long)."""
        cutoff = time.time() - age
        for stale in self.directory.glob("*.tmp"):
            try:
                if stale.stat().st_mtime < cutoff:
                    stale.unlink()
            except FileNotFoundError:
                pass

    def reload_if_changed(self) -> bool:
        """Re-read the files if another process saved them since this snapshot was read or saved; keeps the
        current snapshot when they are half-written or unreadable (tried again on the next call). Returns
        whether a new snapshot was swapped in. A writer step: call it off the reply path."""
        listing = self._listing()
        if listing == self._snap.files or len(listing) != len(FILES):
            return False
        with self._writer:
            if self._listing() == self._snap.files:
                return False
            fresh = self._read()
            if fresh is None:
                return False
            self._snap = fresh
        log.info("tf-idf index reloaded from disk: %d papers", len(fresh))
        return True

    # -- reads (each on one snapshot) -------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self._snap.ready

    @property
    def stores_rows(self) -> bool:
        """Whether papers' rows are kept (a small store) or transformed when a ranking needs them (a big one)."""
        return self._snap.stores_rows

    def __len__(self) -> int:
        return len(self._snap)

    def __contains__(self, paper_id: object) -> bool:
        return paper_id in self._snap

    def missing(self, ids: Sequence[str]) -> list[str]:
        return self._snap.missing(ids)

    def needs_refit(self, total: int) -> bool:
        snap = self._snap
        return not snap.ready or total >= REFIT_GROWTH * max(snap.fitted_on, 1)

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        return self._snap.transform(texts)

    def get(self, ids: Sequence[str]) -> sp.csr_matrix:
        """Rows of ``ids`` (KeyError for an id not in the index)."""
        return self._snap.get(ids)

    # -- writers ----------------------------------------------------------------------------------------
    def fit(self, ids: Sequence[str], texts: Sequence[str], total: int | None = None) -> None:
        """Fit the vocabulary on these papers and replace the index with them. ``total``: the store's size when
        these are a sample of it (:func:`fit_sample`); a store of more than :data:`STORED_ROWS_MAX` papers keeps
        no rows (then ``ids`` and ``texts`` may be just the sample)."""
        total = len(texts) if total is None else int(total)
        keep_rows = total <= STORED_ROWS_MAX and len(texts) >= total
        vec = make_vectorizer(len(texts))
        try:
            if keep_rows:
                matrix = vec.fit_transform(list(texts)).tocsr().astype(np.float32)
            else:
                vec.fit(list(texts))
                matrix = sp.csr_matrix((0, len(vec.vocabulary_)), dtype=np.float32)
        except ValueError as exc:  # e.g. no terms left on a handful of papers
            log.warning("tf-idf could not be fitted on %d papers (%s); lexical similarity is off", len(texts), exc)
            return
        if hasattr(vec, "stop_words_"):  # every pruned term: big, and not used by transform
            del vec.stop_words_
        ids = list(ids) if keep_rows else []
        with self._writer:
            self._snap = LexicalSnapshot(vec, total, ids, {pid: r for r, pid in enumerate(ids)}, matrix,
                                         self._snap.files, keep_rows)
        log.info("tf-idf fitted on %d of %d papers (%d terms)%s", len(texts), total, len(vec.vocabulary_),
                 "" if keep_rows else "; rows are computed when a ranking needs them")

    def add(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        """Add (or replace) papers using the fitted vocabulary (nothing for a big store, which keeps no rows)."""
        if not len(ids) or not self._snap.stores_rows:
            return
        with self._writer:
            snap = self._snap
            self._snap = snap.with_rows(list(ids), snap.transform(texts))
