"""Offline evaluation of the recommender on the real corpus: the author proxy and the category proxy.

No like-logs are public, so the standard proxy stands in: an author's earlier papers are their "likes" and
their papers announced later are what they would want. Protocol (fixed seed, see ``docs/recommender_eval.md``):
the last ``test_days`` announcement days with at least ``min_day_papers`` papers are the test window and its
first day the cut; an eligible author has >= ``min_likes`` papers announced before the cut (the most recent
``max_likes`` are kept) and >= 1 in the window, and at most ``max_author_papers`` papers overall (very common
name strings are several people). Each (author, window day with one of their papers) is one query: rank all
papers announced that day; the author's papers of that day are the relevant ones. The category proxy does the
same with ``cat_likes`` random earlier papers of a primary category as likes and that day's papers of that
primary category as relevant. Authors are split by a hash of their name into a dev half (used to choose
parameters) and a test half (reported). Only the papers these queries need are embedded (window days + likes +
background sample), cached under ``<home>/eval/`` so a rerun does not redo them.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recommender.config import Settings
from recommender.embedding.embed import Embedder, _slug, load_embedder, paper_text
from recommender.embedding.lexical import LexicalIndex
from recommender.embedding.vectors import VectorIndex
from recommender.ranking.features import Background
from recommender.ranking.learned import RankerModel, feature_matrix, score_rows
from recommender.ranking.profile import Profile, ScoringParams
from recommender.sources.corpus import iter_dicts

log = logging.getLogger(__name__)


@dataclass
class EvalConfig:
    corpus: Path = Path("../shared/data/arxiv_corpus.jsonl.gz")
    seed: int = 13
    test_days: int = 8
    min_day_papers: int = 200
    min_likes: int = 3
    max_likes: int = 25
    max_author_papers: int = 60
    authors: int = 800
    categories: int = 30
    cat_likes: int = 20
    background: int = 3000
    k: int = 10
    title_first: bool = True  # False: embed "abstract title" instead (to measure what the order is worth)


@dataclass
class Query:
    kind: str  # author | category
    name: str
    day: str
    likes: list[str]
    relevant: list[str]
    split: str = "test"  # dev | test


@dataclass
class EvalData:
    config: EvalConfig
    papers: dict[str, dict]
    days: dict[str, list[str]]  # window day -> candidate ids
    queries: list[Query]
    background: list[str]
    cut: str

    def needed_ids(self) -> list[str]:
        ids: dict[str, None] = {}
        for d in sorted(self.days):
            ids.update(dict.fromkeys(self.days[d]))
        for q in self.queries:
            ids.update(dict.fromkeys(q.likes))
        ids.update(dict.fromkeys(self.background))
        return list(ids)


def _split_of(name: str) -> str:
    return "dev" if int(hashlib.sha1(name.encode()).hexdigest(), 16) % 2 == 0 else "test"


def build_eval_data(cfg: EvalConfig) -> EvalData:
    """Select the window, the queries and the background sample from the corpus (deterministic)."""
    rng = random.Random(cfg.seed)
    papers: dict[str, dict] = {}
    for d in iter_dicts(cfg.corpus):
        if d.get("announced"):
            papers[d["id"]] = {"id": d["id"], "title": d["title"], "abstract": d["abstract"],
                               "authors": d["authors"] if isinstance(d["authors"], list) else [],
                               "primary": d.get("primary_category") or (d.get("categories") or [None])[0],
                               "categories": d.get("categories") or [], "announced": d["announced"]}
    by_day: dict[str, list[str]] = defaultdict(list)
    for pid, p in papers.items():
        by_day[p["announced"]].append(pid)
    big_days = [d for d in sorted(by_day) if len(by_day[d]) >= cfg.min_day_papers]
    window = big_days[-cfg.test_days:]
    cut = window[0]
    days = {d: sorted(by_day[d]) for d in window}
    window_set = set(window)

    by_author: dict[str, list[str]] = defaultdict(list)
    for pid, p in papers.items():
        for a in p["authors"]:
            by_author[a].append(pid)
    queries: list[Query] = []
    eligible = []
    for name, pids in by_author.items():
        if len(pids) < cfg.min_likes + 1 or len(pids) > cfg.max_author_papers:
            continue
        before = [x for x in pids if papers[x]["announced"] < cut]
        after = [x for x in pids if papers[x]["announced"] in window_set]
        if len(before) >= cfg.min_likes and after:
            eligible.append(name)
    eligible.sort()
    chosen = rng.sample(eligible, min(cfg.authors, len(eligible)))
    for name in chosen:
        pids = by_author[name]
        before = sorted((x for x in pids if papers[x]["announced"] < cut),
                        key=lambda x: (papers[x]["announced"], x))[-cfg.max_likes:]
        rel_by_day: dict[str, list[str]] = defaultdict(list)
        for x in pids:
            if papers[x]["announced"] in window_set:
                rel_by_day[papers[x]["announced"]].append(x)
        for day in sorted(rel_by_day):
            queries.append(Query("author", name, day, before, sorted(rel_by_day[day]), _split_of(name)))

    by_cat_before: dict[str, list[str]] = defaultdict(list)
    by_cat_day: dict[tuple[str, str], list[str]] = defaultdict(list)
    for pid, p in papers.items():
        if p["announced"] < cut:
            by_cat_before[p["primary"]].append(pid)
        elif p["announced"] in window_set:
            by_cat_day[(p["primary"], p["announced"])].append(pid)
    cat_window: defaultdict[str, int] = defaultdict(int)
    for (c, _), v in by_cat_day.items():
        cat_window[c] += len(v)
    cats = sorted(c for c in cat_window if cat_window[c] >= 20 and len(by_cat_before.get(c, [])) >= 100)
    for c in rng.sample(cats, min(cfg.categories, len(cats))):
        likes = sorted(rng.sample(sorted(by_cat_before[c]), cfg.cat_likes))
        for day in window:
            rel = sorted(by_cat_day.get((c, day), []))
            if rel:
                queries.append(Query("category", c, day, likes, rel, _split_of(c)))

    # mixed interests: an author's likes plus those of another sampled author from another archive group;
    # relevant stays the first author's papers (does a second interest drown the first?)
    authors_q = [q for q in queries if q.kind == "author"]

    def group(q: Query) -> str:
        return str(papers[q.likes[-1]]["primary"] or "").split(".")[0]

    for i, q in enumerate(authors_q):
        other = next((authors_q[(i + j * 7) % len(authors_q)] for j in range(1, len(authors_q))
                      if group(authors_q[(i + j * 7) % len(authors_q)]) != group(q)
                      and authors_q[(i + j * 7) % len(authors_q)].name != q.name), None)
        if other is not None:
            queries.append(Query("mixed", q.name, q.day, q.likes + [x for x in other.likes if x not in q.likes],
                                 q.relevant, q.split))

    pre_cut = sorted(pid for pid, p in papers.items() if p["announced"] < cut)
    background = sorted(rng.sample(pre_cut, min(cfg.background, len(pre_cut))))
    return EvalData(cfg, papers, days, queries, background, cut)


def eval_index(settings: Settings, embedder: Embedder, title_first: bool = True) -> VectorIndex:
    key = embedder.key + ("" if title_first else "|abstract-first")
    return VectorIndex(settings.home / "eval" / "vectors" / _slug(key), key, embedder.dim)


def embed_needed(data: EvalData, embedder: Embedder, index: VectorIndex, chunk: int = 256,
                 progress: bool = True) -> int:
    """Embed the papers the evaluation needs that the cache lacks, checkpointing every ``chunk`` papers."""
    todo = index.missing(data.needed_ids())
    if not todo:
        return 0
    log.info("embedding %d papers for the evaluation (%d cached)", len(todo), len(index))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc="eval embed", unit="paper")
    for start in range(0, len(todo), chunk):
        ids = todo[start:start + chunk]
        vecs = embedder.encode([paper_text(data.papers[i], data.config.title_first) for i in ids], batch_size=32)
        index.add(ids, vecs)
        if bar is not None:
            bar.update(len(ids))
    if bar is not None:
        bar.close()
    index.compact()
    return len(todo)


# -- metrics --------------------------------------------------------------------------------------------

def metrics_for(ranked: Sequence[str], relevant: set[str], k: int = 10) -> dict[str, float]:
    """recall@k, MRR (first relevant) and nDCG@k (binary gains) of one ranking."""
    hits = [1.0 if pid in relevant else 0.0 for pid in ranked]
    first = next((i for i, h in enumerate(hits) if h), None)
    dcg = sum(h / math.log2(i + 2) for i, h in enumerate(hits[:k]))
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return {
        f"recall@{k}": sum(hits[:k]) / len(relevant) if relevant else 0.0,
        "mrr": 1.0 / (first + 1) if first is not None else 0.0,
        f"ndcg@{k}": dcg / ideal if ideal else 0.0,
    }


def mean_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    if not rows:
        return {}
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


# -- rankers --------------------------------------------------------------------------------------------

Ranker = Callable[[Query, list[str]], np.ndarray]  # (query, candidate ids) -> scores aligned with ids


def embedding_ranker(index: VectorIndex, params: ScoringParams) -> Ranker:
    from recommender.ranking.profile import Profile, score

    def rank(q: Query, cands: list[str]) -> np.ndarray:
        prof = Profile(like_ids=q.likes, likes=index.get(q.likes))
        return score(prof, index.get(cands), params).score

    return rank


def random_ranker(seed: int) -> Ranker:
    def rank(q: Query, cands: list[str]) -> np.ndarray:
        h = int(hashlib.sha1(f"{seed}|{q.kind}|{q.name}|{q.day}".encode()).hexdigest()[:8], 16)
        return np.random.default_rng(h).random(len(cands))

    return rank


def svm_ranker(features: Callable[[list[str]], Any], background: list[str], c: float) -> Ranker:
    """A per-query linear SVM: likes against the background sample (arxiv-sanity-lite's recipe)."""
    from sklearn.svm import LinearSVC

    bg_x = features(background)

    def rank(q: Query, cands: list[str]) -> np.ndarray:
        import scipy.sparse as sp

        likes = set(q.likes)
        neg = [b for b in background if b not in likes]
        pos_x = features(q.likes)
        neg_x = bg_x if len(neg) == len(background) else features(neg)
        x = sp.vstack([pos_x, neg_x]) if sp.issparse(pos_x) else np.vstack([pos_x, neg_x])
        y = np.r_[np.ones(len(q.likes)), np.zeros(len(neg))]
        clf = LinearSVC(C=c, class_weight="balanced", tol=1e-6, max_iter=10000)
        clf.fit(x, y)
        return clf.decision_function(features(cands))

    return rank


def lexical_index(data: EvalData) -> LexicalIndex:
    """The product's tf-idf index (arxiv-sanity-lite's settings) fitted on every paper the evaluation uses."""
    from recommender.embedding.lexical import LexicalIndex

    ids = data.needed_ids()
    lex = LexicalIndex(Path("/nonexistent-eval-lexical"))  # in memory only
    lex.fit(ids, [paper_text(data.papers[i], data.config.title_first) for i in ids])
    return lex


def tfidf_features(lex: LexicalIndex) -> Callable[[list[str]], object]:
    return lambda pids: lex.get(pids)


def lexical_ranker(index: VectorIndex, lex: LexicalIndex, params: ScoringParams) -> Ranker:
    """The product's scoring with tf-idf rows: each like's similarity mixes embedding and tf-idf cosines."""
    from recommender.ranking.profile import Profile, score

    def rank(q: Query, cands: list[str]) -> np.ndarray:
        prof = Profile(like_ids=q.likes, likes=index.get(q.likes), positives_lex=lex.get(q.likes))
        return score(prof, index.get(cands), params, lex.get(cands)).score

    return rank


@dataclass
class EvalWorld:
    """Everything the learned ranker needs in the evaluation, built once: vectors, the tf-idf index, the
    background statistics (from the background sample, papers before the cut), categories (primary first), and
    each window day's candidates with their vectors, tf-idf rows and categories (cached)."""

    data: EvalData
    index: VectorIndex
    lex: LexicalIndex
    params: ScoringParams
    background: Background

    def __post_init__(self) -> None:
        self._days: dict[str, tuple[list[str], np.ndarray, Any, list[list[str]]]] = {}
        self.samples: dict[tuple[str, str, str], Any] = {}  # (kind, name, day) -> features (training.ranker_eval)

    @classmethod
    def build(cls, data: EvalData, index: VectorIndex, lex: LexicalIndex | None = None,
              params: ScoringParams | None = None) -> EvalWorld:
        lex = lex or lexical_index(data)
        bg = Background.fit(index.get(data.background), lex.get(data.background))
        return cls(data, index, lex, params or ScoringParams(), bg)

    def categories(self, ids: Sequence[str]) -> list[list[str]]:
        out = []
        for i in ids:
            p = self.data.papers[i]
            prim = p["primary"]
            out.append(([prim] if prim else []) + [c for c in p["categories"] if c != prim])
        return out

    def profile(self, likes: Sequence[str], dislikes: Sequence[str] = (), interest: str = "",
                interest_vec: np.ndarray | None = None) -> Profile:
        likes = list(likes)
        dislikes = [d for d in dislikes if d not in set(likes)]
        rows = [self.lex.get(likes)] if likes else []
        if interest_vec is not None:
            rows.append(self.lex.transform([interest]))
        import scipy.sparse as sp

        return Profile(like_ids=likes, likes=self.index.get(likes) if likes else None,
                       dislike_ids=dislikes, dislikes=self.index.get(dislikes) if dislikes else None,
                       dislikes_lex=self.lex.get(dislikes) if dislikes else None,
                       interest=interest, interest_vec=interest_vec,
                       positives_lex=sp.vstack(rows).tocsr() if rows else None,
                       like_categories=self.categories(likes) if likes else None)

    def day(self, day: str) -> tuple[list[str], np.ndarray, Any, list[list[str]]]:
        if day not in self._days:
            ids = self.data.days[day]
            self._days[day] = (ids, self.index.get(ids), self.lex.get(ids), self.categories(ids))
        return self._days[day]

    def features(self, profiles: Sequence[Profile], day: str, rows: np.ndarray | None = None) -> np.ndarray:
        """(U, n, F) features of the profiles over the day's candidates (or its ``rows``)."""
        ids, vecs, lex, cats = self.day(day)
        if rows is not None:
            vecs, lex, cats = vecs[rows], lex[rows], [cats[r] for r in rows.tolist()]
        return feature_matrix(list(profiles), vecs, lex, self.params, self.background, cats)


def learned_ranker(world: EvalWorld, model: RankerModel) -> Ranker:
    """The product's ranker: the learned combination of the features, likes only (no author features)."""

    def rank(q: Query, cands: list[str]) -> np.ndarray:
        assert cands is world.data.days[q.day] or cands == world.data.days[q.day]
        return score_rows(model, world.features([world.profile(q.likes)], q.day)[0])

    return rank


@dataclass
class RankerResults:
    """What :func:`run_rankers` measured: mean metrics per ranker, proxy and split, and the per-query
    ndcg@k of each (ranker, proxy, split) in query order (for paired comparisons)."""

    means: dict[str, dict[str, dict[str, float | dict[str, float]]]]  # ranker -> proxy -> split -> metrics, and
    # ranker -> "seconds" -> {"total": seconds}
    per_query: dict[tuple[str, str, str], list[float]]


def run_rankers(data: EvalData, rankers: dict[str, Ranker], progress: bool = True) -> RankerResults:
    """Mean metrics per ranker, per proxy (author/category), per split (dev/test), and per-query scores."""
    k = data.config.k
    rows: dict[tuple[str, str, str], list[dict[str, float]]] = defaultdict(list)
    per_query: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    seconds: dict[str, float] = defaultdict(float)
    it = data.queries
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="evaluate", unit="query")
    for q in it:
        cands = data.days[q.day]
        rel = set(q.relevant)
        for name, ranker in rankers.items():
            t = time.perf_counter()
            s = np.asarray(ranker(q, cands), dtype=np.float64)
            order = np.argsort(-s, kind="stable")
            seconds[name] += time.perf_counter() - t
            ranked = [cands[i] for i in order]
            m = metrics_for(ranked, rel, k)
            rows[(name, q.kind, q.split)].append(m)
            per_query[(name, q.kind, q.split)].append(m[f"ndcg@{k}"])
    out: dict[str, dict[str, dict[str, float | dict[str, float]]]] = {}
    for (name, kind, split), r in rows.items():
        m = mean_metrics(r)
        m["queries"] = len(r)
        out.setdefault(name, {}).setdefault(kind, {})[split] = m
    for name in out:
        out[name]["seconds"] = {"total": round(seconds[name], 2)}
    return RankerResults(out, dict(per_query))


# -- the whole evaluation -------------------------------------------------------------------------------

def default_rankers(data: EvalData, index: VectorIndex, with_svm: bool = True,
                    lex: LexicalIndex | None = None) -> dict[str, Ranker]:
    from recommender.ranking.profile import ScoringParams

    rankers: dict[str, Ranker] = {"random": random_ranker(data.config.seed),
                                  "mean-of-likes": embedding_ranker(index, ScoringParams("mean"))}
    rankers["max"] = embedding_ranker(index, ScoringParams("max"))
    for k in (3, 5):
        rankers[f"knn-{k}"] = embedding_ranker(index, ScoringParams("knn", k=k))
    for tau in (0.02, 0.05, 0.1, 0.2, 0.3):
        rankers[f"softmax-{tau}"] = embedding_ranker(index, ScoringParams("softmax", tau=tau))
    for mix in (0.5, 0.7):
        rankers[f"hybrid-{mix}"] = embedding_ranker(index, ScoringParams("hybrid", tau=0.1, mix=mix))
    rankers["softmax-0.2-cap8"] = embedding_ranker(index, ScoringParams("softmax", tau=0.2, max_positives=8))
    lex = lex or lexical_index(data)
    for w, tau in ((0.8, 0.1), (0.8, 0.15), (0.8, 0.2), (0.8, 0.3), (0.7, 0.15), (0.9, 0.15)):
        rankers[f"lexsem-{w}-{tau}"] = lexical_ranker(index, lex, ScoringParams("softmax", tau=tau,
                                                                                lexical_weight=w))
    if with_svm:
        rankers["svm-embedding"] = svm_ranker(lambda ids: index.get(ids), data.background[:1000], c=0.1)
        rankers["tfidf-svm"] = svm_ranker(tfidf_features(lex), data.background, c=0.01)
    return rankers


PROXIES = ("author", "category", "mixed")


def choose(results: dict, candidates: Sequence[str], metric: str = "ndcg@10") -> str:
    """The candidate with the best dev-half score, averaged over the three proxies."""
    return max(candidates, key=lambda name: float(np.mean([results[name][p]["dev"][metric] for p in PROXIES
                                                           if p in results[name]])))


@dataclass
class RunOptions:
    """How much of the evaluation to run (the protocol itself is :class:`EvalConfig`)."""

    with_svm: bool = True
    rankers: Sequence[str] | None = None  # only these baselines (None: all)
    fit_ranker: bool = False  # fit the learned ranker on the dev half and ship it (data/models/ranker/)
    model_dir: Path | None = None  # where to write / read the learned ranker (None: the shipped one)
    feedback_authors: int = 150  # simulated feedback users among the test half's authors (0: skip)
    seed_vectors: Path | None = None  # take vectors from this exported Arrow file first (e.g. the demo's)
    cached_background: bool = False  # the background sample: pre-cut papers already in the cache


PRODUCT = "learned (product)"
PREVIOUS = "lexsem-0.8-0.15"  # the product's ranking before the learned ranker


def _seed_vectors(index: VectorIndex, path: Path, only: Sequence[str]) -> int:
    """Vectors of ``only`` from an exported Arrow file of the same model (its quantisation may differ: int8
    vectors are within cosine 0.995 of fp32)."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    with pa.memory_map(str(path), "r") as src:
        reader = ipc.open_file(src)
        key = (reader.schema.metadata or {}).get(b"key", b"").decode()
        table = reader.read_all()
    if key.split("|")[:2] != index.key.split("|")[:2]:
        log.info("%s holds vectors of %r, not %r: not used", path, key, index.key)
        return 0
    ids = table.column("id").to_pylist()
    vecs = np.asarray(table.column("vector").combine_chunks().values.to_numpy(zero_copy_only=False),
                      dtype=np.float32).reshape(len(ids), index.dim)
    wanted = set(only)
    keep = [i for i, pid in enumerate(ids) if pid in wanted and pid not in index]
    if keep:
        index.add([ids[i] for i in keep], vecs[keep])
    return len(keep)


def run_evaluation(settings: Settings, cfg: EvalConfig, embedder: Embedder | None = None,
                   with_svm: bool = True, progress: bool = True, options: RunOptions | None = None) -> dict:
    """Build the data, embed what is missing (cached), fit the learned ranker on the dev half if asked, run every
    ranker, the simulated feedback loop and the cold-start queries; returns the report as a dict."""
    from training import ranker_eval as re_

    opts = options or RunOptions(with_svm=with_svm)
    t0 = time.time()
    data = build_eval_data(cfg)
    embedder = embedder or load_embedder(settings)
    index = eval_index(settings, embedder, cfg.title_first)
    seeded = _seed_vectors(index, opts.seed_vectors, data.needed_ids()) if opts.seed_vectors else 0
    if opts.cached_background:
        liked = {x for q in data.queries for x in q.likes}
        pre = [i for i in index.ids if i in data.papers and data.papers[i]["announced"] < data.cut
               and i not in liked]
        rng = random.Random(cfg.seed)
        data.background = sorted(rng.sample(sorted(pre), min(cfg.background, len(pre))))
    embedded = embed_needed(data, embedder, index, progress=progress)
    lex = lexical_index(data)
    world = EvalWorld.build(data, index, lex)
    cold = re_.cold_queries(data.queries)
    interest_vecs = {c: embedder.encode_one(re_.interest_text(c)) for c in sorted({q.name for q in cold})}
    fit_meta: dict[str, object] = {}
    if opts.fit_ranker:
        from training.fit_ranker import write_model

        model, fit_meta = re_.fit_on_dev(world, data.queries, cold, interest_vecs)
        if opts.feedback_authors:  # again with the profiles the feedback loop grows on the dev half (dislikes)
            dev_users = re_.tracks(data.queries, "dev", opts.feedback_authors, cfg.seed)
            grown = re_.simulate(world, model, dev_users, "top10", cfg.k, collect=True)[2]
            model, fit_meta = re_.fit_on_dev(world, data.queries, cold, interest_vecs, feedback=grown)
        model = RankerModel(model.features, model.mean, model.scale, model.warm, model.cold, model.version,
                            {**(model.meta or {}), "protocol": {"days": cfg.test_days, "authors": cfg.authors,
                                                                "categories": cfg.categories,
                                                                "max_likes": cfg.max_likes, "seed": cfg.seed}})
        from recommender.ranking.learned import MODEL_DIR

        write_model(model, opts.model_dir or MODEL_DIR, world.background.emb_mean, world.background.emb_prec)
    else:
        model = RankerModel.load(opts.model_dir / "ranker.json" if opts.model_dir else None)
    rankers = default_rankers(data, index, opts.with_svm, lex)
    if opts.rankers is not None:
        rankers = {k: v for k, v in rankers.items() if k in set(opts.rankers)}
    rankers[PRODUCT] = learned_ranker(world, model)
    measured = run_rankers(data, rankers, progress)
    results, per_query = measured.means, measured.per_query
    chosen = PRODUCT
    comparisons = {}
    for base in ("mean-of-likes", PREVIOUS, "tfidf-svm", "svm-embedding"):
        for kind in PROXIES:
            a, b = per_query.get((chosen, kind, "test")), per_query.get((base, kind, "test"))
            if a and b:
                comparisons[f"{chosen} - {base} ({kind}, test, ndcg@{cfg.k})"] = paired_bootstrap(a, b, cfg.seed)
    counts: dict[str, int] = defaultdict(int)
    for q in data.queries:
        counts[f"{q.kind}/{q.split}"] += 1
    feedback = {}
    if opts.feedback_authors:
        users = re_.tracks(data.queries, "test", opts.feedback_authors, cfg.seed)
        feedback = re_.feedback_report(world, model, users, cfg.k, cfg.seed)
    cold_start = re_.cold_report(world, model, cold, interest_vecs, cfg.k, cfg.seed)
    return {
        "protocol": {**{k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
                     "cut": data.cut, "window_days": {d: len(v) for d, v in data.days.items()},
                     "queries": dict(counts), "embedded_papers": len(data.needed_ids()),
                     "background_papers": len(data.background), "seeded_vectors": seeded,
                     "embedder": embedder.key, "backend": embedder.backend},
        "chosen": chosen,
        "ranker_model": model.to_dict(),
        "fit": fit_meta,
        "results": results,
        "comparisons": comparisons,
        "feedback": feedback,
        "cold_start": cold_start,
        "seconds": round(time.time() - t0, 1),
        "newly_embedded": embedded,
    }


def paired_bootstrap(a: Sequence[float], b: Sequence[float], seed: int = 0, rounds: int = 2000
                     ) -> dict[str, float]:
    """Mean of a - b over paired queries with a 95% bootstrap interval (resampling queries)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(rounds, len(d)))].mean(axis=1)
    return {"mean_diff": round(float(d.mean()), 4), "ci95_low": round(float(np.percentile(means, 2.5)), 4),
            "ci95_high": round(float(np.percentile(means, 97.5)), 4), "queries": int(len(d))}


def markdown_table(report: dict, split: str = "test") -> str:
    """A markdown table of every ranker's metrics on the three proxies for one split."""
    k = report["protocol"]["k"]
    cols = [f"recall@{k}", "mrr", f"ndcg@{k}"]
    lines = ["| method | " + " | ".join(f"author {c}" for c in cols) + " | "
             + " | ".join(f"category {c}" for c in cols) + f" | mixed ndcg@{k} |",
             "|---" * (2 + 2 * len(cols)) + "|"]
    for name, res in report["results"].items():
        a, c = res.get("author", {}).get(split, {}), res.get("category", {}).get(split, {})
        m = res.get("mixed", {}).get(split, {})
        mark = " **(chosen)**" if name == report["chosen"] else ""
        lines.append(f"| {name}{mark} | " + " | ".join(f"{a.get(x, float('nan')):.3f}" for x in cols) + " | "
                     + " | ".join(f"{c.get(x, float('nan')):.3f}" for x in cols)
                     + f" | {m.get(f'ndcg@{k}', float('nan')):.3f} |")
    return "\n".join(lines)


def _ci(c: dict[str, float]) -> str:
    bold = c["ci95_low"] > 0 or c["ci95_high"] < 0
    text = f"{c['mean_diff']:+.3f} [{c['ci95_low']:+.3f}, {c['ci95_high']:+.3f}]"
    return f"**{text}**" if bold else text


def markdown_sections(report: dict) -> str:
    """Every table of the report as markdown: both halves, the paired intervals, feedback rounds, quick checks,
    cold start."""
    k = report["protocol"]["k"]
    out = [f"## Test half\n\n{markdown_table(report, 'test')}\n",
           f"## Dev half (used to fit)\n\n{markdown_table(report, 'dev')}\n"]
    comps = report.get("comparisons", {})
    if comps:
        bases = list(dict.fromkeys(name.split(" - ", 1)[1].rsplit(" (", 1)[0] for name in comps))
        lines = [f"| {report['chosen']} minus | author | category | mixed |", "|---|---|---|---|"]
        for base in bases:
            cells = []
            for kind in PROXIES:
                c = comps.get(f"{report['chosen']} - {base} ({kind}, test, ndcg@{k})")
                cells.append(_ci(c) + f" (n={c['queries']})" if c else "-")
            lines.append(f"| {base} | " + " | ".join(cells) + " |")
        out.append("## Paired differences in nDCG@10, test half (95% bootstrap)\n\n" + "\n".join(lines) + "\n")
    fb = report.get("feedback") or {}
    if fb:
        table = fb["by_round"]
        for kind in ("author", "category"):
            rounds = sorted({int(key.split("/")[1]) for mode in table for key in table[mode]
                             if key.startswith(kind + "/")})
            if not rounds:
                continue
            lines = [f"| {kind}: recall@{k} by day | " + " | ".join(str(r) for r in rounds) + " |",
                     "|---" * (len(rounds) + 1) + "|"]
            for mode, rows in table.items():
                lines.append(f"| {mode} | " + " | ".join(
                    f"{rows[f'{kind}/{r}'][f'recall@{k}']:.3f}" if f"{kind}/{r}" in rows else "-"
                    for r in rounds) + " |")
            queries = [str(table["none"].get(f"{kind}/{r}", {}).get("queries", 0)) for r in rounds]
            lines.append("| queries | " + " | ".join(queries) + " |")
            out.append(f"## Feedback loop, {kind}s of the test half\n\n" + "\n".join(lines) + "\n")
        lines = ["| difference (days 2-8, paired by user and day) | mean [95% interval] | n |", "|---|---|---|"]
        for name, c in fb["differences"].items():
            lines.append(f"| {name} | {_ci(c)} | {c['queries']} |")
        out.append("## Feedback and quick checks: what ratings are worth\n\n" + "\n".join(lines) + "\n")
    cs = report.get("cold_start") or {}
    if cs:
        lines = [f"| interest sentence only | test recall@{k} | test mrr | test ndcg@{k} | dev ndcg@{k} |",
                 "|---|---|---|---|---|"]
        names = list(dict.fromkeys(key.rsplit("/", 1)[0] for key in cs["means"]))
        for name in names:
            t, d = cs["means"].get(f"{name}/test", {}), cs["means"].get(f"{name}/dev", {})
            lines.append(f"| {name} | {t.get(f'recall@{k}', float('nan')):.3f} | {t.get('mrr', float('nan')):.3f} | "
                         f"{t.get(f'ndcg@{k}', float('nan')):.3f} | {d.get(f'ndcg@{k}', float('nan')):.3f} |")
        for name, c in cs["differences"].items():
            lines.append(f"| {name} | | | {_ci(c)} (n={c['queries']}) | |")
        out.append("## Cold start from an interest sentence\n\n" + "\n".join(lines) + "\n")
    return "\n".join(out)


def write_report(report: dict, out: Path, markdown: Path | None = None) -> None:
    """Write the report JSON (and optionally the dev/test tables as markdown), via temp files."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(out)
    if markdown is not None:
        markdown.write_text(markdown_sections(report))


# -- the command line (`arxiv-digest evaluate-recommender`) ---------------------------------------------

def add_arguments(p: Any) -> None:
    """The options of ``evaluate-recommender`` (``p``: its argparse parser)."""
    p.add_argument("--corpus", default="../shared/data/arxiv_corpus.jsonl.gz")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--authors", type=int, default=800, help="authors sampled (default 800)")
    p.add_argument("--days", type=int, default=8, help="announcement days in the test window (default 8)")
    p.add_argument("--min-day-papers", type=int, default=200,
                   help="a window day has at least this many papers (default 200)")
    p.add_argument("--categories", type=int, default=30, help="categories sampled for the category proxy "
                                                              "(default 30)")
    p.add_argument("--max-likes", type=int, default=25, help="an author's most recent earlier papers kept as "
                                                             "likes (default 25)")
    p.add_argument("--background", type=int, default=3000,
                   help="earlier papers sampled as the SVMs' negatives and the ranker's background (default 3000)")
    p.add_argument("--cached-background", action="store_true",
                   help="draw the background from earlier papers already in the vector cache (no embedding)")
    p.add_argument("--seed-vectors", metavar="FILE", default=None,
                   help="first take vectors from this exported Arrow file (e.g. data/demo_vectors.arrow)")
    p.add_argument("--no-svm", action="store_true", help="skip the two SVM baselines (faster)")
    p.add_argument("--rankers", default=None, help="comma-separated baselines to run (default: all)")
    p.add_argument("--fit-ranker", action="store_true",
                   help="fit the learned ranker on the dev half and write it to data/models/ranker/ first")
    p.add_argument("--model-dir", default=None, help="write/read the learned ranker here instead")
    p.add_argument("--feedback-authors", type=int, default=150,
                   help="test-half authors in the simulated feedback loop (default 150; 0 skips it)")
    p.add_argument("--abstract-first", action="store_true",
                   help="embed 'abstract title' instead of 'title. abstract' (to measure the order)")
    p.add_argument("--out", default="bench/results/eval_recommender.json")
    p.add_argument("--report", default=None, help="also write the markdown tables to this file")
    p.add_argument("--json", action="store_true")


def command(args: Any) -> int:
    """Run ``evaluate-recommender`` with parsed ``args``."""
    from recommender.cli.common import settings_from

    settings = settings_from(args)
    cfg = EvalConfig(corpus=Path(args.corpus), seed=args.seed, authors=args.authors, test_days=args.days,
                     min_day_papers=args.min_day_papers, categories=args.categories, background=args.background,
                     max_likes=args.max_likes, title_first=not args.abstract_first)
    if not cfg.corpus.is_file():
        raise FileNotFoundError(f"{cfg.corpus}: no such corpus file (see ../shared/data)")
    opts = RunOptions(with_svm=not args.no_svm, rankers=args.rankers.split(",") if args.rankers else None,
                      fit_ranker=args.fit_ranker, model_dir=Path(args.model_dir) if args.model_dir else None,
                      feedback_authors=args.feedback_authors,
                      seed_vectors=Path(args.seed_vectors) if args.seed_vectors else None,
                      cached_background=args.cached_background)
    report = run_evaluation(settings, cfg, progress=not args.json, options=opts)
    write_report(report, Path(args.out), Path(args.report) if args.report else None)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(markdown_sections(report))
        print(f"written {args.out}")
    return 0
