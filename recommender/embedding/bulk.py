"""Bulk embedding of a whole store on Ray Data (``arxiv-digest embed --engine ray``), and the Ray machinery the
bulk classification shares (:mod:`recommender.classification.bulk`).

The papers that lack a vector of the current model key are cut into shards (``SHARD_SIZE`` ids each) from what
is missing *now*: the store's ids are streamed a page at a time and checked against the ids the vector store
holds (:func:`recommender.embedding.vectors.stored_ids`, id columns only), so no paper text and no vector is
ever loaded all at once. A Ray dataset of shard descriptors (``from_items``) flows through two stages: a read
task pinned to the driver's node (where the SQLite store is) turns a shard's ids into texts, and
``map_batches`` with an actor class (:class:`EmbedWorker`) that loads the model once per worker encodes them:
torch with fp16 on CUDA (sentence-transformers sorts each shard's texts by length, so batches carry little
padding), one GPU per actor, when the cluster has GPUs; otherwise the ONNX fp32 model on CPU, the same vector
space (key ``model|dim``) as torch and as the bot's query path. The driver writes each finished shard as one
part file (atomic, under the vector store's flock) through an append-only :class:`VectorIndex`, so a killed
run loses only the shards in flight and a rerun recomputes "what is missing" and redoes no finished shard.
The bot picks the parts up with ``reload_if_changed``.

Ray is an optional extra (``pip install 'arxiv-digest[scale]'``), imported only here and only when a bulk job
runs: the bot's import path never touches it. Local Ray (``num_cpus`` = workers, no dashboard, quiet logs) by
default, a running cluster by address; an already initialised Ray (tests) is reused. On a cluster the read
stage runs on the driver's node; ONNX workers on other nodes need the model's ONNX export at the same path
(a shared home), GPU workers load the sentence-transformers model themselves.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recommender.config import Settings
from recommender.embedding.embed import (
    Embedder,
    OnnxEmbedder,
    TorchEmbedder,
    _slug,
    load_embedder,
    onnx_dir,
    paper_text,
    resolve_model,
)
from recommender.embedding.vectors import VectorIndex, stored_ids
from recommender.store import Store

log = logging.getLogger(__name__)

SHARD_SIZE = 2000  # papers per shard: the unit of work, of resumption and of one part file
CPU_BATCH = 32  # texts per ONNX run on CPU
GPU_BATCH = 256  # texts per torch batch on a GPU
INSTALL_HINT = "install arxiv-digest[scale] (pip install 'arxiv-digest[scale]') to use --engine ray"


class RayUnavailable(RuntimeError):
    """Ray (Data) is not installed."""


@dataclass
class ShardDone:
    """One shard written: its number, how many papers it held, and the worker process that encoded it."""

    shard: int
    papers: int
    worker: int


@dataclass
class BulkReport:
    job: str  # embed | classify
    key: str  # the vector key or the classifier's model name
    backend: str  # e.g. "onnx fp32", "torch fp16", "sharnn"
    device: str  # cpu | cuda
    workers: int
    shards: int  # shards planned (what was missing when the run started)
    shards_done: int
    papers: int  # papers encoded by the workers and written
    seconds: float
    worker_pids: list[int]

    @property
    def complete(self) -> bool:
        return self.shards_done == self.shards

    @property
    def papers_per_s(self) -> float:
        return self.papers / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(complete=self.complete, papers_per_s=round(self.papers_per_s, 1), seconds=round(self.seconds, 2))
        return out


def require_ray() -> Any:
    """The ``ray`` module with Ray Data, or :class:`RayUnavailable` with the install hint."""
    try:
        import ray
        import ray.data  # noqa: F401 - the Data library is part of the extra
    except ImportError as exc:
        raise RayUnavailable(INSTALL_HINT) from exc
    return ray


@contextmanager
def ray_session(address: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """Ray for one bulk job: an already initialised Ray is used as it is; else a running cluster at ``address``,
    or a local one with ``workers`` CPUs (default: this machine's), quiet and without dashboard, shut down at
    the end."""
    ray = require_ray()
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False}
    if address:
        ray.init(address=address, **kwargs)
    else:
        _start_local(ray, num_cpus=workers or os.cpu_count() or 1, **kwargs)
    try:
        yield ray
    finally:
        ray.shutdown()


def _start_local(ray: Any, attempts: int = 3, **kwargs: Any) -> None:
    """``ray.init`` of a local cluster, tried again when its node did not come up within Ray's fixed 30 s (seen on
    a heavily loaded machine)."""
    for attempt in range(1, attempts + 1):
        try:
            ray.init(**kwargs)
            return
        except Exception as exc:  # Ray raises a bare Exception for this
            if "timed out during startup" not in str(exc) or attempt == attempts:
                raise
            log.warning("local Ray did not start in time (attempt %d of %d): trying again", attempt, attempts)
            ray.shutdown()


def plan_shards(pages: Iterable[Sequence[str]], done: set[str] | frozenset[str],
                shard_size: int = SHARD_SIZE) -> list[list[str]]:
    """Shards of the ids in ``pages`` (streamed) that are not in ``done``, ``shard_size`` each, in order."""
    shards: list[list[str]] = []
    current: list[str] = []
    for page in pages:
        for pid in page:
            if pid in done:
                continue
            current.append(pid)
            if len(current) >= shard_size:
                shards.append(current)
                current = []
    if current:
        shards.append(current)
    return shards


def run_shards(ray: Any, shards: Sequence[Sequence[str]], read: Callable[..., dict[str, np.ndarray]],
               read_args: tuple[Any, ...], worker: type, worker_args: tuple[Any, ...], workers: int,
               gpus_per_worker: float, write: Callable[[dict[str, Any]], int],
               on_shard: Callable[[ShardDone], None]) -> None:
    """Run ``shards`` through ``read`` (a task on the driver's node: ids -> the texts) and ``worker`` (an actor
    class, ``workers`` of them, loading its model once) and hand each finished shard's row to ``write`` here,
    in the driver, as it arrives (it returns how many papers it wrote). ``on_shard`` is called after each
    write; an exception it raises stops the run (finished shards stay written)."""
    items = [{"shard": k, "ids": json.dumps(list(ids))} for k, ids in enumerate(shards)]
    here = {f"node:{ray.util.get_node_ip_address()}": 0.001}  # every node has this resource: the driver's node
    ds = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
    ds = ds.map_batches(read, fn_args=read_args, batch_size=1, batch_format="numpy", num_cpus=0, resources=here)
    ds = ds.map_batches(worker, fn_constructor_args=worker_args, batch_size=1, batch_format="numpy",
                        compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=0 if gpus_per_worker else 1,
                        num_gpus=gpus_per_worker)
    rows = iter(ds.iter_rows())
    try:
        for row in rows:
            n = write(row)
            on_shard(ShardDone(int(row["shard"]), n, int(row["worker"])))
    finally:
        close = getattr(rows, "close", None)
        if close is not None:  # stops the streaming executor and its actors when the loop was left early
            close()


# -- embedding -------------------------------------------------------------------------------------------------
def read_texts(batch: dict[str, np.ndarray], db_path: str) -> dict[str, np.ndarray]:
    """Read stage of embedding: each shard's ids -> (the stored ones among them, their texts)."""
    out_ids: list[str] = []
    out_texts: list[str] = []
    with Store(db_path) as store:
        for ids_json in batch["ids"]:
            ids = json.loads(ids_json)
            papers = store.get_papers(ids)
            kept = [i for i in ids if i in papers]
            out_ids.append(json.dumps(kept))
            out_texts.append(json.dumps([paper_text(papers[i]) for i in kept]))
    return {"shard": batch["shard"], "ids": np.array(out_ids, dtype=object),
            "texts": np.array(out_texts, dtype=object)}


def choose_device(ray: Any, backend: str = "auto", device: str = "auto") -> tuple[str, str]:
    """(backend, device) for a bulk embedding: ``auto`` is torch on CUDA when the Ray cluster has GPUs, else the
    ONNX fp32 model on CPU. ``torch`` on ``cpu`` runs the GPU's code path in fp32 on a CPU."""
    gpus = float(ray.cluster_resources().get("GPU", 0))
    if backend == "auto":
        backend = "torch" if device == "cuda" or (device == "auto" and gpus) else "onnx"
    if backend == "torch":
        device = device if device != "auto" else ("cuda" if gpus else "cpu")
    elif device == "cuda":
        raise ValueError("the ONNX backends run on CPU; use --backend torch (or auto) for --device cuda")
    else:
        device = "cpu"
    if device == "cuda" and not gpus:
        raise ValueError("--device cuda: the Ray cluster has no GPU")
    if backend not in ("torch", "onnx", "onnx-int8"):
        raise ValueError(f"backend must be auto, onnx, onnx-int8 or torch, not {backend!r}")
    return backend, device


def backend_label(backend: str, device: str) -> str:
    if backend == "torch":
        return "torch fp16" if device == "cuda" else "torch fp32"
    return "onnx int8" if backend == "onnx-int8" else "onnx fp32"


def make_encoder(settings: Settings, backend: str, device: str, threads: int = 1) -> Embedder:
    """The embedder a worker runs: ONNX (the export must exist: the driver makes it) on ``threads`` cores, or
    torch on ``device`` (fp16 weights on CUDA; fp32 on CPU, ``threads`` cores)."""
    name, path = resolve_model(settings)
    if backend.startswith("onnx"):
        return OnnxEmbedder(name, onnx_dir(settings), variant="int8" if backend == "onnx-int8" else "fp32",
                            threads=threads)
    emb = TorchEmbedder(name, path, device=device)
    if device == "cuda":
        emb.model.half()
    else:
        import torch

        torch.set_num_threads(threads)
    return emb


class EmbedWorker:
    """Ray Data actor: loads the model once, then encodes a shard of texts per call."""

    def __init__(self, settings: Settings, backend: str, device: str, threads: int = 1) -> None:
        self.encoder = make_encoder(settings, backend, device, threads)
        self.batch = GPU_BATCH if device == "cuda" else CPU_BATCH
        self.pid = os.getpid()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors: list[bytes] = []
        for texts_json in batch["texts"]:
            texts = json.loads(texts_json)
            vecs = self.encoder.encode(texts, batch_size=self.batch) if texts else \
                np.zeros((0, self.encoder.dim), np.float32)
            vectors.append(np.ascontiguousarray(vecs, dtype=np.float32).tobytes())
        return {"shard": batch["shard"], "ids": batch["ids"], "vectors": np.array(vectors, dtype=object),
                "worker": np.full(len(vectors), self.pid)}


def driver_embedder(settings: Settings, backend: str) -> Embedder:
    """The driver's embedder, for the key and dimension (and, for ONNX, to make the export once, before the
    workers need it)."""
    if backend.startswith("onnx"):
        return load_embedder(settings, backend)
    name, path = resolve_model(settings)
    return TorchEmbedder(name, path, device="cpu")


def embed_store(settings: Settings, *, address: str | None = None, workers: int | None = None,
                backend: str = "auto", device: str = "auto", shard_size: int = SHARD_SIZE,
                on_plan: Callable[[int, int], None] | None = None,
                on_shard: Callable[[ShardDone], None] | None = None) -> BulkReport:
    """Embed every stored paper lacking a vector of the current model on Ray Data (see the module docstring).

    ``workers``: actors (default: the cluster's GPUs with CUDA, else 2 locally or the cluster's CPUs).
    ``on_plan(shards, papers)`` is called once the work is known, ``on_shard`` after each shard is written
    (an exception it raises stops the run; the written shards stay). Raises :class:`RayUnavailable` without
    Ray, ``ValueError`` for an impossible backend/device."""
    start = time.perf_counter()
    with ray_session(address, workers or (None if address else 2)) as ray:
        backend, device = choose_device(ray, backend, device)
        emb = driver_embedder(settings, backend)
        directory = vectors_dir_for(settings, emb.key)
        index = VectorIndex(directory, emb.key, emb.dim, load=False)
        with Store(settings.db_path, taxonomy=settings.taxonomy_path) as store:
            done = stored_ids(directory)
            shards = plan_shards(store.iter_paper_ids(), done, shard_size)
        del done
        total = sum(len(s) for s in shards)
        n_workers = _workers(ray, workers, device)
        log.info("bulk embedding %d papers in %d shards with %s on %d %s worker(s)", total, len(shards),
                 backend_label(backend, device), n_workers, device)
        if on_plan is not None:
            on_plan(len(shards), total)
        report = BulkReport("embed", emb.key, backend_label(backend, device), device, n_workers, len(shards), 0, 0,
                            0.0, [])
        if not shards:
            report.seconds = time.perf_counter() - start
            return report
        del emb

        def write(row: dict[str, Any]) -> int:
            ids = json.loads(row["ids"])
            vecs = np.frombuffer(row["vectors"], dtype=np.float32).reshape(len(ids), index.dim)
            index.add(ids, vecs)
            return len(ids)

        try:
            run_shards(ray, shards, read_texts, (str(settings.db_path),), EmbedWorker,
                       (settings, backend, device, _threads(ray, n_workers, device, address)), n_workers,
                       1.0 if device == "cuda" else 0.0, write, counting(report, on_shard))
        finally:
            report.seconds = time.perf_counter() - start
    return report


def counting(report: BulkReport, on_shard: Callable[[ShardDone], None] | None) -> Callable[[ShardDone], None]:
    """An ``on_shard`` that keeps ``report`` current before calling the caller's (which may stop the run)."""
    def call(done: ShardDone) -> None:
        report.shards_done += 1
        report.papers += done.papers
        if done.worker not in report.worker_pids:
            report.worker_pids.append(done.worker)
        if on_shard is not None:
            on_shard(done)
    return call


def _workers(ray: Any, wanted: int | None, device: str) -> int:
    if wanted:
        return max(1, int(wanted))
    resources = ray.cluster_resources()
    if device == "cuda":
        return max(1, int(resources.get("GPU", 1)))
    return max(1, int(resources.get("CPU", 1)))


def _threads(ray: Any, workers: int, device: str, address: str | None) -> int:
    """Intra-op threads per CPU worker: this machine's cores shared out locally, one on a cluster (one CPU
    each)."""
    if device == "cuda" or address:
        return 1
    return max(1, int(ray.cluster_resources().get("CPU", 1)) // workers)


def vectors_dir_for(settings: Settings, key: str) -> Path:
    """Where the vectors of ``key`` live (the same directory the Engine uses)."""
    return settings.vectors_dir / _slug(key)
