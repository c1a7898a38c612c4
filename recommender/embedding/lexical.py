"""Lexical index: tf-idf vectors of the stored papers, the word-level half of the recommender's similarity.

On the author proxy, exact vocabulary (a group's method names, acronyms, datasets) predicts what a researcher
writes next better than MiniLM's sentence meaning does, so papers are compared on both (see
:mod:`recommender.ranking.profile`). The vectoriser follows arxiv-sanity-lite (word 1-2 grams, English stop words,
sublinear tf, l2 norm, at most 20,000 terms, terms in more than 10% of papers dropped) and is fitted on the
store's papers; later papers are transformed with the fitted vocabulary until the store has grown by half,
then everything is refitted. Files (``<dir>/tfidf.pkl``, ``<dir>/matrix.npz``, ``<dir>/ids.json``) are written
through temporary names and renamed, so a crash leaves the previous index.
"""
from __future__ import annotations

import json
import logging
import os
import pickle
import threading
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.sparse as sp

log = logging.getLogger(__name__)

REFIT_GROWTH = 1.5  # refit once the index holds this many times the papers it was fitted on


def make_vectorizer(n_docs: int):
    from sklearn.feature_extraction.text import TfidfVectorizer

    small = n_docs < 1000  # on a tiny store the document-frequency cut-offs would leave almost nothing
    return TfidfVectorizer(strip_accents="unicode", lowercase=True, analyzer="word", stop_words="english",
                           token_pattern=r"(?u)\b[a-zA-Z_][a-zA-Z0-9_]+\b", ngram_range=(1, 2),
                           max_features=20000, norm="l2", use_idf=True, smooth_idf=True, sublinear_tf=True,
                           max_df=0.5 if small else 0.1, min_df=1 if small else 2, dtype=np.float32)


class LexicalIndex:
    """tf-idf rows of papers by id; ``fit``/``add``, ``get``, persisted in ``directory``."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self._lock = threading.RLock()
        self.vectorizer = None
        self.fitted_on = 0
        self.ids: list[str] = []
        self._row: dict[str, int] = {}
        self.matrix = sp.csr_matrix((0, 0), dtype=np.float32)
        self._load()

    def _load(self) -> None:
        files = [self.directory / n for n in ("tfidf.pkl", "matrix.npz", "ids.json")]
        if not all(f.is_file() for f in files):
            return
        try:
            with open(files[0], "rb") as fh:
                state = pickle.load(fh)
            self.vectorizer, self.fitted_on = state["vectorizer"], int(state["fitted_on"])
            self.matrix = sp.load_npz(files[1]).tocsr().astype(np.float32)
            self.ids = json.loads(files[2].read_text())
            self._row = {pid: r for r, pid in enumerate(self.ids)}
            if self.matrix.shape[0] != len(self.ids):
                raise ValueError("matrix and ids disagree")
        except Exception as exc:  # noqa: BLE001 - a damaged index is rebuilt, not fatal
            log.warning("lexical index in %s unreadable (%s); it will be rebuilt", self.directory, exc)
            self.vectorizer, self.ids, self._row = None, [], {}
            self.matrix = sp.csr_matrix((0, 0), dtype=np.float32)

    def save(self) -> None:
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = self.directory / "tfidf.pkl.tmp"
            with open(tmp, "wb") as fh:
                pickle.dump({"vectorizer": self.vectorizer, "fitted_on": self.fitted_on}, fh)
            os.replace(tmp, self.directory / "tfidf.pkl")
            with open(self.directory / "matrix.npz.tmp", "wb") as fh:
                sp.save_npz(fh, self.matrix)
            os.replace(self.directory / "matrix.npz.tmp", self.directory / "matrix.npz")
            (self.directory / "ids.json.tmp").write_text(json.dumps(self.ids))
            os.replace(self.directory / "ids.json.tmp", self.directory / "ids.json")

    @property
    def ready(self) -> bool:
        return self.vectorizer is not None

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, paper_id: object) -> bool:
        return paper_id in self._row

    def missing(self, ids: Sequence[str]) -> list[str]:
        return [i for i in ids if i not in self._row]

    def needs_refit(self, total: int) -> bool:
        return not self.ready or total >= REFIT_GROWTH * max(self.fitted_on, 1)

    def fit(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        """Fit the vocabulary on these papers and replace the index with them."""
        vec = make_vectorizer(len(texts))
        try:
            matrix = vec.fit_transform(list(texts)).tocsr().astype(np.float32)
        except ValueError as exc:  # e.g. no terms left on a handful of papers
            log.warning("tf-idf could not be fitted on %d papers (%s); lexical similarity is off", len(texts), exc)
            return
        with self._lock:
            self.vectorizer, self.fitted_on = vec, len(texts)
            self.ids = list(ids)
            self._row = {pid: r for r, pid in enumerate(self.ids)}
            self.matrix = matrix
        log.info("tf-idf fitted on %d papers (%d terms)", len(texts), len(vec.vocabulary_))

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        if self.vectorizer is None:
            raise RuntimeError("the lexical index is not fitted")
        return self.vectorizer.transform(list(texts)).tocsr().astype(np.float32)

    def add(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        """Add (or replace) papers using the fitted vocabulary."""
        if not ids:
            return
        rows = self.transform(texts)
        with self._lock:
            fresh = [k for k, pid in enumerate(ids) if pid not in self._row]
            for k, pid in enumerate(ids):
                if pid in self._row:  # replaced text: rebuild that row
                    r = self._row[pid]
                    m = self.matrix.tolil()
                    m[r] = rows[k]
                    self.matrix = m.tocsr()
            if fresh:
                self.matrix = sp.vstack([self.matrix, rows[fresh]]).tocsr()
                for k in fresh:
                    self._row[ids[k]] = len(self.ids)
                    self.ids.append(ids[k])

    def get(self, ids: Sequence[str]) -> sp.csr_matrix:
        """Rows of ``ids`` (KeyError for an id not in the index)."""
        with self._lock:
            return self.matrix[[self._row[i] for i in ids]]
