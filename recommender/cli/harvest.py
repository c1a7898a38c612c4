"""The ``harvest`` subcommand: fill the store from arXiv by category or archive over a date range.

``arxiv-digest harvest CATEGORY... --from YYYY-MM-DD [--to YYYY-MM-DD] [--via api|oai]`` runs
:class:`recommender.sources.harvest.Harvester` with a progress bar (papers, with pages and the window as its
postfix; none with ``--json``, which prints the summary as JSON). SIGTERM and Ctrl-C stop it between requests
(exit 130, everything harvested so far kept; the same command goes on). Bad input exits 2 with one line,
before any request. The harvested papers still need vectors and predictions: the command says how.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from tqdm import tqdm

from recommender.cli.common import open_store, settings_from
from recommender.sources.arxiv import request_shutdown
from recommender.sources.harvest import API_MAX_PAGE_SIZE, FOLLOW_UP, ROUTES, Harvester, HarvestReport, parse_day


@contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """SIGTERM asks the arXiv client to stop (the harvest then ends between pages, its progress committed)."""
    def handler(signum: int, frame: FrameType | None) -> None:
        request_shutdown()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (tests calling main() from a thread)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _text(report: HarvestReport) -> str:
    d = report.to_dict()
    lines = [
        f"harvest {' '.join(report.categories)} {report.first}..{report.last} via {report.route} "
        f"({report.reason})",
        f"{report.inserted} new, {report.updated} updated, {report.unchanged} unchanged papers"
        + (f", {report.filtered} records outside the categories or days" if report.filtered else "")
        + f"; {report.pages} pages, {report.windows} windows finished, {report.windows_skipped} already done"
        + f"; {report.seconds:.1f}s ({d['pages_per_s']} pages/s, {d['papers_per_s']} papers/s)",
    ]
    if report.interrupted:
        lines.append("interrupted: what was harvested is kept; run the same command again to go on")
    elif report.inserted or report.updated:
        lines.append(f"next: {FOLLOW_UP[0]} (vectors), then {FOLLOW_UP[1]} (predicted categories); "
                     "with --engine ray for a big harvest")
    return "\n".join(lines)


def cmd_harvest(args: argparse.Namespace) -> int:
    first = parse_day(args.first, "--from")
    last = parse_day(args.last, "--to") if args.last else None
    if args.page_size is not None and not 1 <= args.page_size <= API_MAX_PAGE_SIZE:
        raise ValueError(f"--page-size must be 1..{API_MAX_PAGE_SIZE}, not {args.page_size}")
    settings = settings_from(args)
    with open_store(settings) as store, Harvester(settings, store, page_size=args.page_size,
                                                  refresh=args.refresh) as harvester:
        targets, first, last, route, reason = harvester.plan(args.categories, first, last, args.via)
        bar = tqdm(desc=f"harvest via {route}", unit=" papers", disable=args.json, file=sys.stderr,
                   dynamic_ncols=True)

        def progress(report: HarvestReport, n: int) -> None:
            bar.update(n)
            bar.set_postfix(pages=report.pages, window=report.window, refresh=False)

        harvester.progress = progress
        try:
            with _stop_on_sigterm():
                report = harvester.run(args.categories, first, last, args.via)
        finally:
            bar.close()
    if args.json:
        print(json.dumps({**report.to_dict(), "next": list(FOLLOW_UP)}, indent=2))
    else:
        print(_text(report))
    return 130 if report.interrupted else 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "harvest", help="fill the store from arXiv: categories or whole archives over a date range",
        description="Harvest every paper submitted to CATEGORY... (categories like cs.LG or whole archives like "
                    "astro-ph) from --from to --to, through the query API or OAI-PMH (chosen by the size of the "
                    "request unless --via forces one). Resumable (run the same command again after a stop) and "
                    "idempotent (a second run changes nothing).")
    p.add_argument("categories", nargs="+", metavar="CATEGORY")
    p.add_argument("--from", dest="first", required=True, metavar="YYYY-MM-DD", help="first submission day")
    p.add_argument("--to", dest="last", metavar="YYYY-MM-DD", help="last submission day (default: today)")
    p.add_argument("--via", choices=ROUTES, help="force the query API or OAI-PMH (default: by request size)")
    p.add_argument("--page-size", type=int, default=None,
                   help=f"API results per request, up to {API_MAX_PAGE_SIZE} (default: the api_page_size setting)")
    p.add_argument("--refresh", action="store_true", help="harvest windows finished by earlier runs again")
    p.add_argument("--json", action="store_true", help="no progress bar; print the summary as JSON")
    p.set_defaults(func=cmd_harvest)
