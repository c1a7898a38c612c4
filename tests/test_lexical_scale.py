"""The tf-idf index at scale: a big store's vocabulary is fitted on a sample and no rows are kept (rankings
transform the papers they need); small stores are unchanged. Thresholds are lowered so real fixture papers
exercise the big-store path."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recommender.embedding import lexical
from recommender.embedding.embed import paper_text
from recommender.embedding.lexical import LexicalIndex, fit_sample, make_vectorizer

PAPERS = [json.loads(line) for line in
          (Path(__file__).resolve().parent / "fixtures" / "reco" / "papers.jsonl").read_text().splitlines()]
IDS = [p["id"] for p in PAPERS]
TEXTS = [paper_text(p) for p in PAPERS]


def test_small_store_rows_are_the_plain_vectoriser_s(tmp_path: Path) -> None:
    lex = LexicalIndex(tmp_path)
    lex.fit(IDS, TEXTS)
    want = make_vectorizer(len(TEXTS)).fit_transform(TEXTS)
    assert lex.stores_rows and len(lex) == len(IDS)
    assert abs(lex.get(IDS) - want).max() < 1e-6
    assert not hasattr(lex.vectorizer, "stop_words_")  # dropped: not used by transform, huge on a big corpus
    assert abs(lex.transform(TEXTS[:3]) - want[:3]).max() < 1e-6


def test_fit_sample_is_fixed_and_all_of_a_small_store() -> None:
    ids = [f"p{i}" for i in range(1000)]
    assert fit_sample(ids, 2000) == ids
    a, b = fit_sample(ids, 100), fit_sample(ids, 100)
    assert a == b and len(set(a)) == 100 and a == sorted(a, key=ids.index)


def test_big_store_keeps_only_the_vectoriser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lexical, "STORED_ROWS_MAX", 30)
    sample = fit_sample(IDS, 40)
    lex = LexicalIndex(tmp_path)
    lex.fit(sample, [TEXTS[IDS.index(i)] for i in sample], total=len(IDS))
    assert lex.ready and not lex.stores_rows and len(lex) == 0
    assert lex.fitted_on == len(IDS) and not lex.needs_refit(len(IDS)) and lex.needs_refit(2 * len(IDS))
    assert lex.missing(IDS[:3]) == IDS[:3]  # every row is computed when a ranking needs it
    lex.add(IDS[:5], TEXTS[:5])
    assert len(lex) == 0
    lex.save()
    again = LexicalIndex(tmp_path)
    assert again.ready and not again.stores_rows and again.fitted_on == len(IDS)
    rows = again.transform(TEXTS)
    assert rows.shape == (len(IDS), len(again.vectorizer.vocabulary_))
    norms = np.asarray(rows.multiply(rows).sum(axis=1)).ravel()
    assert np.allclose(norms[norms > 0], 1.0, atol=1e-4)
    clusters = [p["cluster"] for p in PAPERS]  # a sample's vocabulary still tells the topics apart
    sims = (rows @ rows.T).toarray()
    np.fill_diagonal(sims, 0)
    qec = [i for i, c in enumerate(clusters) if c == "qec"]
    assert clusters[int(sims[qec[0]].argmax())] == "qec"
