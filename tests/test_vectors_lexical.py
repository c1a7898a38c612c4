"""The tf-idf lexical index: fit, persistence, incremental adds, refit policy, tiny stores."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from recommender.embedding.embed import paper_text
from recommender.embedding.lexical import LexicalIndex

PAPERS = [json.loads(line) for line in
          (Path(__file__).resolve().parent / "fixtures" / "reco" / "papers.jsonl").read_text().splitlines()]


def test_fit_save_load_add_and_similarity(tmp_path: Path) -> None:
    ids = [p["id"] for p in PAPERS]
    texts = [paper_text(p) for p in PAPERS]
    lex = LexicalIndex(tmp_path)
    assert not lex.ready and lex.needs_refit(10)
    lex.fit(ids[:40], texts[:40])
    lex.save()
    again = LexicalIndex(tmp_path)
    assert again.ready and len(again) == 40 and again.missing(ids) == ids[40:]
    again.add(ids[40:], texts[40:])
    rows = again.get(ids)
    assert rows.shape[0] == 48
    assert np.allclose(np.asarray(rows.multiply(rows).sum(axis=1)).ravel()[:40], 1.0, atol=1e-4)
    sims = (rows @ rows.T).toarray()
    np.fill_diagonal(sims, 0)
    clusters = [p["cluster"] for p in PAPERS]
    qec = [i for i, c in enumerate(clusters) if c == "qec"]
    assert clusters[int(sims[qec[0]].argmax())] == "qec"
    assert not again.needs_refit(48) and again.needs_refit(60)  # refit once grown by half


def test_damaged_files_mean_rebuild_not_crash(tmp_path: Path) -> None:
    lex = LexicalIndex(tmp_path)
    lex.fit(["a", "b"], ["quantum error correction codes", "galaxy formation in clusters"])
    lex.save()
    (tmp_path / "ids.json").write_text("[not json")
    assert not LexicalIndex(tmp_path).ready


def test_nothing_to_fit_leaves_lexical_off(tmp_path: Path) -> None:
    lex = LexicalIndex(tmp_path)
    lex.fit(["a"], ["the and of"])  # only stop words
    assert not lex.ready
