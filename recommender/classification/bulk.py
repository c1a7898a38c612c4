"""Whole-store classification on Ray Data (``arxiv-digest classify-store --engine ray``).

The papers without predictions of the current classifier model are cut into shards from what is missing now
(so a rerun redoes no finished shard); a read task on the driver's node turns a shard's ids into titles and
abstracts, and ``map_batches`` with an actor class (:class:`ClassifyWorker`) that loads the classifier once per
worker predicts them; the driver stores each finished shard's predictions in one transaction
(``Store.save_predictions``). The classifier runs on CPU (a small recurrent network: the GPU buys little).
The Ray machinery (session, shard planning, the two-stage pipeline) is :mod:`recommender.embedding.bulk`'s.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recommender.config import Settings
from recommender.embedding.bulk import SHARD_SIZE, BulkReport, ShardDone, counting, plan_shards, ray_session, run_shards
from recommender.store import Store

log = logging.getLogger(__name__)

PREDICT_BATCH = 256


def classifier_dir(settings: Settings, model_dir: Path | None = None) -> Path | None:
    """The model directory a job uses: the given one, else the setting, else None (the shipped model)."""
    if model_dir is not None:
        return Path(model_dir)
    return Path(settings.classifier_dir) if settings.classifier_dir else None


def read_papers(batch: dict[str, np.ndarray], db_path: str) -> dict[str, np.ndarray]:
    """Read stage: each shard's ids -> [[id, title, abstract], ...] of the stored papers with some text."""
    out: list[str] = []
    with Store(db_path) as store:
        for ids_json in batch["ids"]:
            ids = json.loads(ids_json)
            papers = store.get_papers(ids)
            out.append(json.dumps([[i, papers[i].title, papers[i].abstract or ""] for i in ids
                                   if i in papers and (papers[i].title + (papers[i].abstract or "")).strip()]))
    return {"shard": batch["shard"], "papers": np.array(out, dtype=object)}


class ClassifyWorker:
    """Ray Data actor: loads the classifier once, then predicts a shard of papers per call."""

    def __init__(self, model_dir: str | None, threads: int = 1) -> None:
        import torch

        from recommender.classification.classify import get_classifier

        torch.set_num_threads(threads)
        self.classifier = get_classifier(Path(model_dir) if model_dir else None)
        self.pid = os.getpid()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results: list[str] = []
        for papers_json in batch["papers"]:
            papers = json.loads(papers_json)
            preds = self.classifier.predict_batch([(t, a) for _, t, a in papers], batch_size=PREDICT_BATCH) \
                if papers else []
            results.append(json.dumps([[p[0], [[c, float(x)] for c, x in pred.categories]]
                                       for p, pred in zip(papers, preds, strict=True)]))
        return {"shard": batch["shard"], "predictions": np.array(results, dtype=object),
                "worker": np.full(len(results), self.pid)}


def _unpredicted_pages(store: Store, model: str) -> Iterator[list[str]]:
    """The ids without predictions of ``model``, streamed a page of the store at a time."""
    for page in store.iter_paper_ids():
        have = store.predictions(page, model)
        yield [i for i in page if i not in have]


def classify_store(settings: Settings, *, model_dir: Path | None = None, address: str | None = None,
                   workers: int | None = None, shard_size: int = SHARD_SIZE,
                   on_plan: Callable[[int, int], None] | None = None,
                   on_shard: Callable[[ShardDone], None] | None = None) -> BulkReport:
    """Predict and store the categories of every paper lacking predictions of the classifier's model, on Ray
    Data; the arguments are those of :func:`recommender.embedding.bulk.embed_store`. Raises
    :class:`~recommender.embedding.bulk.RayUnavailable` without Ray."""
    from recommender.classification.classify import get_classifier
    from recommender.engine.pipeline import model_name

    start = time.perf_counter()
    directory = classifier_dir(settings, model_dir)
    with ray_session(address, workers or (None if address else 2)) as ray:
        model = model_name(get_classifier(directory))  # also checks the model directory before any worker starts
        with Store(settings.db_path, taxonomy=settings.taxonomy_path) as store:
            shards = plan_shards(_unpredicted_pages(store, model), frozenset(), shard_size)
            total = sum(len(s) for s in shards)
            n_workers = max(1, int(workers or ray.cluster_resources().get("CPU", 1)))
            threads = 1 if address else max(1, int(ray.cluster_resources().get("CPU", 1)) // n_workers)
            log.info("bulk classification of %d papers in %d shards with %s on %d worker(s)", total, len(shards),
                     model, n_workers)
            if on_plan is not None:
                on_plan(len(shards), total)
            report = BulkReport("classify", model, "sharnn", "cpu", n_workers, len(shards), 0, 0, 0.0, [])
            if not shards:
                report.seconds = time.perf_counter() - start
                return report

            def write(row: dict[str, Any]) -> int:
                rows: Sequence[tuple[str, list[tuple[str, float]]]] = [
                    (pid, [(c, float(p)) for c, p in cats]) for pid, cats in json.loads(row["predictions"])]
                return store.save_predictions(rows, model)

            try:
                run_shards(ray, shards, read_papers, (str(settings.db_path),), ClassifyWorker,
                           (str(directory) if directory else None, threads), n_workers, 0.0, write,
                           counting(report, on_shard))
            finally:
                report.seconds = time.perf_counter() - start
    return report
