"""The Engine through its public interface with the real model, a real SQLite store and a local arXiv API."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from recommender.config import Settings, load_settings
from recommender.embedding.embed import Embedder, load_embedder, paper_text
from recommender.engine.core import Engine, Recommendation
from recommender.ids import InvalidArxivId
from recommender.models import Paper
from recommender.sources.importer import iter_file
from recommender.store import Store
from tests.support.local_server import LocalServer

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PAPERS = FIXTURES / "reco" / "papers.jsonl"
API = FIXTURES / "arxiv_api"
DAY = "2026-06-23"


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    home = tmp_path_factory.getbasetemp() / "reco-model-home"
    return load_embedder(load_settings(env={}, home=home), "onnx")  # the product's CPU backend


@pytest.fixture(scope="module")
def clusters() -> dict[str, str]:
    return {json.loads(line)["id"]: json.loads(line)["cluster"] for line in PAPERS.read_text().splitlines()}


def _papers() -> list[Paper]:
    papers = list(iter_file(PAPERS))
    for i, p in enumerate(papers):  # half are that day's listing (new, every 5th a cross-list), half are older
        if i % 2 == 0:
            p.announced, p.announce_type = DAY, ("cross" if i % 5 == 0 else "new")
        else:
            p.announced, p.announce_type = "2025-05-01", "new"
    return papers


@pytest.fixture
def engine(settings: Settings, store: Store, embedder: Embedder) -> Engine:
    store.upsert_papers(_papers())
    eng = Engine(settings, store, embedder=embedder)
    assert eng.embed_missing(progress=False) == 48
    return eng


def _ids(recs: list[Recommendation]) -> list[str]:
    return [r.paper.id for r in recs]


def test_embedding_is_incremental_and_survives_a_restart(engine: Engine, settings: Settings, store: Store,
                                                         embedder: Embedder) -> None:
    assert engine.embed_missing(progress=False) == 0
    extra = Paper(id="2606.99999", title="Surface codes for quantum error correction at scale",
                  abstract="We study surface code decoders for fault-tolerant quantum computing.")
    store.upsert_papers([extra])
    assert engine.embed_missing(progress=False) == 1
    assert Engine(settings, store, embedder=embedder).embed_missing(progress=False) == 0


def test_embedding_a_backlog_can_be_capped_newest_first(engine: Engine, store: Store) -> None:
    """The bot's warm-up embeds at most ``warmup_embed_limit`` papers (a harvested store is a bulk job)."""
    backlog = [Paper(id=i, title=f"Paper {i} on decoders", abstract="Surface code decoding.")
               for i in ("2601.00001", "2603.00002", "hep-th/9901001")]
    store.upsert_papers(backlog)
    assert engine.embed_missing(progress=False, limit=1) == 1
    assert engine.index.missing(["2601.00001", "2603.00002", "hep-th/9901001"]) == ["2601.00001", "hep-th/9901001"]
    assert engine.embed_missing(progress=False, limit=0) == 0
    assert engine.embed_missing(progress=False) == 2


def test_model_change_is_detected_and_everything_is_embedded_again(engine: Engine, settings: Settings,
                                                                   store: Store) -> None:
    # int8 vectors are another vector space (torch and ONNX fp32 share one): a change of key re-embeds all
    int8_engine = Engine(settings, store, embedder=load_embedder(settings, "onnx-int8"))
    assert int8_engine.embed_missing(progress=False) == 48  # other key: nothing reused, nothing mixed
    assert store.get_meta("embedding_model") == int8_engine.index.key != engine.index.key


def test_similar_by_id_excludes_itself_and_stays_on_topic(engine: Engine, clusters: dict[str, str]) -> None:
    qec = [i for i, c in clusters.items() if c == "qec"]
    recs = engine.similar(f"https://arxiv.org/abs/{qec[0]}v2", n=5)
    assert qec[0] not in _ids(recs) and len(recs) == 5
    assert sum(clusters[r.paper.id] == "qec" for r in recs) >= 4
    assert recs[0].nearest_id == qec[0] and recs[0].why.startswith(f"close to {qec[0]} (cos ")
    assert recs[0].score >= recs[-1].score


def test_similar_by_text(engine: Engine, clusters: dict[str, str]) -> None:
    recs = engine.similar("galaxy formation and star formation in the early universe", n=3)
    assert [clusters[r.paper.id] for r in recs] == ["galaxy"] * 3
    assert recs[0].nearest_id is None and "matches \u201cgalaxy formation" in recs[0].why


def test_similar_unknown_and_malformed_ids(engine: Engine, server: LocalServer) -> None:
    server.route("/api/query", (200, (API / "id_0000.0000_s0_m100_8b51d9633a68.body.xml").read_bytes()))
    with pytest.raises(LookupError, match="arXiv does not know 2101.00001"):
        engine.similar("2101.00001")
    with pytest.raises(InvalidArxivId):
        engine.similar("2513.00001")


def test_arxiv_failure_names_only_the_ids_it_could_not_fetch(engine: Engine, server: LocalServer,
                                                             clusters: dict[str, str]) -> None:
    stored = next(iter(clusters))
    server.route("/api/query", (503, b"down"))
    with pytest.raises(LookupError, match=r"could not fetch 2101\.00001 from arXiv") as err:
        engine.ensure_papers([stored, "2101.00001"])
    assert stored not in str(err.value)


def test_ids_not_in_the_store_are_fetched_stored_and_embedded(engine: Engine, server: LocalServer,
                                                               store: Store) -> None:
    server.route("/api/query", (200, (API / "id_1605.08386_s0_m100_199195aa31ad.body.xml").read_bytes()))
    found = engine.ensure_papers(["1605.08386v1"])
    assert list(found) == ["1605.08386"] and store.has_paper("1605.08386")
    assert "1605.08386" in engine.index
    assert server.requests[0][1]["id_list"] == ["1605.08386"]
    recs = engine.similar("1605.08386", n=3)  # now served from the store: no second request
    assert len(recs) == 3 and len(server.requests) == 1


def test_recommend_multi_interest_dislikes_and_threshold(engine: Engine, clusters: dict[str, str]) -> None:
    qec = [i for i, c in clusters.items() if c == "qec"]
    gal = [i for i, c in clusters.items() if c == "galaxy"]
    recs = engine.recommend(likes=qec[:2] + gal[:1], n=8)
    got = [clusters[i] for i in _ids(recs)]
    # both interests, not their average (the learned ranker leans to the interest with more likes: 2 to 1 here)
    assert "qec" in got[:4] and "galaxy" in got[:5]
    assert not set(_ids(recs)) & set(qec[:2] + gal[:1])
    for r in recs:
        assert r.nearest_id in qec[:2] + gal[:1]
        assert r.why == f"close to your liked {r.nearest_id} (cos {r.nearest_cos:.2f})"
    # disliking galaxy papers lowers what resembles them (near-duplicates most: a dislike of a paper on one's own
    # topic says "not this one", not "not this topic"; measured in docs/recommender_eval.md), never the quantum ones
    recs2 = engine.recommend(likes=qec[:2] + gal[:1], dislikes=gal[1:3], n=6)
    got2 = [clusters[i] for i in _ids(recs2)]
    assert got2[:4].count("qec") >= 3 and not set(_ids(recs2)) & set(gal[1:3])
    twin = engine.store.get_paper(gal[1])
    assert twin is not None
    engine.store.upsert_papers([dataclasses.replace(twin, id="2606.99998", title=twin.title + " (extended)")])
    engine.embed_missing(progress=False)
    pool = gal[3:] + qec[2:] + ["2606.99998"]
    plain = _ids(engine.recommend(likes=qec[:2] + gal[:1], candidates=pool, n=len(pool)))
    disliked = _ids(engine.recommend(likes=qec[:2] + gal[:1], dislikes=gal[1:3], candidates=pool, n=len(pool)))
    assert disliked.index("2606.99998") > plain.index("2606.99998")  # the near-duplicate of a dislike drops
    assert engine.recommend(likes=qec[:1], min_score=0.99) == []
    only = engine.recommend(likes=qec[:1], candidates=gal + qec[1:2], n=3)
    assert _ids(only)[0] == qec[1]


def test_interest_only_and_empty_profiles(engine: Engine, clusters: dict[str, str]) -> None:
    recs = engine.recommend(likes=[], interests="protein structure design", n=3)
    assert [clusters[i] for i in _ids(recs)].count("protein") >= 2
    assert recs[0].why.startswith("matches your interest \u201cprotein structure design\u201d")
    assert engine.recommend(likes=[], interests="  ") == []


def test_digest_follows_the_rules(engine: Engine, store: Store, clusters: dict[str, str]) -> None:
    day_ids = store.announced_ids(DAY, ("new", "cross"))
    cross = set(store.announced_ids(DAY, ("cross",)))
    qec_today = [i for i in day_ids if clusters[i] == "qec"]
    qec_old = [i for i, c in clusters.items() if c == "qec" and i not in day_ids]
    store.ensure_user(7, digest_size=4, min_score=0.3)
    store.set_feedback(7, qec_old[0], 1)
    recs = engine.digest(7, DAY)
    assert 0 < len(recs) <= 4 and set(_ids(recs)) <= set(day_ids)
    assert clusters[recs[0].paper.id] == "qec" and all(r.similarity is not None and r.similarity >= 0.3 for r in recs)
    store.record_delivery(7, recs[0].paper.id, DAY)
    store.set_feedback(7, _ids(recs)[1], -1) if len(recs) > 1 else None
    again = engine.digest(7, DAY)
    assert recs[0].paper.id not in _ids(again)
    store.record_announcements([(qec_old[1], DAY, "replace")])  # a replacement is never new again
    store.update_user(7, min_score=-1.0, digest_size=50)
    everything = _ids(engine.digest(7, DAY))
    assert qec_old[1] not in everything and set(everything) & cross
    store.update_user(7, cross_lists=False)
    assert not set(_ids(engine.digest(7, DAY))) & cross
    store.set_user_categories(7, ["astro-ph.GA"])
    assert all("astro-ph.GA" in r.paper.categories for r in engine.digest(7, DAY))
    assert engine.digest(7, "2026-06-24") == []  # no announcement that day
    with pytest.raises(LookupError):
        engine.digest(999, DAY)
    assert qec_today  # the fixture has quantum papers that day


def test_digest_for_a_category_only_user(engine: Engine, store: Store) -> None:
    store.ensure_user(8, digest_size=3)
    store.set_user_categories(8, ["quant-ph"])
    recs = engine.digest(8, DAY)
    assert recs and all("quant-ph" in r.paper.categories for r in recs)
    assert recs[0].why == "new in the categories you follow"
    store.ensure_user(9)
    assert engine.digest(9, DAY) == []  # no likes, no interests, no categories: nothing to rank by


def test_lexical_index_is_built_with_the_vectors(engine: Engine, settings: Settings, store: Store,
                                                 embedder: Embedder) -> None:
    assert engine.lexical.ready and len(engine.lexical) == 48
    assert (settings.home / "lexical" / "matrix.npz").is_file()
    again = Engine(settings, store, embedder=embedder)
    assert again.lexical.ready and len(again.lexical) == 48


def test_seed_vectors_from_a_shipped_file(engine: Engine, settings: Settings, store: Store,
                                          embedder: Embedder, tmp_path: Path) -> None:
    shipped = tmp_path / "demo_vectors.arrow"
    assert engine.index.export(shipped) == 48
    fresh = dataclasses.replace(settings, home=tmp_path / "fresh")
    other = Engine(fresh, store, embedder=embedder)
    assert other.seed_vectors(shipped) == 48
    assert other.embed_missing(progress=False) == 0  # nothing left to embed
    assert other.seed_vectors(tmp_path / "absent.arrow") == 0


def test_shipped_demo_vectors_match_the_current_model(settings: Settings, store: Store, embedder: Embedder,
                                                      demo_papers: list[Paper]) -> None:
    """The terminal's first start takes the demo papers' vectors from data/demo_vectors.arrow instead of
    embedding 2,700 papers; that only works while the file was made by the model the product loads."""
    store.upsert_papers(demo_papers)
    eng = Engine(settings, store, embedder=embedder)
    assert eng.seed_vectors(settings.demo_vectors) == len(demo_papers)
    assert eng.index.missing(store.paper_ids()) == []
    sample = demo_papers[:8]
    fresh = embedder.encode([paper_text(p) for p in sample])
    shipped = eng.index.get([p.id for p in sample])
    assert float(np.min(np.sum(fresh * shipped, axis=1))) > 0.99


def test_a_new_version_refreshes_the_vector(engine: Engine, store: Store) -> None:
    pid = store.paper_ids()[0]
    old = engine.index.get([pid])[0].copy()
    paper = store.get_paper(pid)
    assert paper is not None
    revised = dataclasses.replace(paper, version=paper.version + 1, title="Protein folding with diffusion models",
                                  abstract="We fold proteins with a diffusion model trained on structures.")
    stats = store.upsert_papers([revised])
    assert stats.text_changed == [pid]
    assert engine.refresh(stats.text_changed) == 1
    new = engine.index.get([pid])[0]
    assert float(old @ new) < 0.95
    hits = engine.similar("diffusion models that fold protein structures", n=3)
    assert pid in [h.paper.id for h in hits]
