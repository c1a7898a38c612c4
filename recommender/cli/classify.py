"""The ``classify`` subcommand: predicted arXiv categories of a stored (or looked-up) paper or of a title; and
``classify-store``: predictions for every stored paper that lacks those of the current model.

An id or URL missing from the store is looked up on the arXiv API and stored first; the shipped (or a given)
classifier predicts its categories and master categories. ``classify-store`` runs in this process or, with
``--engine ray``, as a resumable Ray Data job (:mod:`recommender.classification.bulk`).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from recommender.classification.classify import ClassifierError, get_classifier
from recommender.cli.common import open_store, settings_from
from recommender.config import Settings
from recommender.models import Paper


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("classify", help="predict the arXiv categories of a paper",
                              description="Predict categories for a paper by arXiv id or URL (from the store, "
                                          "or looked up on arXiv and stored) or for a title and abstract.")
    p.add_argument("id", nargs="?", help="arXiv id or abs/pdf URL")
    p.add_argument("--title", help="paper title (instead of an id)")
    p.add_argument("--abstract", default="", help="paper abstract")
    p.add_argument("--model", type=Path, default=None, help="model directory (default: the shipped model)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cli_classify)

    p = subparsers.add_parser("classify-store", help="predict the categories of every stored paper lacking them",
                              description="Store the predicted categories of every paper without predictions of "
                                          "the current classifier model (a new model predicts everything again).")
    p.add_argument("--model", type=Path, default=None, help="model directory (default: the configured/shipped one)")
    p.add_argument("--engine", choices=("single", "ray"), default="single",
                   help="single: this process (default); ray: a Ray Data job in resumable shards "
                        "(needs arxiv-digest[scale])")
    p.add_argument("--address", metavar="ADDR", help="with --engine ray: a running Ray cluster (default: local Ray)")
    p.add_argument("--workers", type=int, metavar="N", help="with --engine ray: workers (default: 2 locally)")
    p.add_argument("--shard-size", type=int, default=2000, metavar="N",
                   help="with --engine ray: papers per shard, the unit of resumption (default 2000)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cli_classify_store)


def _cli_classify_store(args: argparse.Namespace) -> int:
    import sys
    import time

    from recommender.classification.bulk import classifier_dir, classify_store
    from recommender.embedding.bulk import RayUnavailable

    settings = settings_from(args)
    settings.ensure_home()
    if args.engine == "ray":
        try:
            report = classify_store(settings, model_dir=args.model, address=args.address, workers=args.workers,
                                    shard_size=args.shard_size)
        except RayUnavailable as exc:
            print(f"arxiv-digest classify-store: {exc}", file=sys.stderr)
            return 2
        data = report.to_dict()
    else:
        from recommender.engine.pipeline import classify_papers, model_name

        start = time.perf_counter()
        classifier = get_classifier(classifier_dir(settings, args.model))
        with open_store(settings) as store:
            n = classify_papers(store, classifier)
        secs = time.perf_counter() - start
        data = {"job": "classify", "key": model_name(classifier), "papers": n, "seconds": round(secs, 2),
                "papers_per_s": round(n / secs, 1) if secs > 0 else 0.0, "workers": 1}
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(f"classified {data['papers']} papers in {data['seconds']}s ({data['papers_per_s']} papers/s) with "
              f"{data['key']} on {data['workers']} worker(s)")
    return 0


def _paper_for(raw_id: str, settings: Settings) -> Paper | None:
    """The stored paper for an id or URL, looked up on arXiv (and stored) when the store lacks it.

    Raises ``InvalidArxivId`` for text that is not an id and ``ArxivError`` when arXiv cannot be reached;
    the product CLI reports both in one line."""
    from recommender.engine.pipeline import lookup_papers
    from recommender.ids import parse_arxiv_id
    from recommender.sources.arxiv import ArxivClient

    pid = parse_arxiv_id(raw_id.strip()).id
    clients: list[ArxivClient] = []

    def client() -> ArxivClient:
        clients.append(ArxivClient(settings))
        return clients[-1]

    with open_store(settings) as store:
        try:
            paper = lookup_papers(store, [pid], client).get(pid)
        finally:
            for c in clients:
                c.close()
    return paper


def _cli_classify(args: argparse.Namespace) -> int:
    import sys

    if bool(args.id) == bool(args.title):
        print("give either an arXiv id or --title (and --abstract)", file=sys.stderr)
        return 2
    title, abstract, actual = args.title or "", args.abstract or "", None
    if args.id:
        paper = _paper_for(args.id, settings_from(args))
        if paper is None:
            print(f"{args.id}: no such paper on arXiv", file=sys.stderr)
            return 1
        title, abstract, actual = paper.title, paper.abstract or "", list(paper.categories)
    try:
        pred = get_classifier(args.model).predict(title, abstract)
    except ClassifierError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.json:
        out = pred.to_dict()
        if actual is not None:
            out["actual_categories"] = actual
        print(json.dumps(out, indent=2))
        return 0
    for code, p in pred.categories:
        print(f"{code:20s} {p:6.1%}  {pred.names.get(code, '')}")
    print("master: " + ", ".join(f"{g} {p:.0%}" for g, p in pred.masters))
    if actual is not None:
        print("actual: " + " ".join(actual))
    if pred.unknown_ratio > 0.5:
        print("note: most words are unknown to the model (not an English arXiv abstract?)")
    return 0
