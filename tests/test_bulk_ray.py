"""Bulk embedding and classification on a real local Ray cluster (2 workers) over real demo papers: the vectors
equal the single-process path's (cosine >= 0.999 per paper), also on the GPU's torch code path run on the CPU;
an interrupted run, started again, redoes no finished shard; classification stores what the single-process path
stores; without Ray, ``--engine ray`` exits 2 with the install hint. One Ray start for the whole module."""
from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from recommender.cli.main import main
from recommender.config import Settings, load_settings
from recommender.embedding.bulk import ShardDone, embed_store, plan_shards, ray_session, vectors_dir_for
from recommender.embedding.embed import load_embedder
from recommender.embedding.vectors import VectorIndex, stored_ids
from recommender.engine.core import Engine
from recommender.engine.pipeline import classify_papers
from recommender.models import Paper
from recommender.sources.importer import iter_file
from recommender.store import Store
from tests.conftest import DEMO

PAPERS = 160
SHARD = 20


class Stop(Exception):
    """Raised from the progress callback: an interruption after some shards."""


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[object]:
    """One local Ray with 2 CPUs for the module; the jobs below find it initialised and use it."""
    pytest.importorskip("ray")
    with ray_session(workers=2) as ray:
        yield ray


@pytest.fixture(scope="module")
def papers() -> list[Paper]:
    return list(itertools.islice((p for p in iter_file(DEMO) if p.abstract), PAPERS))


@pytest.fixture(scope="module")
def model_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ONNX export, made once and shared (by a symlink) by every state directory of the module."""
    home = tmp_path_factory.mktemp("model_home")
    load_embedder(load_settings(env={}, home=home), "onnx")
    return home


def make_home(root: Path, model_home: Path, papers: list[Paper]) -> Settings:
    settings = load_settings(env={}, home=root)
    settings.ensure_home()
    (root / "models").symlink_to(model_home / "models", target_is_directory=True)
    with Store(settings.db_path, taxonomy=settings.taxonomy_path) as store:
        store.upsert_papers(papers)
    return settings


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory, model_home: Path, papers: list[Paper]) -> Settings:
    """A state directory embedded and classified by the single-process path (what the bot uses)."""
    settings = make_home(tmp_path_factory.mktemp("single"), model_home, papers)
    with Store(settings.db_path) as store:
        assert Engine(settings, store).embed_missing(progress=False) == len(papers)
        from recommender.classification.classify import get_classifier

        classify_papers(store, get_classifier())
    return settings


@pytest.fixture(scope="module")
def bulk(tmp_path_factory: pytest.TempPathFactory, model_home: Path, papers: list[Paper]) -> Settings:
    return make_home(tmp_path_factory.mktemp("bulk"), model_home, papers)


def vectors_of(settings: Settings, ids: list[str]) -> np.ndarray:
    emb = load_embedder(settings, "onnx")
    return VectorIndex(vectors_dir_for(settings, emb.key), emb.key, emb.dim).get(ids)


def test_plan_shards_streams_the_missing_ids_in_order() -> None:
    pages = iter([["a", "b", "c"], ["d"], [], ["e", "f", "g"]])
    assert plan_shards(pages, {"b", "f"}, shard_size=2) == [["a", "c"], ["d", "e"], ["g"]]
    assert plan_shards([], set()) == []


def test_interrupted_run_resumes_without_redoing_a_shard_and_equals_the_single_process_path(
        ray_cluster: object, bulk: Settings, single: Settings, papers: list[Paper]) -> None:
    ids = [p.id for p in papers]
    first: list[ShardDone] = []

    def stop_after_three(done: ShardDone) -> None:
        first.append(done)
        if len(first) == 3:
            raise Stop

    with pytest.raises(Stop):
        embed_store(bulk, workers=2, shard_size=SHARD, on_shard=stop_after_three)
    key = load_embedder(bulk, "onnx").key
    directory = vectors_dir_for(bulk, key)
    parts_before = {p.name: p.stat().st_mtime_ns for p in directory.glob("part-*.arrow")}
    written = stored_ids(directory)
    assert len(parts_before) == 3 and len(written) == 3 * SHARD == sum(d.papers for d in first)

    second: list[ShardDone] = []
    report = embed_store(bulk, workers=2, shard_size=SHARD, on_shard=second.append)
    assert report.complete and report.workers == 2 and report.backend == "onnx fp32" and report.key == key
    # only what was missing was planned and encoded: no finished shard again
    assert report.shards == len(second) == (PAPERS - 3 * SHARD) // SHARD
    assert report.papers == sum(d.papers for d in second) == PAPERS - len(written)
    assert {p.name: p.stat().st_mtime_ns for p in directory.glob("part-*.arrow")
            if p.name in parts_before} == parts_before
    assert stored_ids(directory) == set(ids)

    ray_vecs, single_vecs = vectors_of(bulk, ids), vectors_of(single, ids)
    cos = np.sum(ray_vecs * single_vecs, axis=1)
    assert cos.min() >= 0.999, (cos.min(), ids[int(cos.argmin())])

    again = embed_store(bulk, workers=2, shard_size=SHARD)
    assert again.shards == again.papers == 0 and again.complete


def test_gpu_code_path_torch_on_cpu_gives_the_same_vectors(ray_cluster: object, tmp_path: Path, model_home: Path,
                                                          papers: list[Paper], single: Settings) -> None:
    few = papers[:40]
    settings = make_home(tmp_path / "torch", model_home, few)
    report = embed_store(settings, workers=2, backend="torch", device="cpu", shard_size=20)
    assert report.complete and report.papers == 40 and report.backend == "torch fp32" and report.device == "cpu"
    ids = [p.id for p in few]
    cos = np.sum(vectors_of(settings, ids) * vectors_of(single, ids), axis=1)
    assert cos.min() >= 0.999, cos.min()
    with pytest.raises(ValueError, match="no GPU"):
        embed_store(settings, workers=2, device="cuda")


def test_classification_on_ray_stores_the_single_process_predictions(
        ray_cluster: object, bulk: Settings, single: Settings, papers: list[Paper]) -> None:
    from recommender.classification.bulk import classify_store

    report = classify_store(bulk, workers=2, shard_size=40)
    assert report.complete and report.papers == PAPERS and report.shards == PAPERS // 40 and report.workers == 2
    ids = [p.id for p in papers]
    with Store(bulk.db_path) as a, Store(single.db_path) as b:
        got, want = a.predictions(ids, report.key), b.predictions(ids, report.key)
        assert a.unpredicted_ids(model=report.key) == []
    assert set(got) == set(want) == set(ids)
    for pid in ids:
        assert [c for c, _ in got[pid]] == [c for c, _ in want[pid]], pid
        assert np.allclose([p for _, p in got[pid]], [p for _, p in want[pid]], atol=1e-4), pid
    again = classify_store(bulk, workers=2, shard_size=40)
    assert again.shards == again.papers == 0


def test_cli_engine_ray_reports_json(ray_cluster: object, tmp_path: Path, model_home: Path, papers: list[Paper],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    settings = make_home(tmp_path / "cli", model_home, papers[:30])
    assert main(["--home", str(settings.home), "embed", "--engine", "ray", "--workers", "2", "--shard-size", "10",
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["papers"] == 30 and data["shards"] == 3 and data["complete"] and data["backend"] == "onnx fp32"
    assert main(["--home", str(settings.home), "classify-store", "--engine", "ray", "--workers", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["papers"] == 30 and data["complete"]


def test_without_ray_engine_ray_exits_2_with_the_install_hint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError, as without the extra
    for argv in (["embed", "--engine", "ray"], ["classify-store", "--engine", "ray"]):
        assert main(["--home", str(home), *argv]) == 2
        err = capsys.readouterr().err
        assert "install arxiv-digest[scale]" in err, err
