"""Category prediction with the shipped classifier: load once, predict one paper or a batch.

A model directory (default ``paths.CLASSIFIER_DIR``) holds the SHA-RNN: ``config.json`` (network shape, length
cap, threshold, provenance), ``labels.json`` (category codes, names, groups), ``vocab.txt``, ``phrases.txt``,
``vectors.f16.npy`` (frozen word vectors, fp16), ``weights.pt`` (the trainable weights), ``metrics.json``; and,
for the ensemble, the tf-idf logistic-regression head (``tfidf_vocab.json``, ``tfidf_lr.npz``, see
:mod:`tfidf_head`) and ``ensemble.json``: how the two heads' logits are combined (a global linear stack fitted
on validation: p = sigmoid(a z_sharnn + b z_tfidf + c)) and one threshold per category (tuned on validation,
shrunk toward the global threshold for rare categories). A directory without ``ensemble.json`` is the SHA-RNN
alone with its single threshold. :func:`get_classifier` loads a directory lazily once per process.
``predict`` returns the categories whose probability reaches their threshold (always at least the top one)
and the master categories (taxonomy groups) whose "mixed" probability 1 - (1 - p1)(1 - p2) of their two most
probable categories reaches the global threshold (always at least the top category's group).
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recommender import paths
from recommender.classification.shanet import NetConfig, ShaRNN
from recommender.classification.textprep import preprocess
from recommender.classification.tfidf_head import TfidfHead, paper_terms

log = logging.getLogger(__name__)

MODEL_NAME = paths.CLASSIFIER_NAME
DEFAULT_MODEL_DIR = paths.CLASSIFIER_DIR
MAX_INPUT_CHARS = 100_000  # longer input is cut (the model reads at most max_tokens tokens anyway)


ENSEMBLE_FILE = "ensemble.json"


class ClassifierError(ValueError):
    """Input the classifier cannot work with, or a missing/broken model directory."""


@dataclass
class Encoded:
    """One paper as the heads read it: the SHA-RNN's token ids and the tf-idf head's terms."""

    ids: np.ndarray
    terms: list[str]
    unknown_ratio: float  # share of words outside the SHA-RNN's vocabulary


@dataclass
class Stack:
    """How the heads' logits are combined: sigmoid(sharnn * z_sharnn + tfidf * z_tfidf + bias)."""

    sharnn: float = 1.0
    tfidf: float = 0.0
    bias: float = 0.0

    def combine(self, z_sharnn: np.ndarray, z_tfidf: np.ndarray | None) -> np.ndarray:
        z = self.sharnn * z_sharnn.astype(np.float64) + self.bias
        if z_tfidf is not None and self.tfidf:
            z = z + self.tfidf * z_tfidf
        return (1 / (1 + np.exp(-z))).astype(np.float32)


@dataclass
class Prediction:
    categories: list[tuple[str, float]]  # (code, probability), most probable first
    masters: list[tuple[str, float]]  # (group name, probability), most probable first
    names: dict[str, str] = field(default_factory=dict, repr=False)  # code -> category name
    unknown_ratio: float = 0.0  # share of words outside the vocabulary (high: not arXiv-like English)

    @property
    def top(self) -> str:
        return self.categories[0][0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "categories": [{"code": c, "name": self.names.get(c, c), "probability": round(p, 4)}
                           for c, p in self.categories],
            "masters": [{"name": g, "probability": round(p, 4)} for g, p in self.masters],
            "unknown_ratio": round(self.unknown_ratio, 3),
        }


class Classifier:
    def __init__(self, model: ShaRNN, vocab: list[str], phrases: frozenset[str], codes: list[str],
                 names: dict[str, str], groups: list[str], group_of: dict[str, str], max_tokens: int,
                 threshold: float, meta: dict[str, Any], tfidf: TfidfHead | None = None,
                 stack: Stack | None = None, thresholds: np.ndarray | None = None) -> None:
        self.model = model.eval()
        self.tfidf = tfidf
        self.stack = stack or Stack()
        if tfidf is not None and tfidf.n_categories != len(codes):
            raise ClassifierError(f"the tf-idf head has {tfidf.n_categories} categories, the labels {len(codes)}")
        self.index = {t: i for i, t in enumerate(vocab)}
        self.phrases = phrases
        self.codes, self.names, self.groups = codes, names, groups
        self.group_index = np.array([groups.index(group_of[c]) for c in codes])
        self.max_tokens = max_tokens
        self.threshold = threshold  # global: master categories (and every category without its own)
        self.thresholds = (np.full(len(codes), threshold, dtype=np.float32) if thresholds is None
                           else np.asarray(thresholds, dtype=np.float32))
        if self.thresholds.shape != (len(codes),):
            raise ClassifierError(f"{len(self.thresholds)} category thresholds for {len(codes)} categories")
        self.meta = meta

    @classmethod
    def load(cls, model_dir: Path | None = None) -> Classifier:
        d = Path(model_dir) if model_dir is not None else DEFAULT_MODEL_DIR
        needed = ["config.json", "labels.json", "vocab.txt", "phrases.txt", "vectors.f16.npy", "weights.pt"]
        missing = [n for n in needed if not (d / n).exists()]
        if missing:
            raise ClassifierError(f"model directory {d} is missing {', '.join(missing)}; "
                                  "train one with `arxiv-digest train`")
        cfg = json.loads((d / "config.json").read_text())
        labels = json.loads((d / "labels.json").read_text())
        vocab = (d / "vocab.txt").read_text(encoding="utf-8").splitlines()
        phrases = frozenset(p for p in (d / "phrases.txt").read_text(encoding="utf-8").splitlines() if p)
        vectors = torch.from_numpy(np.load(d / "vectors.f16.npy").astype(np.float32))
        net = NetConfig(**cfg["net"])
        model = ShaRNN(net, vectors)
        state = torch.load(d / "weights.pt", map_location="cpu", weights_only=True)
        missing_keys, unexpected = model.load_state_dict(state, strict=False)
        # embed.weight lives in vectors.f16.npy; models saved before prior_shift existed keep it at zero
        if unexpected or [k for k in missing_keys if k not in ("embed.weight", "prior_shift")]:
            raise ClassifierError(f"weights in {d} do not match its config ({missing_keys}, {unexpected})")
        cats = labels["categories"]
        codes = [c["code"] for c in cats]
        cfg["dir"] = str(d)
        threshold = float(cfg["threshold"])
        tfidf, stack, thresholds = None, None, None
        if (d / ENSEMBLE_FILE).exists():
            ens = json.loads((d / ENSEMBLE_FILE).read_text())
            try:
                tfidf = TfidfHead.load(d)
            except (OSError, KeyError, ValueError) as e:
                raise ClassifierError(f"the tf-idf head in {d} cannot be loaded: {e}") from e
            stack = Stack(**ens["stack"])
            threshold = float(ens["threshold"])
            thresholds = np.asarray(ens["thresholds"], dtype=np.float32)
            cfg = {**cfg, "ensemble": {k: v for k, v in ens.items() if k != "thresholds"}}
        return cls(model, vocab, phrases, codes, {c["code"]: c["name"] for c in cats}, labels["groups"],
                   {c["code"]: c["group"] for c in cats}, int(cfg["max_tokens"]), threshold, cfg,
                   tfidf=tfidf, stack=stack, thresholds=thresholds)

    # --- inference -------------------------------------------------------------------------------------------
    def encode(self, title: str, abstract: str) -> Encoded:
        if not isinstance(title, str) or not isinstance(abstract, str):
            raise ClassifierError("title and abstract must be text")
        title, abstract = title[:MAX_INPUT_CHARS], abstract[:MAX_INPUT_CHARS]
        toks = preprocess(title, abstract, self.max_tokens, self.phrases)
        words = len(toks) - 4
        if words <= 0:
            raise ClassifierError("nothing to classify: title and abstract are both empty")
        ids = np.fromiter((self.index.get(t, 1) for t in toks), dtype=np.int64, count=len(toks))
        terms = paper_terms(title, abstract) if self.tfidf is not None else []
        return Encoded(ids, terms, float((ids == 1).sum()) / words)

    @torch.no_grad()
    def sharnn_logits(self, encoded: Sequence[Encoded], batch_size: int = 256) -> np.ndarray:
        """(N, C) prior-corrected logits of the SHA-RNN head."""
        out = np.zeros((len(encoded), len(self.codes)), dtype=np.float32)
        order = sorted(range(len(encoded)), key=lambda k: len(encoded[k].ids))
        for s in range(0, len(order), batch_size):
            ks = order[s:s + batch_size]
            lengths = torch.tensor([len(encoded[k].ids) for k in ks])
            ids = torch.zeros(len(ks), int(lengths.max()), dtype=torch.long)
            for row, k in enumerate(ks):
                ids[row, : len(encoded[k].ids)] = torch.from_numpy(encoded[k].ids)
            out[ks] = self.model.calibrated_logits(ids, lengths).numpy()
        return out

    def tfidf_logits(self, encoded: Sequence[Encoded]) -> np.ndarray | None:
        """(N, C) logits of the tf-idf head, None when the model has none."""
        return None if self.tfidf is None else self.tfidf.logits([e.terms for e in encoded])

    def probabilities(self, encoded: Sequence[Encoded], batch_size: int = 256) -> np.ndarray:
        """(N, C) calibrated category probabilities of the (ensemble) model."""
        return self.stack.combine(self.sharnn_logits(encoded, batch_size), self.tfidf_logits(encoded))

    def _prediction(self, probs: np.ndarray, unknown_ratio: float) -> Prediction:
        order = np.argsort(-probs)
        # the top category always, and every other one at or above its own threshold
        cats = [(self.codes[i], float(probs[i])) for n, i in enumerate(order)
                if n == 0 or probs[i] >= self.thresholds[i]]
        masters = []
        for g, name in enumerate(self.groups):
            top2 = np.sort(probs[self.group_index == g])[-2:]
            masters.append((name, float(1 - np.prod(1 - top2))))
        masters.sort(key=lambda x: -x[1])
        top_group = self.groups[self.group_index[order[0]]]
        kept = [(g, p) for g, p in masters if p >= self.threshold or g == top_group]
        return Prediction(cats, kept, self.names, unknown_ratio)

    def predict(self, title: str, abstract: str) -> Prediction:
        enc = self.encode(title, abstract)
        return self._prediction(self.probabilities([enc])[0], enc.unknown_ratio)

    def predict_batch(self, papers: Sequence[tuple[str, str]], batch_size: int = 256) -> list[Prediction]:
        encoded = [self.encode(t, a) for t, a in papers]
        probs = self.probabilities(encoded, batch_size)
        return [self._prediction(p, e.unknown_ratio) for p, e in zip(probs, encoded, strict=True)]


_lock = threading.Lock()
_loaded: dict[Path, Classifier] = {}


def get_classifier(model_dir: Path | None = None) -> Classifier:
    """The classifier for ``model_dir`` (default: the shipped one), loaded once per process."""
    key = Path(model_dir).resolve() if model_dir is not None else DEFAULT_MODEL_DIR
    with _lock:
        if key not in _loaded:
            log.info("loading classifier from %s", key)
            _loaded[key] = Classifier.load(key)
        return _loaded[key]
