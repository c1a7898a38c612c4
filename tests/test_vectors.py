"""Vector index: exact top-k against a brute-force reference, persistence, crash-safety, model separation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recommender.embedding.vectors import KeyMismatch, VectorIndex, top_k


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_top_k_is_exact_against_brute_force(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vecs = _unit(rng, 3000, 32)
    ids = [f"p{i}" for i in range(3000)]
    index = VectorIndex(tmp_path, "m|32", 32)
    index.add(ids[:1000], vecs[:1000])
    index.add(ids[1000:], vecs[1000:])
    queries = _unit(rng, 20, 32)
    results = index.search_many(queries, k=15, exclude=[{"p1", "p2"}] * 20)
    for q, got in zip(queries, results, strict=True):
        s = vecs @ q
        s[[1, 2]] = -np.inf
        ref = np.argsort(-s)[:15]
        assert [g for g, _ in got] == [ids[i] for i in ref]
        assert np.allclose([v for _, v in got], s[ref], atol=1e-5)


def test_search_restricted_to_candidates_and_exclusions(tmp_path: Path) -> None:
    index = VectorIndex(tmp_path, "m|4", 4)
    index.add(["a", "b", "c", "d"], np.eye(4, dtype=np.float32))
    q = np.array([1, 0.5, 0.2, 0], dtype=np.float32)
    assert [i for i, _ in index.search(q, 2)] == ["a", "b"]
    assert [i for i, _ in index.search(q, 2, exclude={"a"})] == ["b", "c"]
    assert [i for i, _ in index.search(q, 5, candidates=["c", "d", "zz"])] == ["c", "d"]
    assert top_k(np.array([0.1, 0.9]), ["x", "y"], 10) == [("y", pytest.approx(0.9)), ("x", pytest.approx(0.1))]


def test_persisted_reloaded_and_later_part_wins(tmp_path: Path) -> None:
    index = VectorIndex(tmp_path, "m|4", 4)
    index.add(["a", "b"], np.eye(4, dtype=np.float32)[:2])
    index.add(["b"], np.array([[0, 0, 3, 0]], dtype=np.float32))  # re-embedded; normalised on write
    again = VectorIndex(tmp_path, "m|4", 4)
    assert again.ids == ["a", "b"]
    assert np.allclose(again.get(["b"]), [[0, 0, 1, 0]])
    again.compact()
    assert len(list(tmp_path.glob("part-*.arrow"))) == 1
    third = VectorIndex(tmp_path, "m|4", 4)
    assert np.allclose(third.get(["a", "b"]), [[1, 0, 0, 0], [0, 0, 1, 0]])
    assert third.missing(["a", "z"]) == ["z"]


def test_interrupted_write_leaves_no_trace(tmp_path: Path) -> None:
    index = VectorIndex(tmp_path, "m|4", 4)
    index.add(["a"], np.eye(4, dtype=np.float32)[:1])
    (tmp_path / "part-99999999999999999999.arrow.tmp").write_bytes(b"half a file")
    again = VectorIndex(tmp_path, "m|4", 4)
    assert again.ids == ["a"]
    assert not list(tmp_path.glob("*.tmp"))


def test_other_model_directory_is_refused(tmp_path: Path) -> None:
    VectorIndex(tmp_path, "model-a|4", 4).add(["a"], np.eye(4, dtype=np.float32)[:1])
    with pytest.raises(KeyMismatch):
        VectorIndex(tmp_path, "model-b|4", 4)


def test_export_and_import_between_indexes(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    vecs = _unit(rng, 10, 8)
    src = VectorIndex(tmp_path / "a", "m|8", 8)
    src.add([f"p{i}" for i in range(10)], vecs)
    assert src.export(tmp_path / "ship.arrow") == 10
    dst = VectorIndex(tmp_path / "b", "m|8", 8)
    dst.add(["p0"], vecs[:1])
    assert dst.import_file(tmp_path / "ship.arrow", only=[f"p{i}" for i in range(5)]) == 4
    assert np.allclose(dst.get(["p3"]), vecs[3:4]) and "p7" not in dst
    other = VectorIndex(tmp_path / "c", "another-model|8", 8)
    assert other.import_file(tmp_path / "ship.arrow") == 0


def test_a_snapshot_taken_by_a_reader_never_changes(tmp_path: Path) -> None:
    index = VectorIndex(tmp_path, "m|4", 4)
    index.add(["a", "b"], np.eye(4, dtype=np.float32)[:2])
    held = index.snapshot()
    index.add(["a", "c"], np.eye(4, dtype=np.float32)[2:])  # replaces a, adds c
    assert held.ids == ["a", "b"] and np.allclose(held.get(["a"]), [[1, 0, 0, 0]])
    assert not held.matrix.flags.writeable
    assert index.ids == ["a", "b", "c"] and np.allclose(index.get(["a"]), [[0, 0, 1, 0]])
    assert [i for i, _ in held.search_many(np.eye(4, dtype=np.float32)[:1], k=1)[0]] == ["a"]
