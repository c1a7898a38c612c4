"""Bulk embedding throughput: the single-process path (``arxiv-digest embed``) against Ray Data (``--engine ray``,
local cluster) on the same real demo papers, plus the raw encoder rates of ONNX fp32 and int8 on this CPU and,
when CUDA is present, of torch fp16 on the GPU.

    python bench/bench_bulk.py [--papers 1000] [--workers 2]

Writes ``bench/results/bench_bulk.json``: ``single_process_papers_per_s``, ``ray_papers_per_s`` (the whole job:
Ray start, model loads, shards), ``ray_after_first_shard_papers_per_s`` (the papers after the first shard over the
time from the first shard written to the last: an upper bound, since workers finish shards in pairs), ``device``,
``ray_workers``, ``papers``, ``onnx_fp32_papers_per_s``, ``onnx_int8_papers_per_s`` (one process, all cores),
``gpu_papers_per_s`` (null without a GPU), the machine's load average before and after (the machine is shared).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from recommender.config import Settings, load_settings
from recommender.embedding.bulk import ShardDone, embed_store, make_encoder
from recommender.embedding.embed import OnnxEmbedder, load_embedder, onnx_dir, paper_text, resolve_model
from recommender.engine.core import Engine
from recommender.models import Paper
from recommender.sources.importer import iter_file
from recommender.store import Store

DEMO = ROOT / "data" / "demo_papers.jsonl.gz"
OUT = ROOT / "bench" / "results" / "bench_bulk.json"


def make_home(root: Path, models: Path, papers: list[Paper]) -> Settings:
    settings = load_settings(env={}, home=root)
    settings.ensure_home()
    if models != root / "models":
        (root / "models").symlink_to(models, target_is_directory=True)
    with Store(settings.db_path, taxonomy=settings.taxonomy_path) as store:
        store.upsert_papers(papers)
    return settings


def encoder_rate(encode: Callable[..., Any], texts: list[str], batch: int) -> float:
    t = time.perf_counter()
    encode(texts, batch_size=batch)
    return len(texts) / (time.perf_counter() - t)


def cpu_flags() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return ""
    return " ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile") if f in flags.split())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--papers", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shard-size", type=int, default=250)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    load_before = os.getloadavg()
    papers = list(itertools.islice((p for p in iter_file(DEMO) if p.abstract), args.papers))
    texts = [paper_text(p) for p in papers]
    with tempfile.TemporaryDirectory(prefix="bench_bulk_") as tmp:
        base = make_home(Path(tmp) / "single", Path(tmp) / "single" / "models", papers)
        t = time.perf_counter()
        load_embedder(base, "onnx")  # the ONNX export (fp32 and int8), once, not timed below
        export_s = time.perf_counter() - t
        print(f"{len(papers)} papers; ONNX export {export_s:.0f}s; load average {load_before[0]:.1f}", flush=True)

        t = time.perf_counter()
        with Store(base.db_path) as store:
            n = Engine(base, store).embed_missing(progress=False)
        single_s = time.perf_counter() - t
        single = n / single_s
        print(f"single process (arxiv-digest embed): {single:.1f} papers/s ({single_s:.0f}s)", flush=True)

        ray_home = make_home(Path(tmp) / "ray", base.home / "models", papers)
        stamps: list[float] = []

        def shard_done(done: ShardDone) -> None:
            stamps.append(time.perf_counter())

        report = embed_store(ray_home, workers=args.workers, shard_size=args.shard_size, on_shard=shard_done)
        ray_rate = report.papers_per_s
        steady = ((report.papers - args.shard_size) / (stamps[-1] - stamps[0])
                  if len(stamps) > 1 and stamps[-1] > stamps[0] else None)
        print(f"ray ({report.workers} workers, {report.backend}): {ray_rate:.1f} papers/s whole job "
              f"({report.seconds:.0f}s), after the first shard {steady or 0:.1f} papers/s (upper bound)", flush=True)

        name, _ = resolve_model(base)
        cores = os.cpu_count() or 1
        sample = texts[: min(len(texts), 400)]
        fp32 = encoder_rate(OnnxEmbedder(name, onnx_dir(base), "fp32", threads=cores).encode, sample, 32)
        int8 = encoder_rate(OnnxEmbedder(name, onnx_dir(base), "int8", threads=cores).encode, sample, 32)
        print(f"ONNX on {cores} cores: fp32 {fp32:.1f}, int8 {int8:.1f} papers/s", flush=True)

        gpu = None
        device = "cpu"
        try:
            import torch

            if torch.cuda.is_available():
                device = f"cuda ({torch.cuda.get_device_name(0)})"
                enc = make_encoder(base, "torch", "cuda")
                enc.encode(sample[:256], batch_size=256)  # warm-up
                gpu = encoder_rate(enc.encode, texts, 256)
                print(f"GPU torch fp16: {gpu:.0f} papers/s", flush=True)
        except ImportError:
            pass

    result = {
        "papers": len(papers),
        "device": device,
        "cpu": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {cpu_flags()}",
        "single_process_papers_per_s": round(single, 2),
        "ray_papers_per_s": round(ray_rate, 2),
        "ray_after_first_shard_papers_per_s": round(steady, 2) if steady else None,
        "ray_workers": report.workers,
        "ray_backend": report.backend,
        "ray_seconds": round(report.seconds, 1),
        "ray_shard_size": args.shard_size,
        "onnx_fp32_papers_per_s": round(fp32, 2),
        "onnx_int8_papers_per_s": round(int8, 2),
        "int8_speedup": round(int8 / fp32, 2),
        "gpu_papers_per_s": round(gpu, 1) if gpu else None,
        "onnx_export_seconds": round(export_s, 1),
        "load_average_before": round(load_before[0], 2),
        "load_average_after": round(os.getloadavg()[0], 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
