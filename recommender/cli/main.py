"""The ``arxiv-digest`` command line: one subcommand per job, each with ``--help`` and ``--json`` for data.

Foundation commands live here (``import``, ``ingest``, ``fetch``, ``stats``). Other parts of the library add
theirs through ``register(subparsers)`` functions; ``training`` and ``bot`` add theirs through the
``arxiv_digest.cli`` entry-point group, so this package never imports them; all of them take their settings
and store from :mod:`recommender.cli.common`. Errors the user can fix are
printed as one line on stderr with exit status 2; nothing prints a traceback for bad input.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path

from recommender.cli import classify as classify_cli
from recommender.cli import harvest as harvest_cli
from recommender.cli import reco as reco_cli
from recommender.cli.common import emit, open_store, settings_from
from recommender.config import ConfigError
from recommender.engine.pipeline import ensure_demo_corpus, run_ingest, validate_categories
from recommender.ids import InvalidArxivId, parse_arxiv_id
from recommender.sources.arxiv import ArxivClient, ArxivError
from recommender.sources.importer import ImportFileError, import_file
from recommender.store import UnknownCategory

log = logging.getLogger("arxiv_digest")

# errors a user can fix: reported in one line, exit status 2
USER_ERRORS: tuple[type[BaseException], ...] = (
    ArxivError, ConfigError, InvalidArxivId, ImportFileError, UnknownCategory, FileNotFoundError, LookupError,
    ValueError,
)


def _split_categories(value: str | None) -> list[str]:
    return [c for c in (value or "").replace(",", " ").split() if c]


# -- commands ---------------------------------------------------------------------------------------------
def cmd_import(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    with open_store(settings) as store:
        cats = set(validate_categories(store, _split_categories(args.categories))) or None
        report, stats = import_file(store, Path(args.file), categories=cats, progress=not args.json)
        data = {**report.to_dict(), **stats}
        text = (f"read {report.read} records: {stats['inserted']} new, {stats['updated']} updated, "
                f"{stats['unchanged']} unchanged, {report.skipped_category} outside the categories, "
                f"{report.bad_lines} bad lines skipped")
        if report.bad_examples:
            text += "\n  " + "\n  ".join(report.bad_examples)
        emit(args, data, text)
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    report = run_ingest(settings, _split_categories(args.categories) or None, models=not args.no_models)
    if report.announced is None:
        text = f"no announcement in today's feed for {'+'.join(report.categories)}"
    else:
        text = (f"{report.announced}: {report.new} new, {report.cross} cross-listed, {report.replaced} replaced; "
                f"stored {report.inserted} new and updated {report.updated}; embedded {report.embedded}, "
                f"classified {report.classified}")
    if report.errors:
        text += "\nerrors: " + "; ".join(report.errors)
    emit(args, report.to_dict(), text)
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    ids = [parse_arxiv_id(i).id for i in args.ids]
    client = ArxivClient(settings)
    try:
        papers = client.fetch_by_ids(ids)
    finally:
        client.close()
    with open_store(settings) as store:
        stats = store.upsert_papers(papers)
    found = {p.id for p in papers}
    missing = [i for i in ids if i not in found]
    lines = [f"{p.id}v{p.version}  {p.title}  [{' '.join(p.categories)}]" for p in papers]
    if missing:
        lines.append(f"not found on arXiv: {', '.join(missing)}")
    emit(args, {"papers": [p.to_dict() for p in papers], "missing": missing, **stats.to_dict()},
         "\n".join(lines) or "nothing found")
    return 1 if missing and not papers else 0


def cmd_stats(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    with open_store(settings) as store:
        stats = store.stats()
    lines = [f"{k}: {v}" for k, v in stats.items() if not isinstance(v, dict)]
    for k, v in stats.items():
        if isinstance(v, dict):
            lines.append(f"{k}: " + ", ".join(f"{a} {b}" for a, b in v.items()))
    emit(args, stats, "\n".join(lines))
    return 0


def cmd_demo_summary(args: argparse.Namespace) -> int:
    """Fallback ``run`` when no bot is installed: load the bundled papers and summarise them."""
    settings = settings_from(args)
    with open_store(settings) as store:
        ensure_demo_corpus(settings, store)
        stats = store.stats()
    print(f"{stats['papers']} papers in {stats['database']}, announced {stats['first_announced']} .. "
          f"{stats['last_announced']}")
    by_group = stats["by_group"]
    assert isinstance(by_group, dict)
    for group, n in by_group.items():
        print(f"  {group}: {n}")
    return 0


# -- wiring -----------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="arxiv-digest", description="A personal arXiv recommender.")
    parser.add_argument("--home", help="state directory (default: $ARXIV_DIGEST_HOME or ./var)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("import", help="import papers from a snapshot or corpus JSONL file (gzip or not)")
    p.add_argument("file", help="arxiv-metadata-oai-snapshot.json or our corpus .jsonl(.gz)")
    p.add_argument("--categories", help="keep only papers in these categories/archives, e.g. cs.LG,stat.ML")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("ingest", help="fetch today's RSS listing and store it (embed and classify new papers)")
    p.add_argument("--categories", help="categories to fetch (default: the 'categories' setting)")
    p.add_argument("--no-models", action="store_true", help="store only; skip embedding and classification")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("fetch", help="look papers up on the arXiv API by id or URL and store them")
    p.add_argument("ids", nargs="+", metavar="ID")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("stats", help="what the store holds")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stats)

    reco_cli.register(sub)
    classify_cli.register(sub)
    harvest_cli.register(sub)
    for ep in entry_points(group="arxiv_digest.cli"):
        try:
            register_plugin = ep.load()
        except ModuleNotFoundError as exc:  # an entry point whose module is not present in this install
            if exc.name not in (ep.module, ep.module.split(".")[0]):
                raise
            log.debug("skipping CLI plugin %s: %s", ep.name, exc)
            continue
        register_plugin(sub)
    if "run" not in sub.choices:
        p = sub.add_parser("run", help="load the bundled papers and print a summary (the bot is not installed)")
        p.set_defaults(func=cmd_demo_summary)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        print(f"arxiv-digest {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
