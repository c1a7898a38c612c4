"""Benchmark: `similar` latency (exact brute-force top-10) at 135k and 1M vectors, and memory.

Random unit vectors of the model's dimension stand in for the corpus (the 135k corpus is not embedded here:
search cost depends only on the matrix size). Also times a batch of 100 queries in one matrix product and
loading a 135k index from its Arrow file. Writes bench/results/bench_similar.json.
"""
from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from recommender.embedding.vectors import VectorIndex  # noqa: E402

DIM = 384
OUT = Path(__file__).resolve().parent / "results" / "bench_similar.json"


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = np.empty((n, DIM), dtype=np.float32)
    for s in range(0, n, 100_000):
        block = rng.standard_normal((min(100_000, n - s), DIM), dtype=np.float32)
        x[s:s + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return x


def run(n: int, queries: int, rng: np.random.Generator, tmp: Path) -> dict:
    vecs = unit(rng, n)
    ids = [f"p{i}" for i in range(n)]
    index = VectorIndex(tmp / f"n{n}", "bench|384", DIM)
    t = time.perf_counter()
    index.add(ids, vecs)
    write_s = time.perf_counter() - t
    del vecs
    t = time.perf_counter()
    index = VectorIndex(tmp / f"n{n}", "bench|384", DIM)
    load_s = time.perf_counter() - t
    qs = unit(rng, queries)
    lat = []
    for q in qs:
        t = time.perf_counter()
        index.search(q, 10, exclude={"p0"})
        lat.append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    index.search_many(qs[:100], 10)
    batch_ms = (time.perf_counter() - t) * 1000 / min(100, queries)
    return {"vectors": n, "queries": queries, "p50_ms": round(float(np.percentile(lat, 50)), 2),
            "p95_ms": round(float(np.percentile(lat, 95)), 2), "batched_ms_per_query": round(batch_ms, 2),
            "matrix_mb": round(index.matrix.nbytes / 2**20, 1), "write_s": round(write_s, 2),
            "load_s": round(load_s, 2)}


def main() -> int:
    rng = np.random.default_rng(0)
    results = []
    with tempfile.TemporaryDirectory() as d:
        for n, q in ((135_205, 200), (1_000_000, 100)):
            r = run(n, q, rng, Path(d))
            results.append(r)
            print(f"{n:>9,} vectors: similar p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, batched "
                  f"{r['batched_ms_per_query']} ms/query, matrix {r['matrix_mb']} MB, load {r['load_s']} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"benchmark": "similar", "dim": DIM, "cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg()[0],
           "peak_rss_mb": round(peak, 1), "results": results}
    print(f"peak RSS {peak:.0f} MB")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
