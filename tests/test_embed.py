"""The real MiniLM model on real abstracts: relatedness, normalisation, ONNX agreement with torch."""
from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

from recommender.config import load_settings
from recommender.embedding.embed import Embedder, load_embedder, onnx_dir, paper_text

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "reco" / "papers.jsonl"


def reco_papers() -> list[dict]:
    return [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def model_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One state directory per test session for the exported ONNX model (exported once, reused)."""
    return tmp_path_factory.getbasetemp() / "reco-model-home"


@pytest.fixture(scope="module")
def onnx_embedder(model_home: Path) -> Embedder:
    return load_embedder(load_settings(env={}, home=model_home), "onnx-int8")


def test_paper_text_is_title_first_and_whitespace_normalised() -> None:
    p = {"title": "A  Title\n over lines", "abstract": "  First line.\n\n  Second   line. "}
    assert paper_text(p) == "A Title over lines. First line. Second line."
    assert paper_text({"title": "Why?", "abstract": "Because."}) == "Why? Because."
    assert paper_text(p, title_first=False).endswith("A Title over lines.")


def test_vectors_are_unit_float32_and_related_papers_score_higher(onnx_embedder: Embedder) -> None:
    papers = reco_papers()
    vecs = onnx_embedder.encode([paper_text(p) for p in papers])
    assert vecs.dtype == np.float32 and vecs.shape == (len(papers), 384)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    sims = vecs @ vecs.T
    clusters = [p["cluster"] for p in papers]
    same: list[float] = []
    diff: list[float] = []
    for i, j in combinations(range(len(papers)), 2):
        if clusters[i] == "other" or clusters[j] == "other":
            continue
        (same if clusters[i] == clusters[j] else diff).append(sims[i, j])
    assert np.mean(same) > np.mean(diff) + 0.2
    # each clustered paper's nearest neighbour is from its own cluster, for most papers
    np.fill_diagonal(sims, -1)
    hits = [clusters[int(sims[i].argmax())] == clusters[i] for i in range(len(papers)) if clusters[i] != "other"]
    assert np.mean(hits) >= 0.85


def test_onnx_agrees_with_torch(model_home: Path, onnx_embedder: Embedder) -> None:
    settings = load_settings(env={}, home=model_home)
    texts = [paper_text(p) for p in reco_papers()[:16]] + ["graph neural networks for molecules", ""]
    torch_vecs = load_embedder(settings, "torch").encode(texts)
    fp32 = load_embedder(settings, "onnx").encode(texts)
    int8 = onnx_embedder.encode(texts)
    assert float(np.min((torch_vecs * fp32).sum(1))) > 0.9999
    assert float(np.mean((torch_vecs * int8).sum(1))) >= 0.99
    assert (onnx_dir(settings) / "model_int8.onnx").is_file()
    # fp32 ONNX reproduces torch, so they share vectors; int8 vectors are kept apart
    assert load_embedder(settings, "onnx").key == load_embedder(settings, "torch").key != onnx_embedder.key


def test_auto_backend_on_a_cpu_shares_the_vector_space_of_torch(model_home: Path) -> None:
    """Vectors embedded in bulk by torch (on a GPU) serve a bot on a CPU: the default CPU backend writes and
    reads the same key as torch."""
    settings = load_settings(env={}, home=model_home)
    auto = load_embedder(settings)
    assert auto.backend == "onnx" and auto.key == load_embedder(settings, "torch").key
    texts = ["attention is all you need", "a survey of graph neural networks for molecules"]
    one_by_one = np.vstack([auto.encode_one(t) for t in texts])
    assert float(np.min((one_by_one * auto.encode(texts)).sum(1))) > 0.9999  # batch-independent


def test_empty_input_and_bad_backend(onnx_embedder: Embedder, model_home: Path) -> None:
    assert onnx_embedder.encode([]).shape == (0, 384)
    with pytest.raises(ValueError, match="embed_backend"):
        load_embedder(load_settings(env={}, home=model_home), "tpu")


def test_bulk_encoding_gives_the_query_path_vectors(onnx_embedder: Embedder) -> None:
    """Bulk work runs on its own session with fewer cores; the vectors must be the ones queries compare to."""
    texts = [paper_text(p) for p in reco_papers()[:12]]
    bulk = onnx_embedder.encode_bulk(texts, batch_size=5)
    query_path = onnx_embedder.encode(texts, batch_size=5)
    assert bulk.shape == query_path.shape == (12, onnx_embedder.dim)
    assert float((bulk * query_path).sum(axis=1).min()) > 0.9999
