"""User profiles from likes, dislikes and a free-text interest, and the one scoring kernel every ranking uses.

A :class:`Profile` holds the vectors of the liked and disliked papers and of the interest text. Scoring stays
in cosine units, so one minimum-score threshold means the same thing for every user:

- ``mean``: cosine to the mean of the liked vectors (the baseline the product started from);
- ``max``: cosine to the nearest liked paper (or the interest);
- ``knn``: mean cosine to the ``k`` nearest liked papers;
- ``softmax`` (the default: ``tau`` 0.15 over similarities that mix in tf-idf with ``lexical_weight`` 0.8,
  the ``lexsem-0.8-0.15`` row chosen on the evaluation's dev half among the methods that keep interests apart,
  see ``docs/recommender_eval.md``): a softmax-weighted average of the similarities to every liked paper.
  Close to ``max`` for a paper near one interest, yet a paper near several liked papers ranks above one near a
  single outlier; distinct interests are never averaged into a point between them. Measured (test half,
  nDCG@10, ``bench/results/eval_recommender.json``): author proxy 0.465 vs 0.325 for the mean of likes,
  category proxy 0.693 vs 0.637, mixed interests 0.360 vs 0.168;
- ``hybrid``: ``mix * softmax + (1 - mix) * mean``, as good on the proxies, but its centroid part lifts
  papers half-way between two interests, so it is not the default.

The free-text interest counts as one more "liked" item (its cosine is usually lower than a paper's, text
against abstract). With tf-idf rows (``Profile.positives_lex`` and the candidates'), each positive's
similarity is ``(1 - lexical_weight) * embedding cos + lexical_weight * tf-idf cos`` before pooling; the same
pooling of the embedding cosines alone is the ``semantic`` score thresholds compare to. With ``max_positives``,
larger sets of likes are condensed to that many representatives (tf-idf rows follow them). Dislikes push down:
``score -= dislike_weight * max(0, nearest_dislike_cos - dislike_floor)``, so a candidate close to a disliked
paper loses rank while unrelated papers (cosine ~0.1) are untouched. Every score comes with its reason: the
positive item closest by the (mixed) similarity, and its embedding cosine.

One kernel, :func:`score_block`, does all of this for a block of profiles at once (their positives stacked
into one matrix, per-profile pooling by segment reductions); :func:`score` is that kernel on one profile and
:mod:`recommender.ranking.digest` ranks many users with it, so single and batched scores cannot disagree.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

METHODS = ("softmax", "hybrid", "mean", "max", "knn")


@dataclass
class Positives:
    """The positive items a profile is scored against: (condensed) likes, then the interest."""

    vecs: np.ndarray  # (m, d) float32 unit rows
    lex: sp.csr_matrix | None  # (m, V) tf-idf rows aligned with vecs, or None
    logw: np.ndarray  # (m,) log of how many likes each row stands for (0 without condensing)
    labels: list[str | None]  # liked paper id, or None for the interest


@dataclass
class Profile:
    like_ids: list[str] = field(default_factory=list)
    likes: np.ndarray | None = None  # (L, d), unit rows
    dislike_ids: list[str] = field(default_factory=list)
    dislikes: np.ndarray | None = None  # (D, d)
    interest: str = ""
    interest_vec: np.ndarray | None = None  # (d,)
    positives_lex: sp.csr_matrix | None = None  # tf-idf rows aligned with positives() (likes, then interest)
    dislikes_lex: sp.csr_matrix | None = None  # tf-idf rows of the dislikes (learned ranker), aligned with them
    like_categories: list[list[str]] | None = None  # each like's categories, primary first (learned ranker)

    @property
    def empty(self) -> bool:
        return not self.like_ids and self.interest_vec is None

    def positives(self) -> tuple[np.ndarray | None, list[str | None]]:
        """Stacked positive vectors (likes then the interest) and their labels (paper id or None)."""
        rows: list[np.ndarray] = []
        labels: list[str | None] = []
        if self.likes is not None and len(self.like_ids):
            rows.append(np.asarray(self.likes, np.float32))
            labels += list(self.like_ids)
        if self.interest_vec is not None:
            rows.append(np.asarray(self.interest_vec, np.float32)[None, :])
            labels.append(None)
        if not rows:
            return None, []
        return np.concatenate(rows) if len(rows) > 1 else rows[0], labels

    def condensed(self, max_positives: int = 0) -> Positives | None:
        """The positives scoring uses: with ``max_positives`` > 0 and more likes than that, that many liked
        papers standing for all of them (plus the interest), weighted by the log of how many likes each
        represents, so the cost of scoring stops growing with the number of likes. Computed on every call
        (no cache: likes may change between calls); None for an empty profile."""
        pos, labels = self.positives()
        if pos is None:
            return None
        lex = self.positives_lex
        if lex is not None and lex.shape[0] != len(pos):
            lex = None  # not aligned: score this profile on embeddings only
        n_likes = len(self.like_ids) if self.likes is not None else 0
        logw = np.zeros(len(pos), np.float32)
        if max_positives and n_likes > max_positives:
            chosen, counts = condense(pos[:n_likes], max_positives)
            keep = np.r_[chosen, np.arange(n_likes, len(pos))].astype(np.int64)
            pos = pos[keep]
            labels = [labels[i] for i in keep]
            lex = lex[keep] if lex is not None else None
            logw = np.log(np.r_[counts, np.ones(len(keep) - len(chosen))]).astype(np.float32)
        return Positives(pos, lex, logw, labels)


@dataclass
class ScoringParams:
    method: str = "softmax"
    tau: float = 0.15
    k: int = 3
    dislike_weight: float = 0.6
    dislike_floor: float = 0.25
    mix: float = 0.5  # hybrid: weight of the softmax part (the rest: cosine to the centroid)
    lexical_weight: float = 0.8  # weight of tf-idf cosine in each like's similarity (when tf-idf rows are given)
    max_positives: int = 0  # > 0: condense larger sets of likes to this many representatives (see condense)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown scoring method {self.method!r}; use one of {', '.join(METHODS)}")
        if self.tau < 0.012:
            raise ValueError("tau must be at least 0.012 (exp(1/tau) must fit in float32)")


@dataclass
class Scores:
    """Scores of n candidates, with for each the positive item (index into the profile's labels) behind it."""

    score: np.ndarray  # (n,) the ranking score
    nearest: np.ndarray  # (n,) index into labels, -1 if the profile is empty
    nearest_cos: np.ndarray  # (n,)
    labels: list[str | None]  # liked paper id, or None for the interest text
    semantic: np.ndarray | None = None  # (n,) the embedding-only score (what thresholds compare to)

    def __post_init__(self) -> None:
        if self.semantic is None:
            self.semantic = self.score


def _l2(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def centroid(profile: Profile) -> np.ndarray:
    """The unit mean of the liked papers' mean and the interest vector (the mean-of-likes baseline's query)."""
    parts = []
    if profile.likes is not None and len(profile.like_ids):
        parts.append(_l2(np.asarray(profile.likes, np.float32).mean(axis=0)))
    if profile.interest_vec is not None:
        parts.append(np.asarray(profile.interest_vec, np.float32))
    return _l2(np.mean(parts, axis=0)).astype(np.float32)


def condense(vecs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Pick ``k`` representative rows (medoids by farthest-point traversal from the most central one) and
    count how many rows each represents (rows go to their nearest representative). Deterministic."""
    m = len(vecs)
    if m <= k:
        return np.arange(m), np.ones(m, dtype=np.int64)
    sims = vecs @ vecs.T
    chosen = [int(sims.sum(axis=1).argmax())]
    best = sims[chosen[0]].copy()
    while len(chosen) < k:
        nxt = int(best.argmin())
        chosen.append(nxt)
        best = np.maximum(best, sims[nxt])
    idx = np.array(chosen)
    counts = np.bincount(sims[:, idx].argmax(axis=1), minlength=k)
    return idx, counts


def _segment_sums(x: np.ndarray, offsets: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """(U, n) sums of the row segments of a (P, n) matrix: a 0/1 selector matrix times it (numpy's reduceat
    along rows is ten times slower; a few segments are summed directly)."""
    if len(widths) <= 8:
        out = np.empty((len(widths), x.shape[1]), np.float32)
        for j, (o, w) in enumerate(zip(offsets.tolist(), widths.tolist(), strict=True)):
            np.sum(x[o:o + w], axis=0, out=out[j])
        return out
    seg = np.repeat(np.arange(len(widths)), widths)
    rows = np.concatenate([np.arange(o, o + w) for o, w in zip(offsets.tolist(), widths.tolist(), strict=True)]) \
        if len(offsets) and (offsets[0] != 0 or int(widths.sum()) != x.shape[0]) else np.arange(x.shape[0])
    sel = sp.csr_matrix((np.ones(len(seg), np.float32), (seg, rows)), shape=(len(widths), x.shape[0]))
    return np.asarray(sel @ x, dtype=np.float32)


def _segment_max(x: np.ndarray, offsets: np.ndarray, widths: np.ndarray) -> np.ndarray:
    out = np.empty((len(offsets), x.shape[1]), np.float32)
    for j, (o, w) in enumerate(zip(offsets.tolist(), widths.tolist(), strict=True)):
        np.max(x[o:o + w], axis=0, out=out[j])
    return out


def pool_segments(sims: np.ndarray, offsets: np.ndarray, widths: np.ndarray, params: ScoringParams,
                  logw: np.ndarray | None = None) -> np.ndarray:
    """Pool a (P, n) matrix of similarities of n candidates to P stacked positives into (U, n) scores, one
    row per segment (``offsets``/``widths``: each profile's rows; ``logw``: how many likes each row stands
    for)."""
    if params.method == "max":
        return _segment_max(sims, offsets, widths)
    if params.method == "knn":  # the k-th largest within a segment has no reduceat form
        out = np.empty((len(offsets), sims.shape[1]), np.float32)
        for j, (o, w) in enumerate(zip(offsets.tolist(), widths.tolist(), strict=True)):
            k = min(params.k, w)
            seg = sims[o:o + w]
            out[j] = np.partition(seg, w - k, axis=0)[-k:].mean(axis=0) if w > 1 else seg[0]
        return out
    # softmax / hybrid: shifted by 1/tau (cosines are <= 1) so exp never overflows float32; in place
    inv = np.float32(1.0 / params.tau)
    e = sims * inv
    e -= inv
    if logw is not None and logw.any():
        e += logw[:, None]
    np.exp(e, out=e)
    den = _segment_sums(e, offsets, widths)
    e *= sims
    num = _segment_sums(e, offsets, widths)
    lost = den <= 0  # every weight underflowed (tiny tau, far candidates): the softmax is the maximum
    if lost.any():
        num[lost] = _segment_max(sims, offsets, widths)[lost]
        den[lost] = 1.0
    num /= den
    return num


def pool(sims: np.ndarray, params: ScoringParams, log_weights: np.ndarray | None = None) -> np.ndarray:
    """Pool an (n, m) matrix of cosines to the m positive items of one profile into one score per row."""
    sims = np.ascontiguousarray(np.asarray(sims, np.float32).T)
    pooled: np.ndarray = pool_segments(sims, np.array([0]), np.array([sims.shape[0]]), params, log_weights)[0]
    return pooled


@dataclass
class Shared:
    """Similarities of every distinct liked paper to the candidates, computed once for many profiles (users
    like papers from the same daily listings): ``emb`` (embedding cosines) and ``mixed`` (with the tf-idf half,
    None without tf-idf) are (distinct likes, candidates); ``cols[j]`` gives, for each positive of profile j,
    its row there (-1: not shared, e.g. the interest)."""

    cols: list[np.ndarray | None]
    emb: np.ndarray
    mixed: np.ndarray | None

    def view(self, start: int, stop: int) -> Shared:
        return Shared(self.cols[start:stop], self.emb, self.mixed)


SHARED_BUDGET_BYTES = 768 * 2**20
LEX_ROWS_PER_PRODUCT = 4096  # sparse products are chunked so their sparse result stays small
FEW_LEX_ROWS = 256  # up to this many tf-idf rows: multiplied from the candidates' side (see _lex_sims)


def _lex_sims(rows: sp.csr_matrix, cand_lex: sp.csr_matrix, workers: int = 1) -> np.ndarray:
    """Dense (rows, candidates) tf-idf cosines, computed in chunks of rows (on ``workers`` threads: scipy's
    sparse products release the GIL)."""
    if rows.shape[0] <= FEW_LEX_ROWS:  # a few rows (one user): candidates times the rows' transpose, so the
        # candidates' matrix is not converted (which costs more than the product itself)
        return np.ascontiguousarray(np.asarray((cand_lex @ rows.T).toarray(), np.float32).T)
    out = np.empty((rows.shape[0], cand_lex.shape[0]), np.float32)
    cand_t = cand_lex.T.tocsc()

    def part(s: int) -> None:
        out[s:s + LEX_ROWS_PER_PRODUCT] = (rows[s:s + LEX_ROWS_PER_PRODUCT] @ cand_t).toarray()

    starts = range(0, rows.shape[0], LEX_ROWS_PER_PRODUCT)
    if workers > 1 and len(starts) > 1:
        with ThreadPoolExecutor(workers, thread_name_prefix="tfidf") as pool:
            list(pool.map(part, starts))
    else:
        for s in starts:
            part(s)
    return out


def _mix(emb: np.ndarray, lex: np.ndarray, w: float) -> np.ndarray:
    """``(1 - w) * emb + w * lex``, reusing ``lex``'s memory."""
    lex *= np.float32(w)
    lex += np.float32(1 - w) * emb
    return lex


def shared_likes(blocks: list[Positives | None], cand: np.ndarray, cand_lex: sp.csr_matrix | None,
                 params: ScoringParams) -> Shared | None:
    """The :class:`Shared` cosines when enough likes are shared and they fit the memory budget, else None.
    A like is shared with an earlier one of the same id only if its vector and tf-idf row match it (checked
    on fingerprints: their products with fixed random probes)."""
    if params.method == "mean":
        return None
    labels = [x for b in blocks if b is not None for x in b.labels if x is not None]
    if not labels or len(set(labels)) > 0.75 * len(labels):
        return None  # too few likes in common to be worth it
    use_lex = cand_lex is not None and params.lexical_weight > 0 and all(
        b is None or b.lex is not None for b in blocks)
    rng = np.random.default_rng(0)
    dim = next((b.vecs.shape[1] for b in blocks if b is not None), 0)
    probe = rng.standard_normal(dim).astype(np.float32)
    probe_lex = rng.standard_normal(cand_lex.shape[1]).astype(np.float32) if use_lex and cand_lex is not None \
        else None
    first: dict[str, tuple[int, float, float]] = {}  # id -> (row, fingerprint, tf-idf fingerprint)
    src: list[tuple[int, int]] = []  # (block, position) of each distinct row
    src_vecs: list[np.ndarray] = []  # its vector
    cols: list[np.ndarray | None] = []
    for j, b in enumerate(blocks):
        if b is None:
            cols.append(None)
            continue
        fp = (b.vecs @ probe).tolist()
        fpl = (b.lex @ probe_lex).tolist() if probe_lex is not None and b.lex is not None else [0.0] * len(fp)
        c = np.full(len(b.labels), -1, np.int64)
        for i, label in enumerate(b.labels):
            if label is None:
                continue
            known = first.get(label)
            if known is None:
                first[label] = (len(src), fp[i], fpl[i])
                c[i] = len(src)
                src.append((j, i))
                src_vecs.append(b.vecs[i])
            elif known[1] == fp[i] and known[2] == fpl[i]:
                c[i] = known[0]
        cols.append(c)
    if len(cand) * len(src) * 4 * (2 if use_lex else 1) > SHARED_BUDGET_BYTES:
        return None
    emb = np.stack(src_vecs).astype(np.float32) @ cand.T
    mixed = None
    if use_lex and cand_lex is not None:
        base = np.cumsum([0] + [0 if b is None else len(b.labels) for b in blocks])
        every = sp.vstack([b.lex for b in blocks if b is not None]).tocsr()
        rows = every[np.array([base[j] + i for j, i in src])]
        mixed = _mix(emb, _lex_sims(rows, cand_lex, min(2, os.cpu_count() or 1)), params.lexical_weight)
    return Shared(cols, emb, mixed)


@dataclass
class Block:
    """Scores of a block of U profiles over n candidates. ``score`` (U, n) is the ranking score; ``sims``
    (P, n) the similarities that rank, for the stacked positives (rows ``offsets[j]:offsets[j] + widths[j]``
    belong to profile j; width 0: an empty profile). The embedding-only (``semantic``) score, which thresholds
    compare to, is pooled on demand: for a few candidates per profile (:meth:`semantic_at`) or all of them."""

    score: np.ndarray
    sims: np.ndarray
    offsets: np.ndarray
    widths: np.ndarray
    labels: list[list[str | None]]
    params: ScoringParams
    logw: np.ndarray  # (P,)
    lexical: bool  # whether tf-idf is in sims (else the semantic score is the ranking score)
    cent: np.ndarray | None  # (U, n) hybrid: cosine to each profile's centroid
    penalty: np.ndarray | None  # (U, n) dislike penalties
    own_emb: np.ndarray  # (own rows, n) embedding cosines computed for this block
    own_row: np.ndarray  # (P,) row in own_emb, or -1 when shared
    shared_row: np.ndarray  # (P,) row in shared_emb, or -1
    shared_emb: np.ndarray | None
    dislike_max: np.ndarray | None = None  # (U, n) nearest disliked paper's embedding cosine, None: no dislikes

    def emb_at(self, prow: np.ndarray, ccol: np.ndarray) -> np.ndarray:
        """Embedding cosines of positives ``prow`` to candidates ``ccol`` (same shapes or broadcastable)."""
        prow, ccol = np.broadcast_arrays(prow, ccol)
        out = np.empty(prow.shape, np.float32)
        own = self.own_row[prow]
        mine = own >= 0
        out[mine] = self.own_emb[own[mine], ccol[mine]]
        if not mine.all():
            assert self.shared_emb is not None
            out[~mine] = self.shared_emb[self.shared_row[prow[~mine]], ccol[~mine]]
        return out

    def semantic_at(self, js: np.ndarray, ccols: np.ndarray) -> np.ndarray:
        """(len(js), K) embedding-only scores of profiles ``js`` (non-empty) for candidates ``ccols`` (one row
        of K candidate indices per profile)."""
        if not len(js):
            return np.zeros((0, ccols.shape[1]), np.float32)
        if not self.lexical:
            return np.take_along_axis(self.score[js], ccols, axis=1)
        widths = self.widths[js]
        prow = np.concatenate([np.arange(self.offsets[j], self.offsets[j] + self.widths[j]) for j in js])
        ccol = np.repeat(ccols, widths, axis=0)
        offsets = np.r_[0, np.cumsum(widths)[:-1]].astype(np.int64)
        sem = pool_segments(self.emb_at(prow[:, None], ccol), offsets, widths, self.params, self.logw[prow])
        if self.cent is not None:
            sem = self.params.mix * sem + (1 - self.params.mix) * np.take_along_axis(self.cent[js], ccols, axis=1)
        if self.penalty is not None:
            sem -= np.take_along_axis(self.penalty[js], ccols, axis=1)
        return sem

    def emb_rows(self, prow: np.ndarray) -> np.ndarray:
        """(len(prow), n) embedding cosines of positives ``prow`` to every candidate (whole rows gathered)."""
        out = np.empty((len(prow), self.score.shape[1]), np.float32)
        own = self.own_row[prow]
        mine = own >= 0
        out[mine] = self.own_emb[own[mine]]
        if not mine.all():
            assert self.shared_emb is not None
            out[~mine] = self.shared_emb[self.shared_row[prow[~mine]]]
        return out

    def semantic(self, js: np.ndarray) -> np.ndarray:
        """(len(js), n) embedding-only scores of profiles ``js`` (non-empty) for every candidate."""
        if not self.lexical or not len(js):
            same: np.ndarray = self.score[js]
            return same
        widths = self.widths[js]
        prow = np.concatenate([np.arange(self.offsets[j], self.offsets[j] + self.widths[j]) for j in js])
        offsets = np.r_[0, np.cumsum(widths)[:-1]].astype(np.int64)
        sem = pool_segments(self.emb_rows(prow), offsets, widths, self.params, self.logw[prow])
        if self.cent is not None:
            sem = self.params.mix * sem + (1 - self.params.mix) * self.cent[js]
        if self.penalty is not None:
            sem -= self.penalty[js]
        return sem

    def nearest(self, j: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For candidates ``rows`` of profile ``j``: index of the positive behind each score, its embedding cos."""
        o, w = int(self.offsets[j]), int(self.widths[j])
        if w == 0:
            return np.full(len(rows), -1), np.zeros(len(rows), np.float32)
        idx = self.sims[o:o + w, rows].argmax(axis=0)
        return idx, self.emb_at(o + idx, rows)


def score_block(profiles: list[Profile], blocks: list[Positives | None], cand: np.ndarray,
                cand_lex: sp.csr_matrix | None, params: ScoringParams, shared: Shared | None = None) -> Block:
    """THE scoring kernel: ranking scores of ``profiles`` (with their :meth:`Profile.condensed` ``blocks``) for
    the candidate vectors ``cand`` (n, d), tf-idf rows ``cand_lex`` optional; ``shared``: precomputed cosines
    of shared likes (see :func:`shared_likes`). Float32 throughout, positives as rows (segment reductions
    stream over contiguous memory)."""
    n = len(cand)
    widths = np.array([0 if b is None else len(b.vecs) for b in blocks], dtype=np.int64)
    offsets = np.r_[0, np.cumsum(widths)[:-1]].astype(np.int64)
    live = [j for j, b in enumerate(blocks) if b is not None]
    labels = [[] if b is None else b.labels for b in blocks]
    total = int(widths.sum())
    out = np.zeros((len(blocks), n), np.float32)
    none = np.zeros(0, np.int64)
    if not live or n == 0:
        return Block(out, np.zeros((total, n), np.float32), offsets, widths, labels, params,
                     np.zeros(total, np.float32), False, None, None, np.zeros((total, n), np.float32),
                     np.arange(total), np.full(total, -1), None)
    w = params.lexical_weight if params.method != "mean" and cand_lex is not None else 0.0
    live_blocks = [b for b in blocks if b is not None]  # in the order of live
    lex_of = {j: b.lex for j, b in zip(live, live_blocks, strict=True) if w > 0 and b.lex is not None}
    lex_set = list(lex_of)
    lex_row = np.zeros(total, bool)
    for j in lex_set:
        lex_row[offsets[j]:offsets[j] + widths[j]] = True
    shared_row = np.full(total, -1, np.int64)
    if shared is not None:
        for j in live:
            c = shared.cols[j]
            if c is not None and (not lex_row[offsets[j]] or shared.mixed is not None):
                shared_row[offsets[j]:offsets[j] + widths[j]] = c
    own = np.flatnonzero(shared_row < 0)
    own_row = np.full(total, -1, np.int64)
    own_row[own] = np.arange(len(own))
    allvecs = np.concatenate([b.vecs for b in live_blocks])
    own_emb = (allvecs if len(own) == total else allvecs[own]) @ cand.T if len(own) else \
        np.zeros((0, n), np.float32)
    own_emb = np.asarray(own_emb, np.float32)
    own_lex = own[lex_row[own]] if lex_set else none
    lexsims = None
    if len(own_lex):
        assert cand_lex is not None
        rows = sp.vstack([lex_of[j] for j in lex_set]).tocsr()
        at = np.concatenate([np.arange(offsets[j], offsets[j] + widths[j]) for j in lex_set])
        pick = np.searchsorted(at, own_lex)
        lexsims = _lex_sims(rows if len(pick) == rows.shape[0] else rows[pick], cand_lex)
    # the similarities that rank: (P, n)
    if len(own) == total and (lexsims is None or len(own_lex) == total):
        sims = own_emb if lexsims is None else _mix(own_emb, lexsims, w)
    else:
        sims = np.empty((total, n), np.float32)
        hit = np.flatnonzero(shared_row >= 0)
        if len(hit):
            assert shared is not None
            hl, hp = hit[lex_row[hit]], hit[~lex_row[hit]]
            if len(hl):
                assert shared.mixed is not None
                sims[hl] = shared.mixed[shared_row[hl]]
            if len(hp):
                sims[hp] = shared.emb[shared_row[hp]]
        if len(own):
            sims[own] = own_emb
        if lexsims is not None:
            sims[own_lex] = _mix(own_emb[own_row[own_lex]], lexsims, w)
    live_off, live_w = offsets[live], widths[live]
    logw = np.concatenate([b.logw for b in live_blocks]).astype(np.float32)
    cent = None
    if params.method in ("mean", "hybrid"):
        cent = np.zeros((len(blocks), n), np.float32)
        cent[live] = np.stack([centroid(profiles[j]) for j in live]) @ cand.T
    if params.method == "mean":
        assert cent is not None
        ranking = cent[live]
        cent = None
    else:
        ranking = pool_segments(sims, live_off, live_w, params, logw)
        if cent is not None:
            ranking = params.mix * ranking + (1 - params.mix) * cent[live]
    penalty, dislike_max = _penalties(profiles, live, cand, params)
    out[live] = ranking
    if penalty is not None:
        out -= penalty
    return Block(out, sims, offsets, widths, labels, params, logw, bool(len(lex_set)), cent, penalty, own_emb,
                 own_row, shared_row, shared.emb if shared is not None else None, dislike_max)


def _penalties(profiles: list[Profile], live: list[int], cand: np.ndarray, params: ScoringParams
               ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(U, n) dislike penalties and nearest disliked paper's cosine (0 without dislikes), None when nobody has
    dislikes."""
    with_dislikes = [j for j in live if profiles[j].dislikes is not None and len(profiles[j].dislike_ids)]
    if not with_dislikes:
        return None, None
    blocks = [np.asarray(profiles[j].dislikes, np.float32) for j in with_dislikes]
    offsets = np.r_[0, np.cumsum([len(b) for b in blocks])[:-1]]
    neg = _segment_max(np.concatenate(blocks) @ cand.T, offsets, np.array([len(b) for b in blocks]))
    out = np.zeros((len(profiles), len(cand)), np.float32)
    out[with_dislikes] = params.dislike_weight * np.maximum(0.0, neg - params.dislike_floor)
    nearest = np.zeros((len(profiles), len(cand)), np.float32)
    nearest[with_dislikes] = neg
    return out, nearest


def score(profile: Profile, candidates: np.ndarray, params: ScoringParams | None = None,
          candidates_lex: sp.csr_matrix | None = None) -> Scores:
    """Score candidate vectors (n, d) against one profile (the kernel :func:`score_block` on one profile);
    an empty profile scores everything 0. The reason for each score is the positive item closest by the
    similarity that ranks (tf-idf mixed in when given), with its embedding cosine."""
    params = params or ScoringParams()
    cand = np.asarray(candidates, dtype=np.float32)
    n = len(cand)
    pos = profile.condensed(params.max_positives)
    if pos is None or n == 0:
        return Scores(np.zeros(n, np.float32), np.full(n, -1), np.zeros(n, np.float32),
                      [] if pos is None else pos.labels)
    block = score_block([profile], [pos], cand, candidates_lex, params)
    nearest, cos = block.nearest(0, np.arange(n))
    return Scores(block.score[0], nearest, cos.astype(np.float32), pos.labels, block.semantic(np.array([0]))[0])


def why_line(label: str | None, cos: float, interest: str = "") -> str:
    """The one-line reason shown with a recommendation."""
    if label is None:
        shown = interest if len(interest) <= 60 else interest[:57] + "..."
        return f"matches your interest \u201c{shown}\u201d (cos {cos:.2f})"
    return f"close to your liked {label} (cos {cos:.2f})"


def chunks(blocks: list[Positives | None], max_columns: int) -> list[tuple[int, int]]:
    """(start, stop) ranges of profiles whose stacked positives fit ``max_columns`` (at least one each)."""
    out = []
    start = 0
    while start < len(blocks):
        stop, cols = start, 0
        while stop < len(blocks):
            b = blocks[stop]
            width = 0 if b is None else len(b.vecs)
            if stop > start and cols + width > max_columns:
                break
            cols += width
            stop += 1
        out.append((start, stop))
        start = stop
    return out


def score_many(profiles: list[Profile], candidates: np.ndarray, params: ScoringParams | None = None,
               max_columns: int = 8192, candidates_lex: sp.csr_matrix | None = None,
               semantic: bool = False) -> np.ndarray:
    """Scores (n_candidates, n_profiles) of many profiles at once through the same kernel as :func:`score`
    (the embedding-only ``semantic`` scores instead when asked)."""
    params = params or ScoringParams()
    cand = np.asarray(candidates, dtype=np.float32)
    blocks = [p.condensed(params.max_positives) for p in profiles]
    shared = shared_likes(blocks, cand, candidates_lex, params)
    out = np.zeros((len(cand), len(profiles)), dtype=np.float32)
    for start, stop in chunks(blocks, max_columns):
        b = score_block(profiles[start:stop], blocks[start:stop], cand, candidates_lex, params,
                        shared.view(start, stop) if shared is not None else None)
        if semantic:
            live = np.array([j for j in range(stop - start) if blocks[start + j] is not None], dtype=np.int64)
            out[:, start + live] = b.semantic(live).T
        else:
            out[:, start:stop] = b.score.T
    return out
