"""The evaluation harness: metrics against hand-computed values, the paired bootstrap, and the proxies built
from the real corpus (skipped where ../shared/data is absent)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from training.recommender_eval import EvalConfig, build_eval_data, metrics_for, paired_bootstrap


def test_metrics_by_hand() -> None:
    m = metrics_for(["a", "x", "b", "y"], {"a", "b"}, k=10)
    assert m["recall@10"] == 1.0 and m["mrr"] == 1.0
    assert m["ndcg@10"] == pytest.approx((1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)))
    m = metrics_for(["x", "y", "z"] + ["q"] * 10 + ["a"], {"a"}, k=10)
    assert m["recall@10"] == 0.0 and m["ndcg@10"] == 0.0 and m["mrr"] == pytest.approx(1 / 14)


def test_paired_bootstrap_brackets_the_mean_difference() -> None:
    out = paired_bootstrap([0.5, 0.6, 0.7, 0.8] * 10, [0.4, 0.6, 0.5, 0.8] * 10)
    assert out["mean_diff"] == pytest.approx(0.075)
    assert out["ci95_low"] <= 0.075 <= out["ci95_high"] and out["ci95_low"] > 0


@pytest.mark.corpus
def test_proxies_from_the_real_corpus(shared_corpus: Path) -> None:
    data = build_eval_data(EvalConfig(corpus=shared_corpus, authors=30, categories=4, background=50))
    assert len(data.days) == 8 and all(len(v) >= 200 for v in data.days.values())
    kinds = {q.kind for q in data.queries}
    assert kinds == {"author", "category", "mixed"}
    for q in data.queries:
        assert q.day in data.days and set(q.relevant) <= set(data.days[q.day])
        assert all(data.papers[x]["announced"] < data.cut for x in q.likes)
        if q.kind == "author":
            assert all(q.name in data.papers[x]["authors"] for x in q.likes + q.relevant)
    again = build_eval_data(EvalConfig(corpus=shared_corpus, authors=30, categories=4, background=50))
    assert [(q.kind, q.name, q.day) for q in again.queries] == [(q.kind, q.name, q.day) for q in data.queries]
