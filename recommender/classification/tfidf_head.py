"""The tf-idf logistic-regression head of the shipped classifier: inference only (training is in ``training/``).

A paper's words (the classifier's own tokeniser, :func:`textprep.tokenize`, on title and abstract) become a
tf-idf vector (sublinear term frequency 1 + log tf, times the term's idf, L2-normalised), and one linear layer
gives a logit per category (one-vs-rest logistic regression trained jointly on every category). The files, in
the model directory: ``tfidf_vocab.json`` (the terms in column order and their idf) and ``tfidf_lr.npz`` (the
weights as a sparse matrix by category in fp16: small weights were pruned at export, plus the fp32 biases).
No pickle: both load with ``json`` and ``numpy.load(allow_pickle=False)``.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recommender.classification.textprep import tokenize

VOCAB_FILE = "tfidf_vocab.json"
WEIGHTS_FILE = "tfidf_lr.npz"


def paper_terms(title: str, abstract: str) -> list[str]:
    """The words the tf-idf head counts (the same tokeniser as the SHA-RNN, no length cap)."""
    return tokenize(title) + tokenize(abstract)


class TfidfHead:
    """tf-idf features -> linear logits, for the categories of the model directory in their order."""

    def __init__(self, terms: Sequence[str], idf: np.ndarray, weights: np.ndarray, bias: np.ndarray) -> None:
        if weights.shape != (len(terms), len(bias)) or idf.shape != (len(terms),):
            raise ValueError(f"tf-idf head shapes disagree: {len(terms)} terms, idf {idf.shape}, "
                             f"weights {weights.shape}, bias {bias.shape}")
        self.index = {t: i for i, t in enumerate(terms)}
        self.idf = idf.astype(np.float32)
        self.weights = weights.astype(np.float32)  # (F, C)
        self.bias = bias.astype(np.float32)

    @property
    def n_categories(self) -> int:
        return len(self.bias)

    # --- files -----------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, model_dir: Path) -> TfidfHead:
        vocab = json.loads((model_dir / VOCAB_FILE).read_text(encoding="utf-8"))
        with np.load(model_dir / WEIGHTS_FILE, allow_pickle=False) as z:
            n_terms, n_cats = (int(x) for x in z["shape"])
            dense = np.zeros((n_cats, n_terms), dtype=np.float32)
            indptr, indices, values = z["indptr"], z["indices"], z["values"].astype(np.float32)
            for c in range(n_cats):
                dense[c, indices[indptr[c]:indptr[c + 1]]] = values[indptr[c]:indptr[c + 1]]
            bias = z["bias"].astype(np.float32)
        return cls(vocab["terms"], np.asarray(vocab["idf"], dtype=np.float32), dense.T, bias)

    def save(self, model_dir: Path, prune: float = 0.0) -> dict[str, float]:
        """Write the two files; weights with ``|w| < prune`` are dropped. Returns sizes and the kept share."""
        terms = sorted(self.index, key=self.index.__getitem__)
        (model_dir / VOCAB_FILE).write_text(
            json.dumps({"terms": terms, "idf": [round(float(x), 5) for x in self.idf]}, ensure_ascii=False),
            encoding="utf-8")
        w = self.weights.T  # (C, F): one row per category
        keep = np.abs(w) >= prune
        indptr = np.concatenate([[0], np.cumsum(keep.sum(1))]).astype(np.int64)
        idx_type = np.uint16 if w.shape[1] <= np.iinfo(np.uint16).max + 1 else np.uint32
        indices = np.nonzero(keep)[1].astype(idx_type)
        np.savez_compressed(model_dir / WEIGHTS_FILE, shape=np.array(self.weights.shape, dtype=np.int64),
                            indptr=indptr, indices=indices, values=w[keep].astype(np.float16),
                            bias=self.bias.astype(np.float32))
        return {"kept_share": float(keep.mean()),
                "mb": ((model_dir / VOCAB_FILE).stat().st_size + (model_dir / WEIGHTS_FILE).stat().st_size) / 1e6}

    # --- inference -------------------------------------------------------------------------------------------
    def features(self, terms: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The paper's tf-idf vector as (column indices, values), L2-normalised; empty if no known term."""
        counts = Counter(self.index[t] for t in terms if t in self.index)
        if not counts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        cols = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        tf = np.fromiter((1.0 + math.log(n) for n in counts.values()), dtype=np.float32, count=len(counts))
        vals = tf * self.idf[cols]
        return cols, vals / np.float32(np.linalg.norm(vals))

    def logits(self, papers_terms: Sequence[Sequence[str]]) -> np.ndarray:
        """(N, C) logits for each paper's terms."""
        out = np.empty((len(papers_terms), self.n_categories), dtype=np.float32)
        for n, terms in enumerate(papers_terms):
            cols, vals = self.features(terms)
            out[n] = vals @ self.weights[cols] + self.bias
        return out
