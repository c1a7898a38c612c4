"""Features of (user, candidate) pairs for the learned ranker, computed from one scoring block at a time.

The scoring kernel (:func:`recommender.ranking.profile.score_block`) already holds, for a block of profiles, the
similarity of every positive item (likes, then the interest) to every candidate: the embedding (MiniLM) cosines
and the mixed ones (0.8 tf-idf + 0.2 MiniLM), from which the tf-idf cosines are recovered exactly. From these and
a few products more, :func:`block_features` gives each profile's features over the candidates, ``FEATURES`` in
order:

- ``mix_soft``: the softmax-pooled mixed similarity (the product's previous score before dislikes);
- ``emb_max``, ``lex_max``, ``emb_mean``, ``lex_mean``: the nearest and the mean MiniLM / tf-idf cosine to the
  positives (``lex_mean`` is the candidate's tf-idf product with the centroid of the likes: with ``bg_lex``, the
  background centroid's, it makes the per-user Rocchio linear model on tf-idf, likes vs background, that a
  strongly regularised linear SVM such as arxiv-sanity-lite's converges to);
- ``lda``: a per-user linear model on MiniLM, likes vs a background sample of papers: Fisher's discriminant
  ``w = S^-1 (mean(likes) - mean(background))`` with the background's shrunk covariance ``S`` shared by all
  users, reported as the candidate's z-score along ``w``. Closed form, so it follows every rating at once (a
  running mean), with no per-user fit to refresh;
- ``lda_x_n``, ``lex_mean_x_n``: those two times ``min(likes, 25) / 25``: a linear model earns trust with ratings;
- ``bg_emb``, ``bg_lex``: the candidate's cosine to the background centroid (how generic it is);
- ``dis_emb_max``, ``dis_lex_max``: the nearest disliked paper's MiniLM / tf-idf cosine (0 without dislikes);
- ``dis_penalty``: how near a duplicate of a disliked paper the candidate is: ``max(0, cos - 0.6) / 0.4`` to the
  nearest dislike (MiniLM; papers on the same topic sit at 0.3-0.6, so only near-duplicates are hit).
  Its weight is not fitted but set (:meth:`recommender.ranking.learned.RankerModel.with_dislike_rule`): a
  candidate near a disliked paper loses as much as if it were that much (in cosine) further from the likes. The
  evaluation's proxies have no real dislikes (a simulated "dislike" is a shown paper by someone else, usually on
  the user's very topic), so fitted dislike weights are kept at or below zero;
- ``cat``, ``cat_primary``: how much of the likes' category distribution the candidate's categories (all listed
  ones; the primary one) carry, the distribution shrunk by n/(n+3) for n likes (one like is weak evidence of a
  user's categories: without it a single liked paper's category outweighed its topic). ``categories`` of a
  paper may be its arXiv listing or the classifier's predicted
  categories; followed categories are no feature since digest candidates are already limited to them.

No author features: the evaluation's author proxy defines relevance by authorship.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommender.ranking.profile import Block, Profile, _lex_sims, _segment_max, _segment_sums

FEATURES = ("mix_soft", "emb_max", "lex_max", "emb_mean", "lex_mean", "lda", "lda_x_n", "lex_mean_x_n",
            "bg_emb", "bg_lex", "dis_emb_max", "dis_lex_max", "cat", "cat_primary", "dis_penalty")
LIKE_SIMILARITY = ("mix_soft", "emb_max", "lex_max", "emb_mean", "lex_mean")  # in cosine units
DISLIKE_NEAR = 0.6  # MiniLM cosine to a disliked paper from which dis_penalty starts
DISLIKE_PRIOR = 10.0  # the background counts as this many dislikes in the per-user discriminant
TRUST_LIKES = 25  # likes at which the per-user linear models get their full weight


@dataclass(frozen=True, eq=False)
class Background:
    """What "an ordinary paper" looks like: the centroid and the shrunk inverse covariance of a background sample's
    embeddings, and its mean tf-idf row (None without tf-idf)."""

    emb_mean: np.ndarray  # (d,)
    emb_prec: np.ndarray  # (d, d)
    lex_mean: np.ndarray | None = None  # (V,)

    @classmethod
    def fit(cls, vecs: np.ndarray, lex: sp.csr_matrix | None = None, shrink: float = 0.2) -> Background:
        """From background vectors (n, d) and optionally their tf-idf rows: covariance shrunk toward its mean
        variance (``shrink``), so a few hundred papers already give a usable inverse."""
        x = np.asarray(vecs, np.float64)
        mean = x.mean(axis=0)
        xc = x - mean
        cov = xc.T @ xc / max(len(x) - 1, 1)
        var = float(np.trace(cov)) / cov.shape[0]
        cov = (1 - shrink) * cov + shrink * var * np.eye(cov.shape[0])
        prec = np.linalg.inv(cov)
        return cls(mean.astype(np.float32), prec.astype(np.float32), lex_mean_of(lex))

    def with_lex(self, lex: sp.csr_matrix | None) -> Background:
        return Background(self.emb_mean, self.emb_prec, lex_mean_of(lex))


def lex_mean_of(lex: sp.csr_matrix | None) -> np.ndarray | None:
    if lex is None or lex.shape[0] == 0:
        return None
    return np.asarray(lex.mean(axis=0), np.float32).ravel()


class CandidateCategories:
    """The candidates' categories as two sparse matrices, built once per candidate set: every listed category
    at 1/count (``every``) and the primary one (``primary``), columns by ``col``."""

    def __init__(self, cats: Sequence[Sequence[str]]) -> None:
        self.lists = [list(c) for c in cats]
        self.col: dict[str, int] = {}
        rows_a, cols_a, vals_a, rows_p, cols_p = [], [], [], [], []
        for r, cs in enumerate(cats):
            uniq = list(dict.fromkeys(cs))
            for c in uniq:
                rows_a.append(r)
                cols_a.append(self.col.setdefault(c, len(self.col)))
                vals_a.append(1.0 / len(uniq))
            if uniq:
                rows_p.append(r)
                cols_p.append(self.col[uniq[0]])
        shape = (len(cats), max(len(self.col), 1))
        self.every = sp.csr_matrix((np.asarray(vals_a, np.float32), (rows_a, cols_a)), shape=shape)
        self.primary = sp.csr_matrix((np.ones(len(rows_p), np.float32), (rows_p, cols_p)), shape=shape)

    def __len__(self) -> int:
        return int(self.every.shape[0])

    def subset(self, rows: Sequence[int]) -> CandidateCategories:
        out = CandidateCategories.__new__(CandidateCategories)
        out.col, out.every, out.primary = self.col, self.every[list(rows)], self.primary[list(rows)]
        out.lists = [self.lists[r] for r in rows]
        return out

    def profile_rows(self, profiles: Sequence[Profile]) -> tuple[np.ndarray, np.ndarray]:
        """(U, C) each profile's likes' category distribution (every listed category; the primary one) over
        these columns (categories no candidate has are left out: they add nothing to a product)."""
        width = self.every.shape[1]
        every = np.zeros((len(profiles), width), np.float32)
        primary = np.zeros((len(profiles), width), np.float32)
        for j, p in enumerate(profiles):
            cats = p.like_categories or []
            if not cats:
                continue
            # shrunk toward no category preference: one like says little about a user's categories (n/(n+K))
            share = 1.0 / (len(cats) + CATEGORY_PRIOR_LIKES)
            for cs in cats:
                uniq = list(dict.fromkeys(cs))
                for c in uniq:
                    k = self.col.get(c)
                    if k is not None:
                        every[j, k] += share / len(uniq)
                if uniq and uniq[0] in self.col:
                    primary[j, self.col[uniq[0]]] += share
        return every, primary


CATEGORY_PRIOR_LIKES = 3  # K: the likes' category distribution counts n/(n+K), so 1 like 25%, 20 likes 87%


def category_features(profiles: Sequence[Profile], cands: CandidateCategories | None, n: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(U, n) ``cat`` and ``cat_primary``: the likes' category distribution (all listed categories, the primary
    one) dotted with each candidate's. Zero for profiles whose likes' categories are unknown."""
    u = len(profiles)
    if cands is None or not any(p.like_categories for p in profiles):
        return np.zeros((u, n), np.float32), np.zeros((u, n), np.float32)
    every, primary = cands.profile_rows(profiles)
    return (np.asarray((cands.every @ every.T).T, np.float32),
            np.asarray((cands.primary @ primary.T).T, np.float32))


def lda_scores(profiles: Sequence[Profile], cand: np.ndarray, bg: Background) -> np.ndarray:
    """(U, n) z-scores of the candidates along each profile's Fisher direction: likes (or the interest when
    there are none) against the negatives, the background plus the dislikes (the background weighing as
    ``DISLIKE_PRIOR`` dislikes)."""
    means, negs = [], []
    for p in profiles:
        if p.likes is not None and len(p.like_ids):
            means.append(np.asarray(p.likes, np.float32).mean(axis=0))
        elif p.interest_vec is not None:
            means.append(np.asarray(p.interest_vec, np.float32))
        else:
            means.append(bg.emb_mean)
        if p.dislikes is not None and len(p.dislike_ids):
            d = np.asarray(p.dislikes, np.float32)
            negs.append((d.sum(axis=0) + DISLIKE_PRIOR * bg.emb_mean) / (len(d) + DISLIKE_PRIOR))
        else:
            negs.append(bg.emb_mean)
    m = np.stack(means) - np.stack(negs)  # (U, d)
    w = m @ bg.emb_prec  # prec is symmetric
    norm = np.sqrt(np.maximum((m * w).sum(axis=1), 1e-12))
    out = (w @ cand.T - (w @ bg.emb_mean)[:, None]) / norm[:, None]
    return np.asarray(out, np.float32)


def dislike_features(profiles: Sequence[Profile], cand: np.ndarray, cand_lex: sp.csr_matrix | None,
                     emb_max: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(U, n) nearest disliked paper's MiniLM and tf-idf cosine (0 without dislikes or their tf-idf rows);
    ``emb_max``: the MiniLM part when the kernel has it already."""
    u, n = len(profiles), len(cand)
    emb, lex = np.zeros((u, n), np.float32), np.zeros((u, n), np.float32)
    have = [j for j, p in enumerate(profiles) if p.dislikes is not None and len(p.dislike_ids)]
    if not have:
        return emb, lex
    widths = np.array([len(profiles[j].dislike_ids) for j in have])
    if emb_max is not None:
        emb[have] = emb_max[have]
    else:
        offsets = np.r_[0, np.cumsum(widths)[:-1]].astype(np.int64)
        vecs = np.concatenate([np.asarray(profiles[j].dislikes, np.float32) for j in have])
        emb[have] = _segment_max(vecs @ cand.T, offsets, widths)
    with_lex = [k for k, j in enumerate(have) if profiles[j].dislikes_lex is not None]
    if cand_lex is not None and with_lex:
        rows = sp.vstack([profiles[have[k]].dislikes_lex for k in with_lex]).tocsr()
        sims = _lex_sims(rows, cand_lex)
        w2 = widths[with_lex]
        o2 = np.r_[0, np.cumsum(w2)[:-1]].astype(np.int64)
        lex[[have[k] for k in with_lex]] = _segment_max(sims, o2, w2)
    return emb, lex


def block_features(b: Block, profiles: Sequence[Profile], live: np.ndarray, cand: np.ndarray,
                   cand_lex: sp.csr_matrix | None, bg: Background,
                   cand_categories: CandidateCategories | None) -> dict[str, np.ndarray]:
    """Every feature of ``FEATURES`` as a (len(live), n) array for the profiles ``live`` of block ``b`` (indices
    into ``profiles``, the block's profiles). Requires tf-idf rows for those profiles' positives
    (``b.lexical``)."""
    w = b.params.lexical_weight
    widths = b.widths[live]
    prow = np.concatenate([np.arange(b.offsets[j], b.offsets[j] + b.widths[j]) for j in live])
    offsets = np.r_[0, np.cumsum(widths)[:-1]].astype(np.int64)
    emb = b.emb_rows(prow)
    lex = b.sims[prow]
    lex -= np.float32(1 - w) * emb
    lex *= np.float32(1 / w)
    inv_w = (1.0 / widths.astype(np.float32))[:, None]
    profs = [profiles[j] for j in live.tolist()]
    f: dict[str, np.ndarray] = {}
    f["mix_soft"] = b.score[live] + (b.penalty[live] if b.penalty is not None else 0)
    f["dis_penalty"] = np.zeros((len(live), len(cand)), np.float32) if b.dislike_max is None else \
        np.maximum(0.0, b.dislike_max[live] - DISLIKE_NEAR) / np.float32(1 - DISLIKE_NEAR)
    f["emb_max"] = _segment_max(emb, offsets, widths)
    f["lex_max"] = _segment_max(lex, offsets, widths)
    f["emb_mean"] = _segment_sums(emb, offsets, widths) * inv_w
    f["lex_mean"] = _segment_sums(lex, offsets, widths) * inv_w
    del emb, lex
    trust = np.array([min(len(p.like_ids), TRUST_LIKES) / TRUST_LIKES for p in profs], np.float32)[:, None]
    f["lda"] = lda_scores(profs, cand, bg)
    f["lda_x_n"] = f["lda"] * trust
    f["lex_mean_x_n"] = f["lex_mean"] * trust
    n = len(cand)
    f["bg_emb"] = np.broadcast_to((cand @ bg.emb_mean).astype(np.float32), (len(live), n))
    bg_lex = np.zeros(n, np.float32) if bg.lex_mean is None or cand_lex is None else \
        np.asarray(cand_lex @ bg.lex_mean, np.float32).ravel()
    f["bg_lex"] = np.broadcast_to(bg_lex, (len(live), n))
    f["dis_emb_max"], f["dis_lex_max"] = dislike_features(profs, cand, cand_lex,
                                                          None if b.dislike_max is None else b.dislike_max[live])
    f["cat"], f["cat_primary"] = category_features(profs, cand_categories, n)
    return f
