"""The learned ranker in the recommender evaluation: fitting it on the dev half, the simulated feedback loop,
quick checks, and cold start from an interest sentence.

- :func:`dev_samples` / :func:`fit_on_dev`: features of every dev query through the product's kernel, then the
  pairwise fit of :mod:`training.fit_ranker` (warm: like-based queries and profiles grown by simulated feedback;
  cold: interest-only queries).
- :func:`simulate`: each simulated user (an author, or a category's 20 likes) goes through the 8 window days in
  order: the day's candidates are ranked with everything rated so far, recall@10 and nDCG@10 are recorded on
  days with relevant papers, then papers are rated (relevant -> like, other -> dislike): the shown top 10
  (``top10``), the top 2 (``top2``), the 2 papers nearest the digest's edge among those not shown (``borderline2``,
  :func:`recommender.ranking.borderline.borderline`, the quick checks), or none (``none``).
- :func:`cold_queries`: a category's name and description from arXiv's taxonomy is the interest, that category's
  papers of the day (primary) are relevant; compared to tf-idf and MiniLM cosines of the sentence.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from recommender.paths import TAXONOMY
from recommender.ranking.borderline import borderline
from recommender.ranking.features import FEATURES
from recommender.ranking.learned import LearnedContext, RankerModel, pseudo_relevance_scores, score_rows
from training.fit_ranker import COLD_FEATURES, Sample, build_model, choose_c
from training.recommender_eval import EvalWorld, Query, metrics_for, paired_bootstrap

log = logging.getLogger(__name__)

MODES = ("none", "top10", "top2", "borderline2")


def interest_text(code: str) -> str:
    """A category's name and description from arXiv's taxonomy (what a new user might write)."""
    cats = json.loads(TAXONOMY.read_text(encoding="utf-8"))["categories"]
    c = cats.get(code, {})
    return f"{c.get('full_name', code)}. {c.get('description', '')}".strip()


def cold_queries(queries: Sequence[Query]) -> list[Query]:
    """The category proxy's queries with the category's taxonomy text as the only interest (no likes)."""
    return [Query("cold", q.name, q.day, [], q.relevant, q.split) for q in queries if q.kind == "category"]


def query_sample(world: EvalWorld, q: Query, interest_vecs: dict[str, np.ndarray] | None = None) -> Sample:
    key = (q.kind, q.name, q.day)
    if key not in world.samples:
        world.samples[key] = _query_sample(world, q, interest_vecs)
    cached: Sample = world.samples[key]
    return cached


def _query_sample(world: EvalWorld, q: Query, interest_vecs: dict[str, np.ndarray] | None) -> Sample:
    ids = world.data.days[q.day]
    rel = set(q.relevant)
    if q.kind == "cold":
        assert interest_vecs is not None
        prof = world.profile([], interest=interest_text(q.name), interest_vec=interest_vecs[q.name])
    else:
        prof = world.profile(q.likes)
    feats = world.features([prof], q.day)[0]
    return Sample(feats, np.array([i in rel for i in ids]), q.kind)


def dev_samples(world: EvalWorld, queries: Sequence[Query], interest_vecs: dict[str, np.ndarray] | None = None,
                split: str = "dev") -> list[Sample]:
    return [query_sample(world, q, interest_vecs) for q in queries if q.split == split]


def _fold(name: str) -> int:
    return int(hashlib.sha1(f"fold|{name}".encode()).hexdigest(), 16) % 2


def fit_on_dev(world: EvalWorld, warm_queries: Sequence[Query], cold: Sequence[Query],
               interest_vecs: dict[str, np.ndarray], feedback: Sequence[Sample] = (),
               grid: Sequence[float] = (0.00001, 0.00003, 0.0001, 0.001)) -> tuple[RankerModel, dict[str, object]]:
    """Fit the combination on the dev half (regularisation by two-fold cross-validation over query names)."""
    warm_dev = [q for q in warm_queries if q.split == "dev"]
    warm = [query_sample(world, q) for q in warm_dev] + list(feedback)
    folds = [_fold(q.name) for q in warm_dev] + [_fold(f"fb{i}") for i in range(len(feedback))]
    cold_dev = [q for q in cold if q.split == "dev"]
    cold_s = [query_sample(world, q, interest_vecs) for q in cold_dev]
    from training.fit_ranker import standardisation

    mean, scale = standardisation(warm)
    c_warm, table_warm = choose_c(warm, mean, scale, grid, folds)
    cold_use = list(COLD_FEATURES)
    c_cold, table_cold = choose_c(cold_s, mean, scale, grid, [_fold(q.name) for q in cold_dev], cold_use) \
        if len({_fold(q.name) for q in cold_dev}) == 2 else (1.0, {})
    meta: dict[str, object] = {"fitted_on": "evaluation dev half", "warm_queries": len(warm_dev),
                               "feedback_profiles": len(feedback), "cold_queries": len(cold_dev),
                               "c_warm": c_warm, "c_cold": c_cold, "cv_ndcg_warm": table_warm,
                               "cv_ndcg_cold": table_cold}
    model = build_model(warm, cold_s, c_warm, c_cold, meta)
    return model, meta


# -- the simulated feedback loop ------------------------------------------------------------------------

@dataclass
class Track:
    """One simulated user across the window: starting likes, and what is relevant to them on each day."""

    kind: str
    name: str
    split: str
    likes: list[str]
    relevant: dict[str, set[str]] = field(default_factory=dict)


def tracks(queries: Sequence[Query], split: str, authors: int, seed: int = 13) -> list[Track]:
    """Author and category users of a split (at most ``authors`` authors, sampled; every category)."""
    by: dict[tuple[str, str], Track] = {}
    for q in queries:
        if q.kind not in ("author", "category") or q.split != split:
            continue
        t = by.setdefault((q.kind, q.name), Track(q.kind, q.name, q.split, list(q.likes)))
        t.relevant[q.day] = set(q.relevant)
    out = list(by.values())
    names = sorted(t.name for t in out if t.kind == "author")
    rng = np.random.default_rng(seed)
    keep = set(rng.choice(names, size=min(authors, len(names)), replace=False).tolist()) if names else set()
    return [t for t in out if t.kind == "category" or t.name in keep]


def simulate(world: EvalWorld, model: RankerModel, users: Sequence[Track], mode: str, k: int = 10,
             collect: bool = False) -> tuple[dict[tuple[str, int], list[dict[str, float]]],
                                             dict[tuple[str, str, int], dict[str, float]], list[Sample]]:
    """Run the feedback loop in ``mode``; returns metrics by (kind, round), per (kind, user, round), and (with
    ``collect``) the features of every ranking made with ratings (training data with dislikes)."""
    days = sorted(world.data.days)
    by_round: dict[tuple[str, int], list[dict[str, float]]] = defaultdict(list)
    each: dict[tuple[str, str, int], dict[str, float]] = {}
    samples: list[Sample] = []
    for t in users:
        likes, dislikes = list(t.likes), list[str]()
        for r, day in enumerate(days):
            ids = world.data.days[day]
            rel = t.relevant.get(day, set())
            feats = world.features([world.profile(likes, dislikes)], day)[0]
            s = score_rows(model, feats)
            order = np.argsort(-s, kind="stable")
            if rel:
                m = metrics_for([ids[i] for i in order], rel, k)
                by_round[(t.kind, r)].append(m)
                each[(t.kind, t.name, r)] = m
                if collect and (likes != t.likes or dislikes):
                    samples.append(Sample(feats, np.array([i in rel for i in ids]), "feedback"))
            if mode == "none":
                continue
            if mode == "top10":
                rated = order[:10].tolist()
            elif mode == "top2":
                rated = order[:2].tolist()
            elif mode == "borderline2":
                edge = float(s[order[min(k, len(order)) - 1]])
                rated = borderline(s, edge, 2, exclude=order[:k])
            else:
                raise ValueError(f"unknown feedback mode {mode!r}")
            for i in rated:
                (likes if ids[i] in rel else dislikes).append(ids[i])
    return by_round, each, samples


def feedback_report(world: EvalWorld, model: RankerModel, users: Sequence[Track], k: int = 10,
                    seed: int = 13) -> dict[str, object]:
    """recall@k and nDCG@k by round for every mode, and paired differences against no feedback (rounds 2-8)."""
    per: dict[str, dict[tuple[str, str, int], dict[str, float]]] = {}
    table: dict[str, dict[str, dict[str, float]]] = {}
    for mode in MODES:
        by_round, each, _ = simulate(world, model, users, mode, k)
        per[mode] = each
        for (kind, r), rows in sorted(by_round.items()):
            table.setdefault(mode, {})[f"{kind}/{r + 1}"] = {
                f"recall@{k}": round(float(np.mean([x[f"recall@{k}"] for x in rows])), 4),
                f"ndcg@{k}": round(float(np.mean([x[f"ndcg@{k}"] for x in rows])), 4), "queries": len(rows)}
    diffs: dict[str, dict[str, float]] = {}
    for mode in MODES[1:]:
        for kind in ("author", "category"):
            keys = sorted(key for key in per["none"] if key[0] == kind and key[2] > 0 and key in per[mode])
            if keys:
                for metric in (f"recall@{k}", f"ndcg@{k}"):
                    diffs[f"{mode} - none ({kind}, rounds 2-8, {metric})"] = paired_bootstrap(
                        [per[mode][x][metric] for x in keys], [per["none"][x][metric] for x in keys], seed)
    for kind in ("author", "category"):
        keys = sorted(key for key in per["top2"] if key[0] == kind and key[2] > 0 and key in per["borderline2"])
        if keys:
            diffs[f"borderline2 - top2 ({kind}, rounds 2-8, recall@{k})"] = paired_bootstrap(
                [per["borderline2"][x][f"recall@{k}"] for x in keys], [per["top2"][x][f"recall@{k}"] for x in keys],
                seed)
    return {"users": {kind: sum(t.kind == kind for t in users) for kind in ("author", "category")},
            "by_round": table, "differences": diffs}


def cold_report(world: EvalWorld, model: RankerModel, cold: Sequence[Query], interest_vecs: dict[str, np.ndarray],
                k: int = 10, seed: int = 13) -> dict[str, object]:
    """Cold start: the product (learned, interest only) against tf-idf cosine, MiniLM cosine and the previous
    product score of the sentence, per split, with paired differences on the test half."""
    rankers = {"tfidf-cos": FEATURES.index("lex_max"), "minilm-cos": FEATURES.index("emb_max"),
               "lexsem (previous product)": FEATURES.index("mix_soft")}
    per: dict[tuple[str, str], list[float]] = defaultdict(list)
    rows: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)
    for q in cold:
        sample = query_sample(world, q, interest_vecs)
        ids = world.data.days[q.day]
        scores = {name: sample.feats[:, col] for name, col in rankers.items()}
        _, vecs, lex, cats = world.day(q.day)
        prof = world.profile([], interest=interest_text(q.name), interest_vec=interest_vecs[q.name])
        ctx = LearnedContext.of(model, world.background, cats)
        scores["product (learned)"] = pseudo_relevance_scores([prof], sample.feats[None, :, rankers["minilm-cos"]],
                                                              vecs, lex, ctx, world.params)[0]
        for name, s in scores.items():
            m = metrics_for([ids[i] for i in np.argsort(-s, kind="stable")], set(q.relevant), k)
            rows[(name, q.split)].append(m)
            per[(name, q.split)].append(m[f"ndcg@{k}"])
    means = {f"{name}/{split}": {key: round(float(np.mean([r[key] for r in v])), 4) for key in v[0]}
             | {"queries": len(v)} for (name, split), v in rows.items()}
    diffs = {f"product (learned) - {base} (test, ndcg@{k})": paired_bootstrap(per[("product (learned)", "test")],
                                                                            per[(base, "test")], seed)
             for base in rankers if per.get((base, "test"))}
    return {"means": means, "differences": diffs}
