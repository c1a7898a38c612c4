"""Benchmark: `/similar` search over big stores through the product's VectorIndex, and the ANN libraries compared.

Vectors are realistic, not random (the recall of an approximate index on random vectors says nothing): real
all-MiniLM-L6-v2 embeddings of corpus papers (the shipped demo sample's vectors plus whatever corpus papers the
recommender evaluation cached under ``var/eval/vectors/``), collected once into ``bench/cache/real_sample.npz``.
A store of N vectors is grown from them: row i is real vector ``i mod S`` plus SIGMA x Gaussian noise,
renormalised (the JSON records the mean cosine of a copy to its source beside the real nearest-neighbour
cosine). Queries are held-out real vectors (never a source of the store), perturbed the same way; recall@10 is
measured against exact search over the same store. Everything built is cached in ``bench/cache/`` (gitignored).

``python bench/bench_similar.py [--vectors N ...]`` (default 135,205 and 1,000,000): for each size, a
VectorIndex is filled through ``add`` (parts of 50,000, as the bulk embedder writes them) and compacted, then a
fresh subprocess opens it the way the bot does, answers the queries through ``VectorIndex.search`` (excluding a
paper, as ``/similar ID`` does) and reports p50/p95, recall@10 and its RSS, so building never pollutes the
figure. ``--libraries N``: usearch, faiss-cpu and hnswlib on the same N vectors (build time, p50/p95, recall@10
raw and after an exact rescoring of the top candidates, RSS of a fresh process that loads the saved index, file
size, memory-mapping). Writes ``bench/results/bench_similar.json`` (``results``: one row per size;
``libraries``: the comparison), keeping the section it did not rerun.
"""
from __future__ import annotations

import argparse
import glob
import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from pyarrow import ipc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CACHE = ROOT / "bench" / "cache"
OUT = ROOT / "bench" / "results" / "bench_similar.json"
DIM = 384
SIGMA = 0.03
HELD_OUT = 300  # real vectors kept out of every store: the queries
SEED = 11
K = 10
_BLOCK = 65_536
KEY = "sentence-transformers/all-MiniLM-L6-v2|384"


# -- realistic vectors -------------------------------------------------------------------------------------
def _read_arrow(path: Path) -> tuple[list[str], np.ndarray]:
    with pa.memory_map(str(path), "r") as src:
        table = ipc.open_file(src).read_all()
    ids = table.column("id").to_pylist()
    vecs = np.asarray(table.column("vector").combine_chunks().values.to_numpy(zero_copy_only=False),
                      dtype=np.float32).reshape(len(ids), DIM)
    return ids, vecs


def real_sample(refresh: bool = False) -> np.ndarray:
    """The real vectors (L2-normalised), collected once and cached."""
    path = CACHE / "real_sample.npz"
    if path.is_file() and not refresh:
        return np.load(path)["vecs"]
    found: dict[str, np.ndarray] = {}
    sources = [ROOT / "data" / "demo_vectors.arrow"]
    sources += [Path(p) for p in sorted(glob.glob(str(ROOT / "var" / "eval" / "vectors" / "*" / "part-*.arrow")))]
    for src in sources:
        try:
            ids, vecs = _read_arrow(src)
        except (OSError, pa.ArrowInvalid, KeyError) as exc:
            print(f"skipped {src}: {exc}")
            continue
        found.update(zip(ids, vecs, strict=True))
    ids = sorted(found)
    vecs = np.stack([found[i] for i in ids]).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, ids=np.array(ids), vecs=vecs)
    print(f"real sample: {len(ids)} vectors")
    return vecs


def _tag() -> str:
    return f"s{SIGMA}-r{len(real_sample())}"


def _split(vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sources of the store, originals of the held-out queries): a fixed random split."""
    order = np.random.default_rng(SEED).permutation(len(vecs))
    return vecs[order[HELD_OUT:]], vecs[order[:HELD_OUT]]


def perturb(vecs: np.ndarray, rng: np.random.Generator, sigma: float = SIGMA) -> np.ndarray:
    out = vecs + sigma * rng.standard_normal(vecs.shape, dtype=np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out.astype(np.float32)


def grown(n: int) -> np.ndarray:
    """``n`` store vectors (a read-only memory map); a prefix of a bigger cached set is reused."""
    CACHE.mkdir(parents=True, exist_ok=True)
    tag = _tag()
    for f in sorted(CACHE.glob(f"grown-{tag}-*.f32"), key=lambda p: int(p.stem.rsplit("-", 1)[1])):
        have = int(f.stem.rsplit("-", 1)[1])
        if have >= n:
            return np.memmap(f, dtype=np.float32, mode="r", shape=(have, DIM))[:n]
    sources, _ = _split(real_sample())
    path = CACHE / f"grown-{tag}-{n}.f32"
    tmp = path.with_suffix(".tmp")
    out = np.memmap(tmp, dtype=np.float32, mode="w+", shape=(n, DIM))
    rng = np.random.default_rng(SEED + 1)
    for s in range(0, n, _BLOCK):
        rows = np.arange(s, min(n, s + _BLOCK)) % len(sources)
        block = perturb(sources[rows], rng)
        is_real = np.arange(s, s + len(rows)) < len(sources)  # the real vectors themselves are in the store too
        block[is_real] = sources[rows[is_real]]
        out[s:s + len(block)] = block
    out.flush()
    del out
    tmp.rename(path)
    return np.memmap(path, dtype=np.float32, mode="r", shape=(n, DIM))


def queries() -> np.ndarray:
    _, held = _split(real_sample())
    return perturb(held, np.random.default_rng(SEED + 2))


def ground_truth(n: int) -> np.ndarray:
    """Exact top-K rows of each query among the first ``n`` store vectors (cached)."""
    path = CACHE / f"gt-{_tag()}-{n}-k{K}.npy"
    if path.is_file():
        return np.load(path)
    base, q = grown(n), queries()
    best_s = np.full((len(q), K), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(q), K), dtype=np.int64)
    for s in range(0, n, _BLOCK):
        scores = q @ np.asarray(base[s:s + _BLOCK]).T
        cat_s = np.concatenate([best_s, scores], axis=1)
        cat_i = np.concatenate([best_i, np.broadcast_to(np.arange(s, s + scores.shape[1]), scores.shape)], axis=1)
        top = np.argsort(-cat_s, axis=1, kind="stable")[:, :K]
        best_s = np.take_along_axis(cat_s, top, 1)
        best_i = np.take_along_axis(cat_i, top, 1)
    np.save(path, best_i)
    return best_i


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    return float(np.mean([len(set(f[:K]) & set(t.tolist())) / K for f, t in zip(found, truth, strict=True)]))


def describe() -> dict[str, Any]:
    """What the vectors are, for the JSON."""
    real = real_sample()
    sources, _ = _split(real)
    rng = np.random.default_rng(0)
    sample = sources[rng.choice(len(sources), min(2000, len(sources)), replace=False)]
    copy_cos = float(np.mean(np.sum(perturb(sample, rng) * sample, axis=1)))
    sims = sample @ sample.T
    np.fill_diagonal(sims, -1)
    return {"real_vectors": len(real), "sources": len(sources), "held_out_queries": HELD_OUT, "sigma": SIGMA,
            "mean_cos_copy_to_source": round(copy_cos, 4),
            "median_real_nearest_neighbour_cos": round(float(np.median(sims.max(axis=1))), 4),
            "model": "all-MiniLM-L6-v2 (real embeddings of corpus papers, ONNX)"}


def memory() -> dict[str, float]:
    """This process's resident memory (MB): total, anonymous (heap), file-backed (memory-mapped) and peak."""
    out: dict[str, float] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[name] = round(int(value.split()[0]) / 1024, 1)
    return out


def _percentiles(lat: list[float]) -> dict[str, float]:
    return {"p50_ms": round(float(np.percentile(lat, 50)), 3), "p95_ms": round(float(np.percentile(lat, 95)), 3)}


# -- the libraries compared ---------------------------------------------------------------------------------
M, EF_ADD = 32, 128
VARIANTS = ("usearch-i8", "usearch-f16", "faiss-hnsw-sq8", "faiss-hnsw-flat", "hnswlib-f32")
EFS = (32, 64, 128)
FETCH = 40  # candidates rescored exactly from the fp32 matrix


def _lib(name: str) -> Any:
    """A library of the comparison (faiss-cpu and hnswlib are not dependencies: pip install them to compare)."""
    return importlib.import_module(name)


def lib_build(variant: str, n: int, path: Path) -> dict[str, Any]:
    data = np.asarray(grown(n))
    t = time.perf_counter()
    if variant.startswith("usearch"):
        Index = _lib("usearch.index").Index
        index = Index(ndim=DIM, metric="cos", dtype=variant.split("-")[1], connectivity=M, expansion_add=EF_ADD)
        index.add(np.arange(n, dtype=np.uint64), data, threads=os.cpu_count() or 1)
        index.save(str(path))
    elif variant.startswith("faiss"):
        faiss = _lib("faiss")
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        if variant == "faiss-hnsw-sq8":
            fi = faiss.IndexHNSWSQ(DIM, faiss.ScalarQuantizer.QT_8bit, M, faiss.METRIC_INNER_PRODUCT)
            fi.train(data[:min(n, 100_000)])
        else:
            fi = faiss.IndexHNSWFlat(DIM, M, faiss.METRIC_INNER_PRODUCT)
        fi.hnsw.efConstruction = EF_ADD
        fi.add(data)
        faiss.write_index(fi, str(path))
    else:
        hi = _lib("hnswlib").Index(space="ip", dim=DIM)
        hi.init_index(max_elements=n, M=M, ef_construction=EF_ADD)
        hi.add_items(data, np.arange(n), num_threads=os.cpu_count() or 1)
        hi.save_index(str(path))
    return {"build_s": round(time.perf_counter() - t, 1), "file_mb": round(path.stat().st_size / 2**20, 1)}


def lib_query(variant: str, n: int, path: Path) -> dict[str, Any]:
    """In a fresh process: open the saved index (memory-mapped where the library can), query, measure."""
    q, truth = queries(), ground_truth(n)
    base = grown(n)  # the fp32 matrix, memory-mapped: rescoring reads only the candidates' rows
    before = memory()
    t = time.perf_counter()
    mmap = "no"
    if variant.startswith("usearch"):
        index = _lib("usearch.index").Index.restore(str(path), view=True)
        mmap = "yes (Index.restore(view=True))"

        def search(v: np.ndarray, k: int, ef: int) -> list[int]:
            index.expansion_search = ef
            return [int(x) for x in index.search(v, k).keys]
    elif variant.startswith("faiss"):
        faiss = _lib("faiss")
        faiss.omp_set_num_threads(1)
        try:
            fi = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)
            mmap = "yes (IO_FLAG_MMAP_IFC)"
        except RuntimeError as exc:
            fi = faiss.read_index(str(path))
            mmap = f"no ({str(exc).splitlines()[0][:80]})"

        def search(v: np.ndarray, k: int, ef: int) -> list[int]:
            fi.hnsw.efSearch = ef
            return [int(x) for x in fi.search(v[None, :], k)[1][0] if x >= 0]
    else:
        hi = _lib("hnswlib").Index(space="ip", dim=DIM)
        hi.load_index(str(path), max_elements=n)
        hi.set_num_threads(1)

        def search(v: np.ndarray, k: int, ef: int) -> list[int]:
            hi.set_ef(max(ef, k))
            return [int(x) for x in hi.knn_query(v, k)[0][0]]
    load_s = time.perf_counter() - t
    out: dict[str, Any] = {"load_s": round(load_s, 2), "mmap": mmap, "by_ef": []}
    for ef in EFS:
        for v in q[:30]:  # warm-up
            search(v, K, ef)
        lat, raw, rescored = [], [], []
        for v in q:
            t = time.perf_counter()
            cand = search(v, FETCH, max(ef, FETCH))
            rows = np.array(sorted(cand), dtype=np.int64)
            scores = np.asarray(base[rows]) @ v
            best = rows[np.argsort(-scores)[:K]]
            lat.append((time.perf_counter() - t) * 1000)
            rescored.append(best.tolist())
            raw.append(search(v, K, ef))
        out["by_ef"].append({"ef": max(ef, FETCH), **_percentiles(lat), "recall_at_10_rescored": round(recall(
            rescored, truth), 4), "recall_at_10_raw": round(recall(raw, truth), 4)})
    after = memory()
    out["rss_mb"] = after["VmRSS"]
    out["rss_anon_mb"] = after["RssAnon"]
    out["rss_before_load_mb"] = before["VmRSS"]
    return out


def compare_libraries(n: int, variants: list[str]) -> dict[str, Any]:
    grown(n)
    ground_truth(n)
    rows = []
    for variant in variants:
        path = CACHE / f"lib-{variant}-{_tag()}-{n}.idx"
        if not path.is_file():
            built = json.loads(_child(["--child-build", variant, str(n), str(path)]))
            (path.with_suffix(".json")).write_text(json.dumps(built))
        built = json.loads(path.with_suffix(".json").read_text())
        queried = json.loads(_child(["--child-query", variant, str(n), str(path)]))
        row = {"library": variant, "vectors": n, **built, **queried}
        print(json.dumps(row))
        rows.append(row)
    return {"vectors": n, "M": M, "ef_construction": EF_ADD, "fetch_rescored": FETCH, "rows": rows,
            "versions": _versions()}


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version
    out = {}
    for name in ("usearch", "faiss-cpu", "hnswlib"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _child(args: list[str]) -> str:
    proc = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    return proc.stdout.strip().splitlines()[-1]


# -- the product's VectorIndex -------------------------------------------------------------------------------
def product_build(n: int, directory: Path) -> dict[str, Any]:
    from recommender.embedding.vectors import VectorIndex
    data = grown(n)
    if directory.exists():
        shutil.rmtree(directory)
    index = VectorIndex(directory, KEY, DIM)
    t = time.perf_counter()
    for s in range(0, n, 50_000):
        index.add([f"p{i}" for i in range(s, min(n, s + 50_000))], np.asarray(data[s:s + 50_000]))
    index.compact()
    index.ensure_ann()
    return {"build_s": round(time.perf_counter() - t, 1), **index.ann_status()}


def product_query(n: int, directory: Path) -> dict[str, Any]:
    from recommender.embedding import ann
    from recommender.embedding.vectors import VectorIndex
    q, truth = queries(), ground_truth(n)
    t = time.perf_counter()
    index = VectorIndex(directory, KEY, DIM)
    load_s = time.perf_counter() - t
    for v in q[:30]:
        index.search(v, K, exclude={"p0"})
    lat, found = [], []
    for i, v in enumerate(q):
        t = time.perf_counter()
        hits = index.search(v, K, exclude={f"p{i}"})  # /similar ID excludes the paper itself
        lat.append((time.perf_counter() - t) * 1000)
        found.append([int(pid[1:]) for pid, _ in hits])
    # the excluded id is never a true neighbour here (held-out queries), so recall is against plain exact search
    mem = memory()
    out: dict[str, Any] = {"vectors": n, **_percentiles(lat), "recall_at_10": round(recall(found, truth), 4),
           "rss_mb": mem["VmRSS"], "rss_anon_mb": mem["RssAnon"], "rss_file_mb": mem["RssFile"],
           "load_s": round(load_s, 2), "queries": len(q), "ef_search": ann.expansion_for(n), "ef_sweep": []}
    default_ef, per_rows = ann.EXPANSION_SEARCH, ann.EXPANSION_PER_ROWS
    ann.EXPANSION_PER_ROWS = 1 << 62  # each sweep step searches exactly its ef
    for ef in (128, 256, 512, 1024, 2048):  # the trade-off behind the default (after the RSS figure above)
        ann.EXPANSION_SEARCH = ef
        idx = VectorIndex(directory, KEY, DIM)
        lat, found = [], []
        for i, v in enumerate(q):
            t = time.perf_counter()
            hits = idx.search(v, K, exclude={f"p{i}"})
            lat.append((time.perf_counter() - t) * 1000)
            found.append([int(pid[1:]) for pid, _ in hits])
        out["ef_sweep"].append({"ef": ef, **_percentiles(lat), "recall_at_10": round(recall(found, truth), 4)})
    ann.EXPANSION_SEARCH, ann.EXPANSION_PER_ROWS = default_ef, per_rows
    return out


def run_sizes(sizes: list[int]) -> list[dict[str, Any]]:
    rows = []
    for n in sizes:
        grown(n)
        ground_truth(n)
        directory = CACHE / f"index-{_tag()}-{n}"
        stamp = directory / "bench-build.json"
        if not stamp.is_file():
            built = json.loads(_child(["--child-product-build", str(n), str(directory)]))
            stamp.write_text(json.dumps(built))
        built = json.loads(stamp.read_text())
        row = {**json.loads(_child(["--child-product-query", str(n), str(directory)])), **built}
        print(f"{n:>9,} vectors: p50 {row['p50_ms']} ms, p95 {row['p95_ms']} ms, recall@10 {row['recall_at_10']}, "
              f"RSS {row['rss_mb']} MB (anon {row['rss_anon_mb']}), built in {row['build_s']} s")
        rows.append(row)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", type=int, nargs="*", default=None, help="store sizes (default 135205 1000000)")
    ap.add_argument("--libraries", type=int, default=0, metavar="N", help="compare the ANN libraries on N vectors")
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--refresh-sample", action="store_true", help="collect the real vectors again")
    ap.add_argument("--child-build", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--child-query", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--child-product-build", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--child-product-query", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_build:
        print(json.dumps(lib_build(args.child_build[0], int(args.child_build[1]), Path(args.child_build[2]))))
        return 0
    if args.child_query:
        print(json.dumps(lib_query(args.child_query[0], int(args.child_query[1]), Path(args.child_query[2]))))
        return 0
    if args.child_product_build:
        n, d = args.child_product_build
        print(json.dumps(product_build(int(n), Path(d))))
        return 0
    if args.child_product_query:
        n, d = args.child_product_query
        print(json.dumps(product_query(int(n), Path(d))))
        return 0
    real_sample(refresh=args.refresh_sample)
    fresh: dict[str, Any] = {"dim": DIM, "cpus": os.cpu_count(), "vectors_used": describe()}
    if args.libraries:
        fresh["libraries"] = compare_libraries(args.libraries, args.variants)
    if args.vectors is not None or not args.libraries:
        fresh["results"] = run_sizes(args.vectors or [135_205, 1_000_000])
    fresh["load_avg_at_end"] = round(os.getloadavg()[0], 2)
    # read just before writing: keep the section another run wrote meanwhile
    out: dict[str, Any] = json.loads(OUT.read_text()) if OUT.is_file() else {}
    if out.get("benchmark") != "similar" or "vectors_used" not in out:
        out = {"benchmark": "similar"}
    out.update(fresh)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
