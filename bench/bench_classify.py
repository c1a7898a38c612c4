"""Benchmark: the shipped category classifier's load time, single-paper latency and batch throughput.

For an ensemble model (SHA-RNN + tf-idf LR) it also times the tf-idf head alone. CPU seconds are recorded
beside wall times (the machine is shared: wall times are inflated by other work, CPU seconds much less).

Uses the 420 real papers of ``tests/fixtures/classifier/papers.jsonl.gz`` (repeated to ``--papers``), the
shipped model in ``data/models/`` (or ``--model``), ``--threads`` torch threads. Prints the figures and writes
``bench/results/classify.json``. Usage: ``python bench/bench_classify.py [--papers 2048] [--threads 2]``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from recommender.classification.classify import Classifier  # noqa: E402
from recommender.sources.corpus import iter_dicts  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "classifier" / "papers.jsonl.gz"
RESULTS = ROOT / "bench" / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--papers", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    papers = list(iter_dicts(FIXTURE))
    pairs = [(p["title"], p["abstract"]) for p in papers]
    pairs = (pairs * (args.papers // len(pairs) + 1))[: args.papers]
    t0 = time.perf_counter()
    clf = Classifier.load(args.model)
    load_s = time.perf_counter() - t0
    lat = []
    for title, abstract in pairs[:50]:
        t = time.perf_counter()
        clf.predict(title, abstract)
        lat.append((time.perf_counter() - t) * 1000)
    t, c = time.perf_counter(), time.process_time()
    clf.predict_batch(pairs, batch_size=256)
    batch_s, batch_cpu = time.perf_counter() - t, time.process_time() - c
    tfidf_ms = None
    if clf.tfidf is not None:
        enc = [clf.encode(ti, ab) for ti, ab in pairs]
        c = time.process_time()
        clf.tfidf_logits(enc)
        tfidf_ms = round(1000 * (time.process_time() - c) / len(pairs), 3)
    out = {
        "model": clf.meta.get("name"), "ensemble": clf.tfidf is not None, "threads": args.threads,
        "cpus": os.cpu_count(),
        "load_seconds": round(load_s, 2),
        "single_predict_ms_p50": round(statistics.median(lat), 1),
        "single_predict_ms_p95": round(sorted(lat)[int(0.95 * len(lat)) - 1], 1),
        "batch_256_papers_per_second": round(len(pairs) / batch_s, 1), "batch_papers": len(pairs),
        "batch_cpu_ms_per_paper": round(1000 * batch_cpu / len(pairs), 2),
        "tfidf_head_cpu_ms_per_paper": tfidf_ms,
        "model_dir_mb": round(sum(f.stat().st_size for f in Path(clf.meta.get("dir", "")).iterdir()) / 1e6, 1)
        if clf.meta.get("dir") else None,
        "load_average": round(os.getloadavg()[0], 1),
        "note": "other jobs shared the CPU while this ran" if os.getloadavg()[0] > args.threads else "",
    }
    for k, v in out.items():
        print(f"{k:32s} {v}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "classify.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
