"""The vector index's approximate path on real MiniLM vectors (the shipped demo sample), forced by a low threshold:
recall against exact search, exact scores, persistence and reload by another instance and another process, growth
by ``add``, a graph that disagrees with the vectors is not used and is rebuilt, small stores stay exact, and the
filters /similar uses (the query paper excluded, a candidate subset) still hold."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Set as AbstractSet
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from pyarrow import ipc

from recommender.config import Settings, load_settings
from recommender.embedding import ann
from recommender.embedding.embed import Embedder, load_embedder
from recommender.embedding.vectors import VectorIndex
from recommender.engine.core import Engine
from recommender.paths import DEMO_VECTORS
from recommender.sources.importer import iter_file
from recommender.store import Store

KEY = "test-minilm|384"
DIM = 384
RECO_PAPERS = Path(__file__).resolve().parent / "fixtures" / "reco" / "papers.jsonl"
N_STORE = 2000  # the store; the rest of the demo sample are queries (real papers not in the store)


@pytest.fixture(scope="module")
def real() -> tuple[list[str], np.ndarray]:
    with pa.memory_map(str(DEMO_VECTORS), "r") as src:
        table = ipc.open_file(src).read_all()
    ids = table.column("id").to_pylist()
    vecs = np.asarray(table.column("vector").combine_chunks().values.to_numpy(zero_copy_only=False),
                      dtype=np.float32).reshape(len(ids), DIM)
    assert len(ids) >= N_STORE + 200
    return ids, vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def _open(path: Path, **kw: int) -> VectorIndex:
    return VectorIndex(path, KEY, DIM, ann_min_vectors=kw.get("ann_min", 500), ann_tail_max=kw.get("tail", 300))


def _filled(path: Path, ids: list[str], vecs: np.ndarray, n: int = N_STORE, step: int = 250) -> VectorIndex:
    index = _open(path)
    for s in range(0, n, step):
        index.add(ids[s:min(n, s + step)], vecs[s:min(n, s + step)])
    return index


def _exact(ids: list[str], vecs: np.ndarray, q: np.ndarray, k: int, skip: AbstractSet[str] = frozenset()) -> list[str]:
    scores = vecs @ q
    order = [i for i in np.argsort(-scores) if ids[i] not in skip]
    return [ids[i] for i in order[:k]]


def _graphs(path: Path) -> list[str]:
    return sorted(p.name for p in ann.graph_files(path))


def test_recall_against_exact_search_with_exact_scores(tmp_path: Path, real: tuple[list[str], np.ndarray]) -> None:
    ids, vecs = real
    index = _filled(tmp_path, ids, vecs)
    status = index.ann_status()
    assert status["uses_ann"] and status["ann_rows"] == N_STORE and status["library"] == "usearch"
    store_ids, store = ids[:N_STORE], vecs[:N_STORE]
    hits = 0
    for q in vecs[N_STORE:N_STORE + 200]:
        got = index.search(q, 10)
        want = _exact(store_ids, store, q, 10)
        hits += len({g for g, _ in got} & set(want))
        assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)
        for pid, s in got:  # scores are exact cosines from the fp32 vectors, not the graph's int8 estimates
            assert s == pytest.approx(float(store[store_ids.index(pid)] @ q), abs=1e-5)
    assert hits / 2000 >= 0.99


def test_filters_exclusion_and_candidate_subset(tmp_path: Path, real: tuple[list[str], np.ndarray]) -> None:
    ids, vecs = real
    index = _filled(tmp_path, ids, vecs)
    store_ids, store = ids[:N_STORE], vecs[:N_STORE]
    for r in (3, 500, 1999):  # /similar ID: the paper itself never comes back, its true neighbours do
        got = [g for g, _ in index.search(store[r], 10, exclude={store_ids[r]})]
        assert store_ids[r] not in got and len(got) == 10
        assert len(set(got) & set(_exact(store_ids, store, store[r], 10, {store_ids[r]}))) >= 9
    many = set(store_ids[:5])  # many exclusions are over-fetched, not starved
    got = [g for g, _ in index.search(store[0], 10, exclude=many)]
    assert len(got) == 10 and not many & set(got)
    subset = store_ids[1000:1300:3] + ["not-stored"]
    got = [g for g, _ in index.search(vecs[N_STORE], 5, candidates=subset)]
    assert got == _exact(store_ids[1000:1300:3], store[1000:1300:3], vecs[N_STORE], 5)


def test_small_store_stays_exact(tmp_path: Path, real: tuple[list[str], np.ndarray]) -> None:
    ids, vecs = real
    index = VectorIndex(tmp_path, KEY, DIM)  # the default threshold (50,000) is far above this store
    index.add(ids[:N_STORE], vecs[:N_STORE])
    assert not index.ann_status()["uses_ann"] and _graphs(tmp_path) == []
    for q in vecs[N_STORE:N_STORE + 20]:
        assert [g for g, _ in index.search(q, 10)] == _exact(ids[:N_STORE], vecs[:N_STORE], q, 10)


def test_growth_by_add_tail_searched_then_graph_extended(tmp_path: Path, real: tuple[list[str], np.ndarray]) -> None:
    ids, vecs = real
    index = _filled(tmp_path, ids, vecs, n=1000)
    assert index.ann_status()["ann_rows"] == 1000
    first = _graphs(tmp_path)
    index.add(ids[1000:1100], vecs[1000:1100])  # fewer than the tail allowance: exact tail, same graph
    assert index.ann_status()["ann_rows"] == 1000 and _graphs(tmp_path) == first
    for r in (1000, 1050, 1099):  # the new papers are found at once
        assert index.search(vecs[r], 1)[0][0] == ids[r]
    index.add(ids[1100:1400], vecs[1100:1400])  # the tail reaches 300: the graph is extended, the old file goes
    assert index.ann_status()["ann_rows"] == 1400
    assert len(_graphs(tmp_path)) == 1 and _graphs(tmp_path) != first
    assert index.search(vecs[1399], 1)[0][0] == ids[1399]
    replaced = vecs[7] * 0.2 + vecs[8] * 0.8  # a new version of a paper keeps its row, with its new vector
    index.add([ids[7]], replaced)
    assert np.allclose(index.get([ids[7]])[0], replaced / np.linalg.norm(replaced), atol=1e-6)
    assert index.ann_status()["ann_rows"] == 1400 and len(index) == 1400


def test_persisted_and_reloaded_by_another_instance(tmp_path: Path, real: tuple[list[str], np.ndarray]) -> None:
    ids, vecs = real
    writer = _filled(tmp_path, ids, vecs, n=1000)
    reader = _open(tmp_path)  # e.g. the bot starting: the graph is memory-mapped, not rebuilt
    assert reader.ann_status()["ann_file"] == writer.ann_status()["ann_file"]
    q = vecs[N_STORE]
    assert reader.search(q, 10) == writer.search(q, 10)
    writer.add(ids[1000:1400], vecs[1000:1400])  # another writer grows the store and the graph
    assert not any(pid in reader for pid in ids[1000:1400])
    assert reader.reload_if_changed()
    assert reader.ann_status()["ann_file"] == writer.ann_status()["ann_file"]
    assert reader.ann_status()["ann_rows"] == 1400 and len(reader) == 1400
    assert reader.search(q, 10) == writer.search(q, 10)
    assert not reader.reload_if_changed()
    writer.compact()  # compaction keeps rows, so the graph stays valid
    assert reader.reload_if_changed() and reader.ann_status()["ann_rows"] == 1400
    assert reader.search(q, 10) == writer.search(q, 10)


def test_reloaded_by_another_process(tmp_path: Path, real: tuple[list[str], np.ndarray]) -> None:
    ids, vecs = real
    index = _filled(tmp_path, ids, vecs, n=1000)
    np.save(tmp_path.parent / "q.npy", vecs[N_STORE])
    script = (
        "import sys, json, numpy as np\n"
        "from recommender.embedding.vectors import VectorIndex\n"
        f"ix = VectorIndex(sys.argv[1], {KEY!r}, {DIM}, ann_min_vectors=500, ann_tail_max=300)\n"
        "hits = ix.search(np.load(sys.argv[2]), 10)\n"
        "print(json.dumps({'status': ix.ann_status(), 'hits': [h for h, _ in hits]}))\n")
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path), str(tmp_path.parent / "q.npy")],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    got = json.loads(out.strip().splitlines()[-1])
    assert got["status"]["ann_file"] == index.ann_status()["ann_file"] and got["status"]["uses_ann"]
    assert got["hits"] == [h for h, _ in index.search(vecs[N_STORE], 10)]


def test_graph_disagreeing_with_vectors_is_not_used_and_rebuilt(tmp_path: Path,
                                                                real: tuple[list[str], np.ndarray]) -> None:
    ids, vecs = real
    index = _filled(tmp_path, ids, vecs, n=1000)
    index.compact()
    (graph,) = ann.graph_files(tmp_path)
    q = vecs[N_STORE]
    want = _exact(ids[:1000], vecs[:1000], q, 10)
    # a graph over ids the vectors do not have (e.g. a crash lost the part it was extended with)
    rows, digest = ann.parse_name(graph.name) or (0, "")
    graph.rename(tmp_path / ann.file_name(rows, "0" * 16))
    fresh = _open(tmp_path)
    assert not fresh.ann_status()["uses_ann"]
    assert [g for g, _ in fresh.search(q, 10)] == want  # still right: exact until the graph is rebuilt
    assert fresh.ensure_ann()
    assert fresh.ann_status()["uses_ann"] and _graphs(tmp_path) == [ann.file_name(1000, digest)]
    # a damaged file
    (graph,) = ann.graph_files(tmp_path)
    graph.write_bytes(graph.read_bytes()[:1000])
    damaged = _open(tmp_path)
    assert not damaged.ann_status()["uses_ann"]
    assert [g for g, _ in damaged.search(q, 10)] == want
    assert damaged.reload_if_changed()  # the bot's background refresh rebuilds it
    assert damaged.ann_status()["uses_ann"] and damaged.ann_status()["ann_rows"] == 1000
    assert len(set(g for g, _ in damaged.search(q, 10)) & set(want)) >= 9


def test_graph_of_more_rows_than_the_vectors_is_rebuilt(tmp_path: Path, real: tuple[list[str], np.ndarray]) -> None:
    ids, vecs = real
    index = _filled(tmp_path, ids, vecs, n=1000)
    newest = sorted(tmp_path.glob("part-*.arrow"))[-1]
    newest.unlink()  # the vectors lost their last part: the graph covers rows that are gone
    fresh = _open(tmp_path)
    assert len(fresh) == 750 and not fresh.ann_status()["uses_ann"]
    assert fresh.ensure_ann() and fresh.ann_status()["ann_rows"] == 750 and len(_graphs(tmp_path)) == 1
    assert all(h in set(ids[:750]) for h, _ in fresh.search(vecs[900], 10))
    del index


def test_segments_stay_memory_mapped(tmp_path: Path, real: tuple[list[str], np.ndarray]) -> None:
    ids, vecs = real
    index = _filled(tmp_path, ids, vecs, n=1000)
    index.compact()
    snap = _open(tmp_path).snapshot()
    assert len(snap.segments) == 1 and not snap.segments[0].flags.owndata and not snap.segments[0].flags.writeable
    assert np.shares_memory(snap.matrix, snap.segments[0])  # a compacted store's matrix is the mapped file
    assert np.array_equal(snap.get(ids[:1000:7]), vecs[:1000:7])


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    home = tmp_path_factory.getbasetemp() / "ann-model-home"
    return load_embedder(load_settings(env={}, home=home), "torch")  # same vectors as ONNX, no export to wait for


def test_engine_similar_and_whole_store_ranking_through_the_graph(settings: Settings, store: Store,
                                                                  embedder: Embedder) -> None:
    """The Engine on a store over the (lowered) threshold: /similar and ranking over the whole store go through
    the graph and agree with the exact path of the same store."""
    papers = list(iter_file(RECO_PAPERS))
    store.upsert_papers(papers)
    exact = Engine(settings, store, embedder=embedder)
    exact.embed_missing(progress=False)
    assert not exact.index.ann_status()["uses_ann"]
    big = Engine(dataclasses.replace(settings, ann_min_vectors=20), store, embedder=embedder)
    assert len(big.index) == len(papers) and not big.index.ann_status()["uses_ann"]  # opening builds nothing
    assert big.reload_if_changed()  # the background refresh builds the graph of a store over the threshold
    assert big.index.ann_status()["uses_ann"] and big.index.ann_status()["ann_rows"] == len(papers)
    pid = papers[0].id
    assert [r.paper.id for r in big.similar(pid, n=5)] == [r.paper.id for r in exact.similar(pid, n=5)]
    likes = [papers[1].id, papers[2].id]
    got = big.recommend(likes, n=8)
    want = exact.recommend(likes, n=8)
    assert [r.paper.id for r in got] == [r.paper.id for r in want] and not set(likes) & {r.paper.id for r in got}
