"""Command-line steps of the classifier pipeline, registered into ``arxiv-digest`` via an entry point.

``register(subparsers)`` adds ``train`` (end to end, resumable: rerun the same command after an interruption)
``evaluate-classifier`` (sample-F1 of the shipped or a given model on any corpus-format JSONL) and
``evaluate-recommender`` (the offline recommender evaluation on the real corpus).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

from recommender.cli.common import settings_from
from training.config import DEFAULT_RUN_DIR, TrainConfig

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    t = subparsers.add_parser("train", help="train the category classifier end to end (resumable)",
                              description="Corpus -> splits -> phrases -> fastText -> SHA-RNN -> evaluation -> "
                                          "model files. Rerun the same command to resume an interrupted run.")
    t.add_argument("--data", type=Path, default=None,
                   help="corpus JSONL(.gz) in the corpus format (default: the papers in the store)")
    t.add_argument("--out", type=Path, default=DEFAULT_RUN_DIR, help=f"run directory (default {DEFAULT_RUN_DIR})")
    t.add_argument("--split", choices=["temporal", "random", "both", "all"], default="both",
                   help="which split's model to train (default both); 'all' trains on every paper, no test part "
                        "(the shipped model: epochs and threshold fixed by a selection run on the temporal split)")
    t.add_argument("--vectors-from", type=Path, default=None,
                   help="reuse this model directory's vocabulary and word vectors instead of training fastText")
    t.add_argument("--threshold", type=float, default=None,
                   help="with --split all: the threshold to ship (from the selection run)")
    t.add_argument("--config", type=Path, help="JSON file overriding TrainConfig fields")
    t.add_argument("--epochs", type=int)
    t.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    t.add_argument("--max-train-papers", type=int)
    t.add_argument("--max-minutes", type=float, help="stop training after this long (resume later)")
    t.add_argument("--lr", type=float)
    t.add_argument("--init-from", type=Path, help="start from these weights (e.g. <run>/temporal/best.pt)")
    t.add_argument("--name", help="subdirectory of the run for this model (one split only; default: the split)")
    t.add_argument("--prepare-only", action="store_true", help="stop after vectors and the token cache")
    t.add_argument("--no-ship", action="store_true", help="do not copy the temporal model to data/models/")
    t.set_defaults(func=cmd_train)

    e = subparsers.add_parser("evaluate-classifier", help="score a classifier on a corpus-format JSONL")
    e.add_argument("file", type=Path, help="JSONL(.gz) with title, abstract, categories")
    e.add_argument("--model", type=Path, default=None, help="model directory (default: the shipped model)")
    e.add_argument("--json", action="store_true", help="print the full report as JSON")
    e.set_defaults(func=cmd_evaluate)

    p = subparsers.add_parser("evaluate-recommender",
                       help="author- and category-proxy evaluation on the real corpus (see docs/recommender_eval.md)")
    from training.recommender_eval import add_arguments

    add_arguments(p)
    p.set_defaults(func=cmd_evaluate_recommender)


def _config(args: argparse.Namespace) -> TrainConfig:
    cfg = TrainConfig()
    if args.config:
        cfg = TrainConfig.from_dict({**cfg.to_dict(), **json.loads(args.config.read_text())})
    for name in ("epochs", "threads", "max_train_papers", "max_minutes", "lr", "threshold"):
        if getattr(args, name) is not None:
            cfg = replace(cfg, **{name: getattr(args, name)})
    if args.init_from is not None:
        cfg = replace(cfg, init_from=str(args.init_from.resolve()))
    return cfg


def cmd_train(args: argparse.Namespace) -> int:
    from training.data import Labels
    from training.pipeline import load_corpus, run
    from training.prepare import prepare

    cfg = _config(args)
    # without --data, the papers of the store of --home (or $ARXIV_DIGEST_HOME)
    store_path = None if args.data is not None else settings_from(args).db_path
    try:
        if args.prepare_only:
            labels = Labels.from_taxonomy()
            prepare(load_corpus(args.data, labels, store_path), labels, cfg, args.out)
            return 0
        splits = ("temporal", "random") if args.split == "both" else (args.split,)
        if args.name and len(splits) != 1:
            raise ValueError("--name needs a single --split")
        results = run(args.data, args.out, cfg, splits, ship_model=not args.no_ship, name=args.name,
                      store_path=store_path, vectors_from=args.vectors_from)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for split, r in results.items():
        if "test" not in r:
            print(f"{split}: trained on {r['train']['train_papers']} papers, no test part ({r['train']['status']})")
            continue
        print(f"{split}: test category sample-F1 {r['test']['category_sample_f1']:.3f}, "
              f"master sample-F1 {r['test']['master_sample_f1']:.3f} ({r['train']['status']})")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import evaluate_file

    try:
        report = evaluate_file(args.file, args.model)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{report['papers']} papers, threshold {report['threshold']:.2f}")
        for k in ("category_sample_f1", "master_sample_f1", "category_micro_f1", "category_macro_f1"):
            print(f"  {k:22s} {report[k]:.4f}")
    return 0


def cmd_evaluate_recommender(args: argparse.Namespace) -> int:
    from training.recommender_eval import command

    return command(args)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m training.cli``) for when the product CLI is not installed."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m training.cli")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
