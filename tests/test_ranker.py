"""The learned ranker: the quick-check chooser, the features and the shipped combiner, and the product's paths
(`recommend`, digests) ranking with it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.config import Settings
from recommender.ranking.borderline import borderline
from recommender.ranking.digest import rank, rank_many
from recommender.ranking.features import FEATURES, Background, lda_scores
from recommender.ranking.learned import LearnedContext, RankerModel, feature_matrix, score_rows
from recommender.ranking.profile import Profile, ScoringParams, score
from recommender.store import Store
from tests.support.bot_fixtures import LATEST, hash_engine
from tests.support.random_vectors import lex as _lex
from tests.support.random_vectors import unit as _unit


def test_borderline_picks_the_scores_nearest_the_threshold() -> None:
    scores = [0.9, 0.31, 0.05, 0.29, 0.5, float("nan"), 0.3]
    assert borderline(scores, 0.3, k=1) == [6]
    assert borderline(scores, 0.3, k=3) == [6, 1, 3]  # equal distance: the higher score first
    assert borderline(scores, 0.3, k=2, exclude=[6, 1]) == [3, 4]
    assert borderline(np.array(scores), 0.3, k=50) == [6, 1, 3, 4, 2, 0]  # the nan never
    assert borderline(scores, 0.3, k=0) == [] and borderline([], 0.3) == []
    assert borderline([float("nan")], 0.3) == []


# -- the learned ranker's kernel ------------------------------------------------------------------------

CATS = ["cs.LG", "cs.CL", "astro-ph.GA", "math.PR", "q-bio.NC"]


def _cats(rng: np.random.Generator, n: int) -> list[list[str]]:
    return [list(dict.fromkeys(rng.choice(CATS, size=int(rng.integers(1, 3))).tolist())) for _ in range(n)]


def _world(seed: int = 5) -> tuple[list[Profile], list[str], np.ndarray, sp.csr_matrix, list[list[str]],
                                   Background]:
    """60 candidates; profiles liking from a pool of 30 papers (shared likes), with dislikes, an interest only,
    one without tf-idf rows (kept on the similarity score) and one empty."""
    rng = np.random.default_rng(seed)
    pool, pool_lex, pool_cats = _unit(rng, 30), _lex(rng, 30), _cats(rng, 30)
    profiles: list[Profile] = []
    for u in range(14):
        pick = rng.choice(30, size=[1, 3, 8, 20][u % 4], replace=False)
        p = Profile(like_ids=[f"p{i}" for i in pick], likes=pool[pick], positives_lex=pool_lex[pick],
                    like_categories=[pool_cats[i] for i in pick])
        if u % 3 == 1:
            p.dislike_ids, p.dislikes, p.dislikes_lex = ["d1", "d2"], _unit(rng, 2), _lex(rng, 2)
        profiles.append(p)
    profiles.append(Profile(interest="an interest", interest_vec=_unit(rng, 1)[0], positives_lex=_lex(rng, 1)))
    profiles.append(Profile(like_ids=["p1"], likes=pool[1:2]))  # no tf-idf rows
    profiles.append(Profile())
    bg = Background.fit(_unit(rng, 200), _lex(rng, 200))
    return profiles, [f"c{i}" for i in range(60)], _unit(rng, 60), _lex(rng, 60), _cats(rng, 60), bg


def _model(warm: dict[str, float], cold: dict[str, float] | None = None) -> RankerModel:
    w = np.array([warm.get(f, 0.0) for f in FEATURES], np.float32)
    c = np.array([(cold or {}).get(f, 0.0) for f in FEATURES], np.float32)
    return RankerModel(FEATURES, np.zeros(len(FEATURES), np.float32), np.ones(len(FEATURES), np.float32), w, c)


MIXED = {"mix_soft": 1.0, "lda_x_n": 0.3, "lex_mean": 0.5, "bg_lex": -0.4, "dis_emb_max": -0.5,
         "dis_lex_max": -0.3, "cat": 0.4, "cat_primary": 0.2, "emb_max": 0.1}


def test_features_are_what_they_say() -> None:
    profiles, _, cands, cand_lex, cats, bg = _world()
    p = profiles[2]  # 8 likes, no dislikes
    f = feature_matrix([p], cands, cand_lex, ScoringParams(), bg, cats)[0]
    col = {name: k for k, name in enumerate(FEATURES)}
    assert p.likes is not None and p.positives_lex is not None and p.like_categories is not None
    emb = cands @ p.likes.T
    lex = (cand_lex @ p.positives_lex.T).toarray()
    assert np.allclose(f[:, col["emb_max"]], emb.max(axis=1), atol=1e-5)
    assert np.allclose(f[:, col["lex_max"]], lex.max(axis=1), atol=1e-5)  # tf-idf recovered from the mix
    assert np.allclose(f[:, col["lex_mean"]], lex.mean(axis=1), atol=1e-5)
    assert np.allclose(f[:, col["mix_soft"]], score(p, cands, ScoringParams(), cand_lex).score, atol=1e-5)
    assert np.all(f[:, col["dis_emb_max"]] == 0)
    # the likes' categories: a candidate in none of them scores 0, one sharing the primary scores > 0
    like_prim = {c[0] for c in p.like_categories}
    for r, cs in enumerate(cats):
        assert (f[r, col["cat"]] > 0) == bool(set(cs) & {c for lc in p.like_categories for c in lc})
        assert (f[r, col["cat_primary"]] > 0) == (cs[0] in like_prim)
    # the per-user linear model: the background's centroid is at z = 0, the likes' centroid far above it
    z = lda_scores([p], np.stack([bg.emb_mean, p.likes.mean(axis=0)]), bg)[0]
    assert abs(z[0]) < 1e-4 and z[1] > 1


def test_learned_ranking_single_and_batched_agree() -> None:
    profiles, ids, cands, cand_lex, cats, bg = _world()
    ctx = LearnedContext.of(_model(MIXED), bg, cats)
    thresholds = [None if j % 3 == 0 else 0.05 for j in range(len(profiles))]
    many = rank_many(profiles, ids, cands, n=7, min_score=thresholds, lexical=cand_lex, max_columns=12,
                     learned=ctx)
    plain = rank_many(profiles, ids, cands, n=7, min_score=thresholds, lexical=cand_lex, max_columns=12)
    differs = 0
    for j, p in enumerate(profiles):
        one = rank(p, ids, cands, n=7, min_score=thresholds[j], lexical=cand_lex, learned=ctx)
        assert [r.paper_id for r in many[j]] == [r.paper_id for r in one], j
        assert [r.score for r in many[j]] == pytest.approx([r.score for r in one], abs=1e-4)
        if p.positives_lex is None:  # not servable: the similarity score, as before
            assert [r.paper_id for r in one] == [r.paper_id for r in plain[j]]
        differs += [r.paper_id for r in one] != [r.paper_id for r in plain[j]]
        if p.like_ids and p.positives_lex is not None and thresholds[j] is None:  # the model's own order
            f = feature_matrix([p], cands, cand_lex, ScoringParams(), bg, cats)[0]
            expect = np.argsort(-score_rows(ctx.model, f), kind="stable")[:7]
            assert [r.paper_id for r in one] == [ids[i] for i in expect], j
        floor = thresholds[j]
        assert all(floor is None or (r.similarity is not None and r.similarity >= floor) for r in one)
    assert differs >= 5  # the learned score really ranks


def test_dislikes_and_excluded_candidates_through_rank() -> None:
    profiles, ids, cands, cand_lex, cats, bg = _world()
    p = profiles[1]  # with dislikes
    assert p.dislikes is not None
    ctx = LearnedContext.of(_model({"dis_emb_max": -1.0}), bg, cats)
    ranked = rank(p, ids, cands, n=60, lexical=cand_lex, learned=ctx, exclude={"c0", "c1"})
    near = (cands @ p.dislikes.T).max(axis=1)
    got = [int(r.paper_id[1:]) for r in ranked]
    assert 0 not in got and 1 not in got
    assert list(near[got]) == sorted(near[got])  # the papers nearest a dislike last


def test_model_file_round_trip_and_validation(tmp_path: Path) -> None:
    m = _model(MIXED, {"lex_max": 1.0})
    path = tmp_path / "ranker.json"
    path.write_text(json.dumps(m.to_dict()))
    back = RankerModel.load(path)
    assert back.features == FEATURES and np.allclose(back.warm, m.warm) and np.allclose(back.cold, m.cold)
    bad = m.to_dict() | {"features": ["mix_soft", "author_overlap"] + list(FEATURES[2:])}
    with pytest.raises(ValueError, match="unknown features"):
        RankerModel.from_dict(bad)
    with pytest.raises(ValueError, match="format"):
        RankerModel.from_dict(m.to_dict() | {"format": 99})


# -- the product's paths -------------------------------------------------------------------------------

def test_recommend_ranks_with_the_learned_model(settings: Settings, demo_store: Store) -> None:
    """`recommend` (what `arxiv-digest recommend --like ...` runs) orders by the learned model: a model that only
    values the likes' primary category puts that category's papers first; without it (learned off) the
    similarity orders as before; one like, an interest alone, and dislikes all work."""
    today = demo_store.announced_ids(LATEST)
    papers = demo_store.get_papers(today)
    astro = [i for i in today if papers[i].categories[0].startswith("astro-ph")][:3]
    cats_of_likes = {papers[i].categories[0] for i in astro}
    engine = hash_engine(settings, demo_store)
    engine.ranker_model = _model({"cat_primary": 1.0, "mix_soft": 0.01}, {"lex_max": 1.0})
    recs = engine.recommend(astro, candidates=today, n=10)
    assert len(recs) == 10 and not {r.paper.id for r in recs} & set(astro)
    assert all(r.paper.categories[0] in cats_of_likes for r in recs)
    assert [r.score for r in recs] == sorted((r.score for r in recs), reverse=True)
    engine.learned = False
    plain = engine.recommend(astro, candidates=today, n=10)
    assert [r.paper.id for r in plain] != [r.paper.id for r in recs]
    engine.learned = True
    one = engine.recommend(astro[:1], candidates=today, n=5)  # a single like
    assert len(one) == 5 and all(r.paper.categories[0] == papers[astro[0]].categories[0] for r in one)
    text = engine.recommend([], interests="galaxies dark matter halo", candidates=today, n=5)  # cold start
    assert len(text) == 5 and all(r.why.startswith("matches your interest") for r in text)
    disliked = engine.recommend(astro, dislikes=[recs[0].paper.id], candidates=today, n=10)
    assert recs[0].paper.id not in {r.paper.id for r in disliked}


def test_digests_equal_digest_with_the_learned_ranker(settings: Settings, demo_store: Store) -> None:
    """The batched delivery ranking and the one-user digest agree with the learned ranker on."""
    engine = hash_engine(settings, demo_store)
    engine.ranker_model = _model(MIXED, {"lex_max": 1.0, "emb_max": 0.5})
    today = demo_store.announced_ids(LATEST)
    setups = [(["cs.LG"], "", today[:3], [today[3]], 0.1), ([], "galaxies dark matter", today[4:6], [], 0.05),
              ([], "language models reasoning", [], [], 0.1), (["cs.LG"], "", [], [], 0.3),
              ([], "", today[7:9], [today[9]], None)]
    uids = []
    for k, (cats, interests, likes, dislikes, floor) in enumerate(setups):
        uid = 700 + k
        demo_store.ensure_user(uid, chat_id=uid, min_score=floor or 0.0, digest_size=6, interests=interests)
        if cats:
            demo_store.set_user_categories(uid, cats)
        for pid in likes:
            demo_store.set_feedback(uid, pid, 1)
        for pid in dislikes:
            demo_store.set_feedback(uid, pid, -1)
        uids.append(uid)
    batched = engine.digests(uids, LATEST)
    for uid in uids:
        one = engine.digest(uid, LATEST)
        assert [r.paper.id for r in batched[uid]] == [r.paper.id for r in one], uid
        assert [r.score for r in batched[uid]] == pytest.approx([r.score for r in one], abs=1e-4)
    assert sum(bool(batched[u]) for u in uids) >= 4


def test_pairwise_fit_recovers_the_feature_that_decides_relevance() -> None:
    """The combiner's fit (training.fit_ranker): when relevance follows one feature, that feature gets the
    largest weight and the fitted scores rank the relevant candidates first."""
    from training.fit_ranker import Sample, fit_weights, ndcg_of, standardisation

    rng = np.random.default_rng(2)
    k = FEATURES.index("lda")
    samples = []
    for q in range(30):
        f = rng.standard_normal((80, len(FEATURES))).astype(np.float32)
        rel = np.zeros(80, bool)
        rel[np.argsort(-(f[:, k] + 0.3 * rng.standard_normal(80)))[:4]] = True
        samples.append(Sample(f, rel, "author" if q % 2 else "category"))
    mean, scale = standardisation(samples)
    w = fit_weights(samples, mean, scale, c=1.0)
    assert int(np.argmax(w)) == k and w[k] > 3 * np.abs(np.delete(w, k)).max()
    got = ndcg_of(samples, [((s.feats - mean) / scale) @ w for s in samples])
    assert min(got.values()) > 0.8
    only = fit_weights(samples, mean, scale, c=1.0, use=["emb_max", "lex_max"])
    assert np.count_nonzero(only) <= 2 and only[k] == 0


def test_dislike_rule_never_lets_a_dislike_lift_a_paper() -> None:
    """Fitted dislike weights are clipped at 0 and the previous penalty gets the weight of a drop in similarity:
    a candidate that is a disliked paper's twin falls in the ranking."""
    model = _model({"emb_max": 1.0, "lex_max": 0.5, "dis_emb_max": 0.7}).with_dislike_rule()
    k = {f: i for i, f in enumerate(FEATURES)}
    assert model.warm[k["dis_emb_max"]] == 0 and model.warm[k["dis_penalty"]] == pytest.approx(-1.5)
    profiles, ids, cands, cand_lex, cats, bg = _world()
    p = profiles[3]
    ctx = LearnedContext.of(model, bg, cats)
    before = [r.paper_id for r in rank(p, ids, cands, n=60, lexical=cand_lex, learned=ctx)]
    twin = before[1]
    p.dislike_ids, p.dislikes = ["d"], cands[[int(twin[1:])]]
    p.dislikes_lex = cand_lex[[int(twin[1:])]]
    after = [r.paper_id for r in rank(p, ids, cands, n=60, lexical=cand_lex, learned=ctx)]
    assert after.index(twin) > 1


def test_the_shipped_model_loads() -> None:
    """The weights in data/models/ranker/ load, use known features only (no author feature) and follow the
    dislike rule (no dislike feature lifts a paper)."""
    model = RankerModel.load()
    assert set(model.features) <= set(FEATURES) and np.any(model.warm) and np.any(model.cold)
    assert all("author" not in f for f in model.features)
    k = {f: i for i, f in enumerate(model.features)}
    assert all(model.warm[k[f]] <= 0 for f in ("dis_emb_max", "dis_lex_max", "dis_penalty"))
