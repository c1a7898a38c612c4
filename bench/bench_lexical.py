"""Benchmark: the tf-idf index (recommender.embedding.lexical) on the 135k corpus, and what a 2.7M store costs.

Each measurement runs in a fresh subprocess (its peak RSS is its own): the product's small-store path (vocabulary
fitted on every paper, every row kept: what a store up to ``STORED_ROWS_MAX`` does) on 50k, 100k and all
~135k papers of ``../shared/data/arxiv_corpus.jsonl.gz``; the big-store path (vocabulary fitted on a sample,
no rows kept) on the same sizes; and, with the fitted vectoriser of the sample, the ranking-time cost: rows
for one day's new papers (1,200) and for a user's likes (20), and the memory of a process that holds only the
vectoriser. The JSON extrapolates both designs to 2.7M papers from the measured per-paper figures. Writes
``bench/results/bench_lexical.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from recommender.embedding.embed import paper_text  # noqa: E402
from recommender.embedding.lexical import FIT_SAMPLE, STORED_ROWS_MAX, LexicalIndex, fit_sample  # noqa: E402
from recommender.sources.corpus import iter_dicts  # noqa: E402

CORPUS = ROOT.parent / "shared" / "data" / "arxiv_corpus.jsonl.gz"
OUT = ROOT / "bench" / "results" / "bench_lexical.json"
FULL = 2_700_000
DAY = 1_200  # new papers of a busy announcement day in the followed categories
LIKES = 20


def texts(limit: int | None = None) -> tuple[list[str], list[str]]:
    ids, out = [], []
    for rec in iter_dicts(CORPUS):
        ids.append(str(rec["id"]))
        out.append(paper_text(rec))
        if limit is not None and len(ids) >= limit:
            break
    return ids, out


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(mode: str, n: int, directory: Path) -> dict[str, Any]:
    ids, docs = texts(n)
    base = rss_mb()
    lex = LexicalIndex(directory)
    t = time.perf_counter()
    if mode == "rows":  # the small-store path: every paper fitted and kept
        lex.fit(ids, docs)
    else:  # the big-store path on a sample (here: a sample of the first n papers, as big as FIT_SAMPLE allows)
        sample = fit_sample(ids, min(FIT_SAMPLE, len(ids) // 2))
        pos = {pid: i for i, pid in enumerate(ids)}
        lex.fit(sample, [docs[pos[i]] for i in sample], total=STORED_ROWS_MAX + len(ids))
    fit_s = time.perf_counter() - t
    lex.save()
    snap = lex.snapshot()
    vocab = len(snap.vectorizer.vocabulary_) if snap.vectorizer is not None else 0
    nnz = int(snap.matrix.nnz)
    out: dict[str, Any] = {"mode": mode, "rows": len(ids), "fitted_on_papers": len(ids) if mode == "rows" else
                           len(sample), "fit_s": round(fit_s, 1), "vocabulary": vocab,
                           "peak_rss_mb": round(peak_mb(), 1), "rss_before_fit_mb": round(base, 1),
                           "stored_rows": len(lex), "nnz": nnz,
                           "matrix_mb": round((snap.matrix.data.nbytes + snap.matrix.indices.nbytes +
                                               snap.matrix.indptr.nbytes) / 2**20, 1),
                           "files_mb": round(sum((directory / f).stat().st_size for f in
                                                 ("tfidf.pkl", "matrix.npz", "ids.json")) / 2**20, 1),
                           "vectorizer_pickle_mb": round(len(pickle.dumps(snap.vectorizer)) / 2**20, 2)}
    rng = np.random.default_rng(0)
    day = [docs[i] for i in rng.choice(len(docs), DAY, replace=False)]
    likes = [docs[i] for i in rng.choice(len(docs), LIKES, replace=False)]
    lat_day, lat_likes = [], []
    for _ in range(3):
        t = time.perf_counter()
        rows = snap.transform(day)
        lat_day.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        snap.transform(likes)
        lat_likes.append((time.perf_counter() - t) * 1000)
    out["transform_day_ms"] = round(min(lat_day), 1)
    out["transform_likes_ms"] = round(min(lat_likes), 1)
    out["nnz_per_paper"] = round(float(rows.nnz) / DAY, 1)
    return out


def loaded(directory: Path) -> dict[str, Any]:
    """A fresh process that loads a saved index (what the bot holds)."""
    base = rss_mb()
    t = time.perf_counter()
    lex = LexicalIndex(directory)
    return {"load_s": round(time.perf_counter() - t, 2), "rss_held_mb": round(rss_mb() - base, 1),
            "stored_rows": len(lex)}


def run(args: list[str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[50_000, 100_000, 0], help="0: the whole corpus")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--loaded", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child[0], int(a.child[1]) or 10**9, Path(a.child[2]))))
        return 0
    if a.loaded:
        print(json.dumps(loaded(Path(a.loaded))))
        return 0
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in a.sizes:
            for mode in ("rows", "sample"):
                d = Path(tmp) / f"{mode}-{n}"
                r = {**run(["--child", mode, str(n), str(d)]), **run(["--loaded", str(d)])}
                print(json.dumps(r))
                rows.append(r)
    full = max((r for r in rows if r["mode"] == "rows"), key=lambda r: r["rows"])
    per_paper_mb = full["matrix_mb"] / full["rows"]
    fit_per_paper = full["fit_s"] / full["rows"]
    out = {"benchmark": "lexical", "corpus": CORPUS.name, "cpus": os.cpu_count(), "fit_sample": FIT_SAMPLE,
           "stored_rows_max": STORED_ROWS_MAX, "day_papers": DAY, "likes": LIKES, "results": rows,
           "fit_s": full["fit_s"], "peak_rss_mb": full["peak_rss_mb"], "rows": full["rows"],
           "vocabulary": full["vocabulary"], "per_day_transform_ms": full["transform_day_ms"],
           "extrapolation_2_7M": {
               "all_rows_kept_matrix_gb": round(per_paper_mb * FULL / 1024, 2),
               "fit_on_all_s_at_least": round(fit_per_paper * FULL),
               "chosen_design": (f"vocabulary and idf fitted on a {FIT_SAMPLE:,}-paper sample (fit time ~"
                                 f"{round(fit_per_paper * FIT_SAMPLE)} s at this corpus's rate), no rows kept: the "
                                 f"bot holds the vectoriser only; each ranking transforms its candidates and likes "
                                 f"(~{full['transform_day_ms']} ms for a day's {DAY:,} papers)")},
           "load_avg_at_end": round(os.getloadavg()[0], 2)}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "results"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
