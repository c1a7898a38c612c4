"""Benchmark: ``harvest`` through both routes against a fake arXiv on a local server (no politeness delay).

The fake (``tests/support/oai_xml.py``) holds the 2,700 real demo papers submitted over 90 days and answers the
query API (Atom) and OAI-PMH (arXiv metadata format) like arXiv; the harvest is the product's own
(:class:`recommender.sources.harvest.Harvester` into a fresh SQLite store). Prints and writes pages/s and
papers/s per route and page size to ``bench/results/bench_harvest.json``. With arXiv's politeness (one request
every 3 s) the real rate is bounded by the delay, not by these figures, unless parsing a page takes longer than
3 s. Usage: ``python bench/bench_harvest.py [--archives cs stat math astro-ph] [--sizes 100 1000]``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recommender import paths  # noqa: I001
from recommender.config import load_settings
from recommender.sources.harvest import Harvester
from recommender.sources.importer import iter_file
from recommender.store import Store
from tests.support.local_server import LocalServer
from tests.support.oai_xml import FakeArxiv, with_days

RESULTS = ROOT / "bench" / "results"
FIRST, LAST = date(2026, 1, 1), date(2026, 3, 31)


def run(route: str, size: int, archives: list[str], fake: FakeArxiv, server: LocalServer) -> dict[str, object]:
    fake.page_size = size
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(env={}, home=Path(tmp), api_url=f"{server.url}/api/query",
                                 oai_url=f"{server.url}/oai", api_delay=0.0, api_page_size=size)
        with Store(settings.db_path, taxonomy=paths.TAXONOMY) as store, \
                Harvester(settings, store, today=date(2026, 4, 30)) as harvester:
            cpu = time.process_time()
            report = harvester.run(archives, FIRST, LAST, via=route)
            cpu = time.process_time() - cpu
            stored = store.count_papers()
    row = report.to_dict()
    out = {"route": route, "page_size": size, "pages": report.pages, "papers": report.papers,
           "stored": stored, "seconds": row["seconds"], "cpu_seconds": round(cpu, 2),
           "pages_per_s": row["pages_per_s"], "papers_per_s": row["papers_per_s"],
           "ms_per_paper": round(1000 * report.seconds / max(report.papers, 1), 2)}
    print(f"{route:3s} page {size:5d}: {out['pages']:4d} pages, {out['papers']:5d} papers in {out['seconds']:6.2f}s "
          f"= {out['pages_per_s']:7.2f} pages/s, {out['papers_per_s']:7.1f} papers/s "
          f"({out['ms_per_paper']} ms/paper, {out['cpu_seconds']} s CPU)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archives", nargs="+", default=["cs", "stat", "math", "astro-ph"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[100, 1000])
    args = ap.parse_args()
    papers = list(iter_file(paths.DEMO_CORPUS))
    fake = FakeArxiv(with_days(papers, FIRST, 90, later_every=0))
    server = LocalServer()
    server.route("/api/query", fake.api)
    server.route("/oai", fake.oai)
    load = os.getloadavg()[0]
    rows = []
    try:
        for size in args.sizes:
            for route in ("api", "oai"):
                rows.append(run(route, size, args.archives, fake, server))
    finally:
        server.close()
    result = {"archives": args.archives, "corpus_papers": len(papers), "rows": rows,
              "load_avg_at_start": round(load, 1), "cpus": os.cpu_count(), "python": platform.python_version(),
              "note": "local server, no politeness delay; arXiv's 3 s per request bounds the real rate"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_harvest.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS / 'bench_harvest.json'} (load average at start {load:.1f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
