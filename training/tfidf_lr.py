"""Training of the tf-idf logistic-regression head (``recommender.classification.tfidf_head``).

The vocabulary and idf are learned from the training papers (terms in at least ``min_df`` papers and at most
``max_df`` of them, the ``max_features`` most frequent; smooth idf, as scikit-learn's ``TfidfVectorizer``), the
features are computed by the head's own code (so training and inference cannot drift apart), and the 149
one-vs-rest logistic regressions are fitted jointly in torch: mean binary cross-entropy over papers and
categories plus an L2 penalty, mini-batch Adam over sparse batches, a few epochs. Unweighted loss: the
probabilities are the model's estimates, no prior correction needed. This replaces scikit-learn's liblinear
one-vs-rest fit, which took 48 minutes for the baseline; this takes a few minutes on one core.
"""
from __future__ import annotations

import logging
import math
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from recommender.classification.tfidf_head import TfidfHead

log = logging.getLogger(__name__)


@dataclass
class LrConfig:
    max_features: int = 50_000
    min_df: int = 3
    max_df: float = 0.5
    epochs: int = 6
    batch_size: int = 512
    lr: float = 0.02
    l2: float = 1e-6  # on the summed-over-categories, mean-over-papers loss
    seed: int = 13


def fit_vocabulary(docs: Sequence[Sequence[str]], cfg: LrConfig) -> tuple[list[str], np.ndarray]:
    """Terms (column order) and their smooth idf ln((1 + n) / (1 + df)) + 1 from the training papers."""
    df: Counter[str] = Counter()
    tf: Counter[str] = Counter()
    for terms in docs:
        tf.update(terms)
        df.update(set(terms))
    n = len(docs)
    ok = [t for t, d in df.items() if d >= cfg.min_df and d <= cfg.max_df * n]
    ok.sort(key=lambda t: (-tf[t], t))
    terms = sorted(ok[:cfg.max_features])
    idf = np.array([math.log((1 + n) / (1 + df[t])) + 1 for t in terms], dtype=np.float32)
    return terms, idf


def feature_matrix(head: TfidfHead, docs: Sequence[Sequence[str]]) -> sp.csr_matrix:
    indptr, indices, values = [0], [], []
    for terms in docs:
        cols, vals = head.features(terms)
        indices.append(cols)
        values.append(vals)
        indptr.append(indptr[-1] + len(cols))
    return sp.csr_matrix((np.concatenate(values) if values else np.zeros(0, np.float32),
                          np.concatenate(indices) if indices else np.zeros(0, np.int64), np.array(indptr)),
                         shape=(len(docs), len(head.index)))


def _torch_sparse(x: sp.csr_matrix) -> torch.Tensor:
    coo = x.tocoo()
    idx = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    return torch.sparse_coo_tensor(idx, torch.from_numpy(coo.data.astype(np.float32)), coo.shape,
                                   check_invariants=False).coalesce()


def fit_weights(x: sp.csr_matrix, y: np.ndarray, cfg: LrConfig) -> tuple[np.ndarray, np.ndarray]:
    """Jointly fitted one-vs-rest logistic regressions: (F, C) weights and (C,) biases."""
    torch.manual_seed(cfg.seed)
    n, f = x.shape
    c = y.shape[1]
    w = torch.zeros(f, c, requires_grad=True)
    prior = np.clip(y.mean(0), 1e-5, 1 - 1e-5)
    b = torch.tensor(np.log(prior / (1 - prior)), dtype=torch.float32, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=cfg.lr)
    steps = cfg.epochs * math.ceil(n / cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.05, 1 - s / steps))
    rng = random.Random(cfg.seed)
    t0 = time.time()
    for epoch in range(cfg.epochs):
        order = list(range(n))
        rng.shuffle(order)
        total = 0.0
        for s in range(0, n, cfg.batch_size):
            rows = np.array(order[s:s + cfg.batch_size])
            xb = _torch_sparse(x[rows])
            yb = torch.from_numpy(y[rows].astype(np.float32))
            logits = torch.sparse.mm(xb, w) + b
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, yb, reduction="sum") / len(rows)
            obj = loss + cfg.l2 * (w * w).sum()
            opt.zero_grad(set_to_none=True)
            obj.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(rows)
        log.info("tf-idf LR epoch %d/%d: loss %.4f (%.0f s)", epoch + 1, cfg.epochs, total / n, time.time() - t0)
    return w.detach().numpy(), b.detach().numpy()


def train_head(docs: Sequence[Sequence[str]], y: np.ndarray, cfg: LrConfig) -> TfidfHead:
    terms, idf = fit_vocabulary(docs, cfg)
    empty = TfidfHead(terms, idf, np.zeros((len(terms), y.shape[1]), np.float32), np.zeros(y.shape[1], np.float32))
    x = feature_matrix(empty, docs)
    w, b = fit_weights(x, y, cfg)
    return TfidfHead(terms, idf, w, b)


def head_logits(head: TfidfHead, docs: Sequence[Sequence[str]]) -> np.ndarray:
    """Logits through the sparse matrix (fast, the same numbers as ``head.logits``)."""
    x = feature_matrix(head, docs)
    return np.asarray(x @ head.weights + head.bias, dtype=np.float32)
