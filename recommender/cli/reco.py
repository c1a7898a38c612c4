"""Recommender subcommands of ``arxiv-digest``: ``embed``, ``similar``, ``recommend``.

:func:`register` adds them to the main parser (``recommender.cli.main`` calls it). Each prints a readable list or,
with ``--json``, the data; errors a user can fix (bad id, unknown paper) are raised as the exceptions the main
program reports in one line.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from recommender.cli.common import open_store, settings_from
from recommender.engine.core import Engine, Recommendation


@contextlib.contextmanager
def _engine(args: argparse.Namespace) -> Iterator[Engine]:
    """An engine over the store of the command line's settings, closing the store afterwards."""
    settings = settings_from(args)
    with open_store(settings) as store:
        yield Engine(settings, store)


def _rec_dict(r: Recommendation) -> dict[str, Any]:
    return {"id": r.paper.id, "title": r.paper.title, "score": round(r.score, 4),
            "similarity": None if r.similarity is None else round(r.similarity, 4), "why": r.why,
            "nearest_id": r.nearest_id, "nearest_cos": None if r.nearest_cos is None else round(r.nearest_cos, 4),
            "categories": r.paper.categories, "url": r.paper.url}


def _print_recs(args: argparse.Namespace, recs: list[Recommendation]) -> int:
    if getattr(args, "json", False):
        print(json.dumps([_rec_dict(r) for r in recs], indent=2, ensure_ascii=False))
        return 0
    if not recs:
        print("nothing scored high enough")
    for k, r in enumerate(recs, 1):
        title = " ".join(r.paper.title.split())
        print(f"{k:2d}. {r.score:.3f}  {r.paper.id:<16} {title[:90]}")
        print(f"    {r.why}")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    if args.engine == "ray":
        return _embed_on_ray(args)
    with _engine(args) as eng:
        t = time.perf_counter()
        seeded = eng.seed_vectors(Path(args.seed)) if args.seed else 0
        n = eng.embed_missing(progress=not args.json)
        secs = time.perf_counter() - t
        if args.export:
            eng.index.export(Path(args.export))
        data = {"embedded": n, "seeded": seeded, "seconds": round(secs, 1), "vectors": len(eng.index),
                "model": eng.index.key, "backend": eng.embedder.backend if eng.embedder else None}
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        rate = f" ({n / secs:.1f} papers/s)" if n and secs > 0 else ""
        print(f"embedded {n} papers in {secs:.1f}s{rate}; {data['vectors']} vectors of {data['model']}")
    return 0


def _embed_on_ray(args: argparse.Namespace) -> int:
    """``embed --engine ray``: the bulk job on Ray Data, then the tf-idf index brought up to date."""
    import sys

    from recommender.embedding.bulk import RayUnavailable, ShardDone, embed_store

    if args.seed or args.export:
        raise ValueError("--seed and --export go with the single-process engine")
    settings = settings_from(args)
    settings.ensure_home()
    bar: Any = None

    def planned(shards: int, papers: int) -> None:
        nonlocal bar
        if not args.json and papers:
            from tqdm import tqdm

            bar = tqdm(total=papers, desc=f"embedding ({shards} shards)", unit="paper")

    def shard_done(done: ShardDone) -> None:
        if bar is not None:
            bar.update(done.papers)

    try:
        report = embed_store(settings, address=args.address, workers=args.workers, backend=args.backend,
                             device=args.device, shard_size=args.shard_size, on_plan=planned, on_shard=shard_done)
    except RayUnavailable as exc:
        print(f"arxiv-digest embed: {exc}", file=sys.stderr)
        return 2
    finally:
        if bar is not None:
            bar.close()
    with _engine(args) as eng:
        eng.sync_lexical(progress=not args.json)
    data = report.to_dict()
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(f"embedded {report.papers} papers in {report.seconds:.1f}s ({report.papers_per_s:.1f} papers/s) on "
              f"{report.workers} Ray worker(s), {report.backend} on {report.device}; vectors of {report.key}")
    return 0


def cmd_similar(args: argparse.Namespace) -> int:
    with _engine(args) as eng:
        recs = eng.similar(" ".join(args.query), args.n)
    return _print_recs(args, recs)


def cmd_recommend(args: argparse.Namespace) -> int:
    if not args.like and not args.interest:
        raise ValueError("give at least one --like ID or an --interest TEXT")
    candidates: list[str] | None = None
    if args.candidates:
        path = Path(args.candidates)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        candidates = [t for line in path.read_text().splitlines() for t in line.split() if not t.startswith("#")]
    with _engine(args) as eng:
        if args.day:
            candidates = eng.store.announced_ids(args.day)
            if not candidates:
                raise LookupError(f"no papers announced on {args.day} in the store")
        recs = eng.recommend(args.like or [], args.dislike or [], args.interest or "", candidates, args.n,
                             args.min_score)
    return _print_recs(args, recs)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("embed", help="embed every stored paper that has no vector for the current model")
    p.add_argument("--seed", metavar="FILE", help="first take vectors from a file written by --export")
    p.add_argument("--export", metavar="FILE", help="then write all vectors to this Arrow file (e.g. for the demo)")
    p.add_argument("--engine", choices=("single", "ray"), default="single",
                   help="single: this process (default, for small jobs); ray: a Ray Data job in resumable shards "
                        "(needs arxiv-digest[scale])")
    p.add_argument("--address", metavar="ADDR", help="with --engine ray: a running Ray cluster (default: local Ray)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="with --engine ray: model workers (default: 2 locally, the cluster's GPUs or CPUs)")
    p.add_argument("--backend", choices=("auto", "onnx", "onnx-int8", "torch"), default="auto",
                   help="with --engine ray: auto is torch fp16 on GPUs, else ONNX fp32 (the same vectors)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="with --engine ray and torch: cuda (fp16) or cpu (fp32)")
    p.add_argument("--shard-size", type=int, default=2000, metavar="N",
                   help="with --engine ray: papers per shard, the unit of resumption (default 2000)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("similar", help="papers nearest to an arXiv id/link or to a text")
    p.add_argument("query", nargs="+", metavar="ID|TEXT")
    p.add_argument("-n", type=int, default=10, help="how many (default 10)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_similar)

    p = sub.add_parser("recommend", help="rank papers for an ad-hoc profile of likes, dislikes and interests")
    p.add_argument("--like", nargs="+", metavar="ID", help="liked papers (ids or links)")
    p.add_argument("--dislike", nargs="+", metavar="ID", help="disliked papers")
    p.add_argument("--interest", metavar="TEXT", help="free-text interest, e.g. 'graph neural networks'")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--candidates", metavar="FILE", help="file of candidate ids (default: every stored paper)")
    group.add_argument("--day", metavar="YYYY-MM-DD", help="the papers announced that day")
    p.add_argument("-n", type=int, default=10)
    p.add_argument("--min-score", type=float, default=None, help="drop papers scoring below this cosine")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_recommend)
