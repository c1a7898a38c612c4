"""Category prediction with the shipped SHA-RNN model: load once, predict one paper or a batch, CLI command.

A model directory (default ``data/models/sharnn-v2``) holds ``config.json`` (network shape, length cap,
threshold, provenance), ``labels.json`` (category codes, names, groups), ``vocab.txt``, ``phrases.txt``,
``vectors.f16.npy`` (frozen word vectors, fp16) and ``weights.pt`` (the trainable weights), plus
``metrics.json``. :func:`get_classifier` loads it lazily once per process. ``predict`` returns the categories
whose probability reaches the threshold (always at least the top one) and the master categories (taxonomy
groups) whose "mixed" probability 1 - (1 - p1)(1 - p2) of their two most probable categories reaches it
(always at least the top category's group).
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

log = logging.getLogger(__name__)

MODEL_NAME = paths.CLASSIFIER_NAME
DEFAULT_MODEL_DIR = paths.CLASSIFIER_DIR
MAX_INPUT_CHARS = 100_000  # longer input is cut (the model reads at most max_tokens tokens anyway)


class ClassifierError(ValueError):
    """Input the classifier cannot work with, or a missing/broken model directory."""


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
                 threshold: float, meta: dict[str, Any]) -> None:
        self.model = model.eval()
        self.index = {t: i for i, t in enumerate(vocab)}
        self.phrases = phrases
        self.codes, self.names, self.groups = codes, names, groups
        self.group_index = np.array([groups.index(group_of[c]) for c in codes])
        self.max_tokens = max_tokens
        self.threshold = threshold
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
        return cls(model, vocab, phrases, codes, {c["code"]: c["name"] for c in cats}, labels["groups"],
                   {c["code"]: c["group"] for c in cats}, int(cfg["max_tokens"]), float(cfg["threshold"]), cfg)

    # --- inference -------------------------------------------------------------------------------------------
    def encode(self, title: str, abstract: str) -> tuple[np.ndarray, float]:
        if not isinstance(title, str) or not isinstance(abstract, str):
            raise ClassifierError("title and abstract must be text")
        title, abstract = title[:MAX_INPUT_CHARS], abstract[:MAX_INPUT_CHARS]
        toks = preprocess(title, abstract, self.max_tokens, self.phrases)
        words = len(toks) - 4
        if words <= 0:
            raise ClassifierError("nothing to classify: title and abstract are both empty")
        ids = np.fromiter((self.index.get(t, 1) for t in toks), dtype=np.int64, count=len(toks))
        return ids, float((ids == 1).sum()) / words

    @torch.no_grad()
    def probabilities(self, encoded: Sequence[np.ndarray], batch_size: int = 256) -> np.ndarray:
        out = np.zeros((len(encoded), len(self.codes)), dtype=np.float32)
        order = sorted(range(len(encoded)), key=lambda k: len(encoded[k]))
        for s in range(0, len(order), batch_size):
            ks = order[s:s + batch_size]
            lengths = torch.tensor([len(encoded[k]) for k in ks])
            ids = torch.zeros(len(ks), int(lengths.max()), dtype=torch.long)
            for row, k in enumerate(ks):
                ids[row, : len(encoded[k])] = torch.from_numpy(encoded[k])
            out[ks] = torch.sigmoid(self.model.calibrated_logits(ids, lengths)).numpy()
        return out

    def _prediction(self, probs: np.ndarray, unknown_ratio: float) -> Prediction:
        order = np.argsort(-probs)
        cats = [(self.codes[i], float(probs[i])) for i in order if probs[i] >= self.threshold] or \
               [(self.codes[order[0]], float(probs[order[0]]))]
        masters = []
        for g, name in enumerate(self.groups):
            top2 = np.sort(probs[self.group_index == g])[-2:]
            masters.append((name, float(1 - np.prod(1 - top2))))
        masters.sort(key=lambda x: -x[1])
        top_group = self.groups[self.group_index[order[0]]]
        kept = [(g, p) for g, p in masters if p >= self.threshold or g == top_group]
        return Prediction(cats, kept, self.names, unknown_ratio)

    def predict(self, title: str, abstract: str) -> Prediction:
        ids, unk = self.encode(title, abstract)
        return self._prediction(self.probabilities([ids])[0], unk)

    def predict_batch(self, papers: Sequence[tuple[str, str]], batch_size: int = 256) -> list[Prediction]:
        encoded = [self.encode(t, a) for t, a in papers]
        probs = self.probabilities([e[0] for e in encoded], batch_size)
        return [self._prediction(p, e[1]) for p, e in zip(probs, encoded, strict=True)]


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
