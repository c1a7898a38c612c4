"""Profiles and scoring on hand-made unit vectors: dislikes, several interests, empty profiles, why-lines."""
from __future__ import annotations

import numpy as np
import pytest

from recommender.ranking.digest import rank
from recommender.ranking.profile import Profile, ScoringParams, score, why_line


def _u(*xs: float) -> np.ndarray:
    v = np.array(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


AXES = np.eye(4, dtype=np.float32)


def test_multi_interest_profile_ranks_both_interests_above_the_midpoint() -> None:
    # likes on two distinct topics (axes 0 and 1); the midpoint paper is close to neither
    prof = Profile(like_ids=["a1", "a2", "b1"], likes=np.stack([_u(1, 0.05, 0, 0), _u(1, -0.05, 0, 0), _u(0, 1, 0, 0)]))
    cands = np.stack([_u(0.05, 1, 0, 0.1), _u(1, 0, 0.1, 0), _u(1, 1, 0, 0), _u(0, 0, 1, 0)])
    ids = ["topic-b", "topic-a", "midpoint", "unrelated"]
    best = [r.paper_id for r in rank(prof, ids, cands, n=4)]
    assert best[:2] == ["topic-a", "topic-b"] or best[:2] == ["topic-b", "topic-a"]
    assert best[-1] == "unrelated"
    # the mean-of-likes baseline puts the midpoint first: the failure this design avoids
    mean_best = [r.paper_id for r in rank(prof, ids, cands, n=4, params=ScoringParams("mean"))]
    assert mean_best[0] == "midpoint"


def test_dislikes_push_similar_papers_down() -> None:
    likes = np.stack([_u(1, 0.2, 0, 0)])
    cands = np.stack([_u(1, 0.6, 0, 0), _u(1, -0.3, 0, 0)])
    plain = score(Profile(like_ids=["l"], likes=likes), cands).score
    assert plain[0] > plain[1]
    disliked = Profile(like_ids=["l"], likes=likes, dislike_ids=["d"], dislikes=np.stack([_u(0.6, 1, 0, 0)]))
    pushed = score(disliked, cands).score
    assert pushed[1] > pushed[0]
    # an unrelated candidate is not touched by an unrelated dislike
    far = score(Profile(like_ids=["l"], likes=likes, dislike_ids=["d"], dislikes=AXES[3:4]), cands).score
    assert np.allclose(far, plain)


def test_interest_text_seeds_a_profile_and_names_itself_in_why() -> None:
    prof = Profile(interest="graph neural networks for molecules", interest_vec=AXES[2])
    ranked = rank(prof, ["x", "y"], np.stack([_u(0, 0, 1, 0.2), AXES[0]]), n=5, min_score=0.3)
    assert [r.paper_id for r in ranked] == ["x"]
    assert ranked[0].nearest_id is None
    assert ranked[0].why.startswith("matches your interest \u201cgraph neural networks for molecules\u201d (cos 0.98")


def test_threshold_sends_fewer_not_worse_and_why_names_the_liked_paper() -> None:
    prof = Profile(like_ids=["2504.01234", "2504.09999"], likes=np.stack([AXES[0], AXES[1]]))
    cands = np.stack([_u(1, 0, 0.3, 0), _u(0, 1, 1, 0), _u(0, 0, 1, 1)])
    ranked = rank(prof, ["c1", "c2", "c3"], cands, n=10, min_score=0.5)
    assert [r.paper_id for r in ranked] == ["c1", "c2"]
    assert ranked[0].why == "close to your liked 2504.01234 (cos 0.96)"
    assert ranked[1].nearest_id == "2504.09999" and ranked[1].nearest_cos == pytest.approx(0.7071, abs=1e-3)
    assert rank(prof, ["c1", "c2", "c3"], cands, n=10, min_score=0.99) == []


def test_empty_profile_ranks_nothing() -> None:
    prof = Profile()
    assert prof.empty
    assert rank(prof, ["a"], AXES[:1], n=5) == []
    assert np.all(score(prof, AXES).score == 0)


@pytest.mark.parametrize("method", ["softmax", "hybrid", "mean", "max", "knn"])
def test_every_method_stays_in_cosine_units(method: str) -> None:
    rng = np.random.default_rng(1)
    likes = rng.standard_normal((7, 16)).astype(np.float32)
    likes /= np.linalg.norm(likes, axis=1, keepdims=True)
    cands = rng.standard_normal((50, 16)).astype(np.float32)
    cands /= np.linalg.norm(cands, axis=1, keepdims=True)
    s = score(Profile(like_ids=[str(i) for i in range(7)], likes=likes), cands, ScoringParams(method)).score
    assert s.shape == (50,) and np.all(s <= 1.0001) and np.all(s >= -1.0001)
    if method not in ("mean", "hybrid"):  # pooled cosines never exceed the nearest liked paper's
        assert np.all(s <= (cands @ likes.T).max(axis=1) + 1e-5)


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown scoring method"):
        ScoringParams("magic")
    assert why_line(None, 0.5, "x" * 80).count("...") == 1


@pytest.mark.parametrize("method", ["softmax", "hybrid", "mean", "max", "knn"])
def test_batched_scoring_equals_one_by_one(method: str) -> None:
    import scipy.sparse as sp

    from recommender.ranking.digest import rank_many
    from recommender.ranking.profile import score_many

    rng = np.random.default_rng(2)

    def unit(n: int) -> np.ndarray:
        x = rng.standard_normal((n, 16)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def lex(n: int) -> sp.csr_matrix:  # tf-idf-like rows: non-negative, unit length
        m = sp.random(n, 50, density=0.2, format="csr", dtype=np.float32, random_state=rng)
        m.data = np.abs(m.data) + 0.01
        return sp.diags(1 / np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())).dot(m).tocsr()

    profiles = [Profile(like_ids=[f"l{i}" for i in range(m)], likes=unit(m), positives_lex=lex(m)) for m in (1, 3, 8)]
    profiles.append(Profile())
    profiles.append(Profile(interest="x", interest_vec=unit(1)[0], like_ids=["a", "b"], likes=unit(2),
                            dislike_ids=["d"], dislikes=unit(1), positives_lex=lex(3)))
    cands, cand_lex = unit(40), lex(40)
    params = ScoringParams(method)  # tf-idf on: lexical_weight 0.8, the product default
    batched = score_many(profiles, cands, params, max_columns=5, candidates_lex=cand_lex)
    for j, p in enumerate(profiles):
        assert np.allclose(batched[:, j], score(p, cands, params, cand_lex).score, atol=1e-5)
    ids = [f"c{i}" for i in range(40)]
    many = rank_many(profiles, ids, cands, n=5, min_score=0.1, params=params, lexical=cand_lex)
    for j, p in enumerate(profiles):
        one = rank(p, ids, cands, n=5, min_score=0.1, params=params, lexical=cand_lex)
        assert [r.paper_id for r in many[j]] == [r.paper_id for r in one]
        assert [r.why for r in many[j]] == [r.why for r in one]


def test_condensed_likes_keep_distinct_interests_and_match_batched() -> None:
    from recommender.ranking.profile import condense, score_many

    rng = np.random.default_rng(3)
    centers = np.eye(16, dtype=np.float32)[:3]
    likes = np.concatenate([c + 0.15 * rng.standard_normal((12, 16)).astype(np.float32) for c in centers])
    likes /= np.linalg.norm(likes, axis=1, keepdims=True)
    idx, counts = condense(likes, 4)
    assert len(idx) == 4 and counts.sum() == 36
    assert {int(i) // 12 for i in idx} == {0, 1, 2}  # every interest keeps a representative
    prof = Profile(like_ids=[str(i) for i in range(36)], likes=likes)
    params = ScoringParams("softmax", max_positives=4)
    cands = np.concatenate([centers, np.eye(16, dtype=np.float32)[5:8]])
    s = score(prof, cands, params).score
    assert s[:3].min() > s[3:].max()
    assert np.allclose(score_many([prof, Profile()], cands, params)[:, 0], s, atol=1e-5)
    full = score(prof, cands, ScoringParams("softmax")).score
    assert np.allclose(full[:3], s[:3], atol=0.1)


def test_batched_scoring_with_shared_likes_equals_one_by_one() -> None:
    from recommender.ranking.profile import score_many

    rng = np.random.default_rng(4)
    pool_vecs = rng.standard_normal((30, 16)).astype(np.float32)
    pool_vecs /= np.linalg.norm(pool_vecs, axis=1, keepdims=True)
    profiles = []
    for u in range(40):  # users liking from the same 30 papers: the shared path is taken
        pick = rng.choice(30, size=int(rng.integers(1, 8)), replace=False)
        p = Profile(like_ids=[f"p{i}" for i in pick], likes=pool_vecs[pick])
        if u % 5 == 0:
            p.interest, p.interest_vec = "x", pool_vecs[(u + 1) % 30]
        profiles.append(p)
    cands = pool_vecs[::-1] * 0.9 + 0.1 * pool_vecs
    cands /= np.linalg.norm(cands, axis=1, keepdims=True)
    batched = score_many(profiles, cands, ScoringParams(), max_columns=20)
    for j, p in enumerate(profiles):
        assert np.allclose(batched[:, j], score(p, cands, ScoringParams()).score, atol=1e-5)
