"""Benchmark: embedding throughput on this machine, and agreement of each backend with torch.

Same real abstracts (the shipped demo sample), one run: the naive loop (one ``encode`` call per abstract, as the
original prototype did), batched torch (sentence-transformers), ONNX fp32 and ONNX int8 (per-channel dynamic
quantisation) as exported by ``recommender.embedding.embed``. To be fair on a shared CPU the methods take turns on
the same chunks of texts, so a burst of load elsewhere hits all of them alike. Agreement: mean and minimum cosine to the
batched torch vectors, and the overlap of each text's 10 nearest neighbours among the benchmark texts.
Writes bench/results/bench_embed.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from recommender.config import load_settings
from recommender.embedding.embed import load_embedder, paper_text  # noqa: E402
from recommender.paths import DEMO_CORPUS  # noqa: E402
from recommender.sources.importer import iter_file  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "bench_embed.json"


def topk_overlap(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    sa, sb = a @ a.T, b @ b.T
    np.fill_diagonal(sa, -9)
    np.fill_diagonal(sb, -9)
    ta, tb = np.argsort(-sa, 1)[:, :k], np.argsort(-sb, 1)[:, :k]
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(ta, tb, strict=True)]))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=480)
    ap.add_argument("--chunk", type=int, default=96)
    ap.add_argument("--naive-per-chunk", type=int, default=24)
    ap.add_argument("--home", default=None, help="state dir holding the ONNX export (default: a temp dir)")
    args = ap.parse_args()
    papers = []
    for p in iter_file(DEMO_CORPUS):
        papers.append(p)
        if len(papers) >= args.texts:
            break
    texts = [paper_text(p) for p in papers]
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp())
    settings = load_settings(env={}, home=home)
    t = time.perf_counter()
    onnx8 = load_embedder(settings, "onnx-int8")
    first_use_s = time.perf_counter() - t  # includes the export + quantisation when home is fresh
    onnx32 = load_embedder(settings, "onnx")
    torch_emb = load_embedder(settings, "torch")
    methods = {
        "naive_loop": lambda ts: np.stack([torch_emb.encode([x])[0] for x in ts]),
        "torch_batched": lambda ts: torch_emb.encode(ts, batch_size=32),
        "onnx_fp32": lambda ts: onnx32.encode(ts, batch_size=32),
        "onnx_int8": lambda ts: onnx8.encode(ts, batch_size=32),
    }
    for f in methods.values():  # warm-up
        f(texts[:4])
    secs = {m: 0.0 for m in methods}
    count = {m: 0 for m in methods}
    vecs: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    load0 = os.getloadavg()[0]
    for start in range(0, len(texts), args.chunk):
        chunk = texts[start:start + args.chunk]
        for m, f in methods.items():
            part = chunk[:args.naive_per_chunk] if m == "naive_loop" else chunk
            t = time.perf_counter()
            v = f(part)
            secs[m] += time.perf_counter() - t
            count[m] += len(part)
            if m != "naive_loop":
                vecs[m].append(v)
    ref = np.concatenate(vecs["torch_batched"])
    results = {}
    for m in methods:
        rate = count[m] / secs[m]
        row = {"texts": count[m], "seconds": round(secs[m], 2), "texts_per_s": round(rate, 1),
               "x_naive": round(rate / (count["naive_loop"] / secs["naive_loop"]), 2)}
        if m != "naive_loop":
            v = np.concatenate(vecs[m])
            cos = (v * ref).sum(1)
            row.update(mean_cos_to_torch=round(float(cos.mean()), 4), min_cos_to_torch=round(float(cos.min()), 4),
                       top10_overlap=round(topk_overlap(ref, v), 3))
        results[m] = row
        print(f"{m:14s} {row['texts_per_s']:7.1f} texts/s  x{row['x_naive']:<5} "
              + (f"cos mean {row['mean_cos_to_torch']:.4f} min {row['min_cos_to_torch']:.4f} "
                 f"top-10 overlap {row['top10_overlap']:.3f}" if "mean_cos_to_torch" in row else ""))
    out = {"benchmark": "embed", "texts": len(texts), "source": "data/demo_papers.jsonl.gz (title. abstract)",
           "cpus": os.cpu_count(), "load_avg_start": round(load0, 2), "load_avg_end": round(os.getloadavg()[0], 2),
           "onnx_first_use_seconds": round(first_use_s, 1), "results": results}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
