"""One scoring kernel: one profile at a time and many at once give the same scores and the same digests, with
tf-idf on (the product default), dislikes, interests, condensed likes and per-user thresholds."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.config import Settings
from recommender.ranking.digest import rank, rank_many
from recommender.ranking.profile import Profile, ScoringParams, score, score_many
from recommender.store import Store
from tests.support.bot_fixtures import LATEST, hash_engine
from tests.support.random_vectors import lex as _lex
from tests.support.random_vectors import unit as _unit


def _world(seed: int = 7) -> tuple[list[Profile], list[str], np.ndarray, sp.csr_matrix]:
    """40 candidates; profiles liking from a pool of 30 papers (so shared likes are used), some with an
    interest, dislikes, many likes (condensed with max_positives), or no tf-idf rows; one empty."""
    rng = np.random.default_rng(seed)
    pool, pool_lex = _unit(rng, 30), _lex(rng, 30)
    cands, cand_lex = _unit(rng, 40), _lex(rng, 40)
    profiles: list[Profile] = []
    for u in range(24):
        m = [1, 2, 5, 12, 20][u % 5]
        pick = rng.choice(30, size=m, replace=False)
        p = Profile(like_ids=[f"p{i}" for i in pick], likes=pool[pick])
        rows = [pool_lex[pick]]
        if u % 3 == 0:
            p.interest, p.interest_vec = f"interest {u}", _unit(rng, 1)[0]
            rows.append(_lex(rng, 1))
        if u % 4 == 1:
            p.dislike_ids, p.dislikes = ["d1", "d2"], _unit(rng, 2)
        if u % 7 != 6:  # a few profiles without tf-idf rows rank on embeddings only
            p.positives_lex = sp.vstack(rows).tocsr()
        profiles.append(p)
    profiles.append(Profile())
    profiles.append(Profile(interest="only an interest", interest_vec=_unit(rng, 1)[0],
                            positives_lex=_lex(rng, 1)))
    return profiles, [f"c{i}" for i in range(40)], cands, cand_lex


PARAMS = [ScoringParams(), ScoringParams(max_positives=4), ScoringParams("hybrid"), ScoringParams("max"),
          ScoringParams("knn"), ScoringParams("mean"), ScoringParams(lexical_weight=0.0)]


@pytest.mark.parametrize("params", PARAMS, ids=lambda p: f"{p.method}-w{p.lexical_weight}-m{p.max_positives}")
def test_single_and_batched_scores_agree_with_tfidf_on(params: ScoringParams) -> None:
    profiles, _, cands, cand_lex = _world()
    ranking = score_many(profiles, cands, params, max_columns=16, candidates_lex=cand_lex)
    semantic = score_many(profiles, cands, params, max_columns=16, candidates_lex=cand_lex, semantic=True)
    differs = False
    for j, p in enumerate(profiles):
        one = score(p, cands, params, cand_lex)
        assert one.semantic is not None
        assert np.allclose(ranking[:, j], one.score, atol=1e-5), j
        assert np.allclose(semantic[:, j], one.semantic, atol=1e-5), j
        differs |= not np.allclose(one.score, one.semantic, atol=1e-3)
    # tf-idf really is part of the ranking score (except where it is off or ignored by design)
    assert differs == (params.lexical_weight > 0 and params.method != "mean")


@pytest.mark.parametrize("params", PARAMS, ids=lambda p: f"{p.method}-w{p.lexical_weight}-m{p.max_positives}")
def test_rank_and_rank_many_give_the_same_digests_threshold_included(params: ScoringParams) -> None:
    profiles, ids, cands, cand_lex = _world()
    thresholds = [None if j % 5 == 0 else 0.2 + 0.06 * (j % 4) for j in range(len(profiles))]
    many = rank_many(profiles, ids, cands, n=6, min_score=thresholds, params=params, lexical=cand_lex,
                     max_columns=16)
    short = 0
    for j, p in enumerate(profiles):
        one = rank(p, ids, cands, n=6, min_score=thresholds[j], params=params, lexical=cand_lex)
        assert [(r.paper_id, r.why) for r in many[j]] == [(r.paper_id, r.why) for r in one], j
        assert [r.score for r in many[j]] == pytest.approx([r.score for r in one], abs=1e-5)
        if p.empty:
            assert one == []
            continue
        # the threshold removes candidates before the top n is taken: a user gets n papers whenever
        # at least n candidates reach their minimum score
        s = score(p, cands, params, cand_lex)
        assert s.semantic is not None
        passing = int(np.sum(s.semantic >= thresholds[j])) if thresholds[j] is not None else len(ids)
        assert len(one) == min(6, passing), j
        short += passing < 6
        floor = thresholds[j]
        assert all(r.similarity is not None and (floor is None or r.similarity >= floor) for r in one)
    assert short > 0  # some users have a thin day: the threshold is exercised


def test_condensed_positives_follow_changed_likes() -> None:
    rng = np.random.default_rng(3)
    likes = _unit(rng, 12)
    prof = Profile(like_ids=[f"l{i}" for i in range(12)], likes=likes)
    before = prof.condensed(4)
    assert before is not None and len(before.vecs) == 4 and np.isclose(np.exp(before.logw).sum(), 12)
    prof.like_ids, prof.likes = prof.like_ids[:3], likes[:3]  # likes changed: nothing stale comes back
    after = prof.condensed(4)
    assert after is not None and after.labels == ["l0", "l1", "l2"] and np.all(after.logw == 0)
    cands = _unit(rng, 5)
    assert np.allclose(score(prof, cands, ScoringParams(max_positives=4)).score,
                       score(prof, cands, ScoringParams()).score, atol=1e-6)


def test_engine_digests_equal_digest_user_by_user(settings: Settings, demo_store: Store) -> None:
    """The batched delivery ranking applies exactly the rules of Engine.digest, on the demo papers with
    tf-idf: own categories, cross-lists, delivered and rated papers left out, min_score, category-only users."""
    engine = hash_engine(settings, demo_store)
    day = LATEST
    today = demo_store.announced_ids(day)
    assert len(today) > 30
    papers = demo_store.get_papers(today[:12])
    setups = [  # (categories, interests, likes, dislikes, min_score, cross_lists, size)
        (["cs.LG"], "", [], [], 0.3, True, 5),  # category-only: ranked by category names, no threshold
        (["astro-ph.GA", "astro-ph.CO"], "", [], [], 0.9, False, 3),
        ([], "language models reasoning and planning", [], [], 0.1, True, 6),
        (["cs.LG", "cs.CL"], "", today[:3], [today[3]], 0.2, True, 5),
        ([], "galaxies dark matter", today[4:6], [], 0.25, False, 10),
        ([], "", today[:2], [today[2]], 0.5, True, 4),  # a high bar: a thin day sends fewer
        ([], "", [], [], 0.3, True, 5),  # no profile at all
        (["cs.LG"], "reinforcement learning", list(papers)[6:9], [], 0.15, True, 1),  # a digest of one
    ]
    uids = []
    for k, (cats, interests, likes, dislikes, floor, cross, size) in enumerate(setups):
        uid = 500 + k
        demo_store.ensure_user(uid, chat_id=uid, min_score=floor, cross_lists=int(cross), digest_size=size,
                               interests=interests)
        if cats:
            demo_store.set_user_categories(uid, cats)
        for pid in likes:
            demo_store.set_feedback(uid, pid, 1)
        for pid in dislikes:
            demo_store.set_feedback(uid, pid, -1)
        uids.append(uid)
    demo_store.record_delivery(uids[2], today[10], day)  # delivered before: never again
    batched = engine.digests(uids, day)
    assert set(batched) == set(uids)
    nonempty = 0
    for uid in uids:
        one = engine.digest(uid, day)
        assert [(r.paper.id, r.why) for r in batched[uid]] == [(r.paper.id, r.why) for r in one], uid
        assert [r.score for r in batched[uid]] == pytest.approx([r.score for r in one], abs=1e-5)
        assert [r.similarity for r in batched[uid]] == pytest.approx([r.similarity for r in one], abs=1e-5)
        nonempty += bool(one)
    assert nonempty >= 5
    assert today[10] not in {r.paper.id for r in batched[uids[2]]}
    assert batched[uids[6]] == []  # no profile, no digest
    assert all(r.why == "new in the categories you follow" for r in batched[uids[0]])
