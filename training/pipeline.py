"""End-to-end training: corpus -> splits -> phrases -> fastText -> vocabulary -> SHA-RNN per split -> evaluation
-> model directories, each step resumable (outputs in the run directory are reused).

For each split (temporal, random) a model is trained on its train part, its threshold tuned on the full
validation part, and it is scored on the test part; ``<run>/<split>/model`` is the exported model and
``<run>/<split>/eval.json`` the scores. ``ship`` copies the temporal model (the one measured on what a daily
bot faces) to ``data/models/``.
"""
from __future__ import annotations

import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from training.config import SHIPPED_MODEL_DIR, TrainConfig
from training.data import Labels, Record, load_records, load_records_from_store
from training.export import export_model
from training.metrics import full_report, tune_threshold
from training.plots import plot_metrics
from training.prepare import Prepared, prepare
from training.train import TrainData, build_model, load_weights, predict_probs, train

log = logging.getLogger(__name__)


def load_corpus(data: Path | None, labels: Labels, store_path: Path | None = None) -> list[Record]:
    """The papers of the corpus file ``data``, or (``data`` None) of the store at ``store_path``."""
    if data is not None:
        return load_records(data, labels)
    if store_path is None:
        raise ValueError("no corpus file and no store to train from")
    return load_records_from_store(store_path, labels)


def group_index(labels: Labels) -> np.ndarray:
    return np.array([labels.groups.index(labels.group_of[c]) for c in labels.codes])


def train_split(prep: Prepared, cfg: TrainConfig, run_dir: Path, split: str, progress: bool = True,
                name: str | None = None) -> dict:
    s = prep.splits[split]
    out = run_dir / (name or split)
    out.mkdir(parents=True, exist_ok=True)
    cfg = replace(cfg, split=split)
    cfg.save(out / "config.json")
    gi = group_index(prep.labels)
    data = TrainData(prep.token_ids, prep.targets, gi, len(prep.labels.groups), prep.vectors, s.train, s.val)
    summary = train(data, cfg, out, progress)
    plot_metrics(out / "metrics.jsonl", out / "curves.png", title=f"SHA-RNN, {split} split")
    if not s.test:  # split "all": nothing to score; export with the selection run's threshold
        return export_all(prep, cfg, out, summary)
    return evaluate_split(prep, cfg, out, split, summary, progress)


def export_all(prep: Prepared, cfg: TrainConfig, out: Path, summary: dict) -> dict:
    """Export the model trained on every paper (its last epoch) with ``cfg.threshold``."""
    gi = group_index(prep.labels)
    s = prep.splits["all"]
    data = TrainData(prep.token_ids, prep.targets, gi, len(prep.labels.groups), prep.vectors, s.train, s.val)
    model = build_model(data, cfg)
    load_weights(model, out / "best.pt")
    result: dict[str, Any] = {"model": "SHA-RNN", "split": "all", "threshold": cfg.threshold, "train": summary,
                              "prior_correction": cfg.prior_correction}
    (out / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
    export_model(model, out / "model", vocab=prep.vocab, phrases=prep.phrases, labels=prep.labels,
                 max_tokens=cfg.max_tokens, threshold=cfg.threshold,
                 metrics={k: result[k] for k in ("split", "threshold", "train")},
                 provenance={"split": "all", "train_papers": summary["train_papers"],
                             "train_config": cfg.to_dict()})
    return result


def evaluate_split(prep: Prepared, cfg: TrainConfig, out: Path, split: str, summary: dict,
                   progress: bool = True) -> dict:
    s = prep.splits[split]
    gi = group_index(prep.labels)
    data = TrainData(prep.token_ids, prep.targets, gi, len(prep.labels.groups), prep.vectors, s.train, s.val)
    model = build_model(data, cfg)
    load_weights(model, out / "best.pt")
    val_probs = predict_probs(model, prep.token_ids, s.val, progress=progress, desc="validation")
    thr = tune_threshold(val_probs, prep.targets[s.val])
    test_probs = predict_probs(model, prep.token_ids, s.test, progress=progress, desc="test")
    result: dict[str, Any] = {
        "model": "SHA-RNN", "split": split, "threshold": thr, "train": summary,
        "prior_correction": cfg.prior_correction,
        "val": full_report(val_probs, prep.targets[s.val], gi, prep.labels.groups, thr),
        "test": full_report(test_probs, prep.targets[s.test], gi, prep.labels.groups, thr),
    }
    if cfg.prior_correction:  # the same weights scored without the correction, for the report
        shift = model.prior_shift.numpy()
        raw_val, raw_test = uncorrect(val_probs, shift), uncorrect(test_probs, shift)
        raw_thr = tune_threshold(raw_val, prep.targets[s.val])
        result["without_prior_correction"] = {
            "threshold": raw_thr,
            "val": full_report(raw_val, prep.targets[s.val], gi, prep.labels.groups, raw_thr),
            "test": full_report(raw_test, prep.targets[s.test], gi, prep.labels.groups, raw_thr)}
    (out / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
    log.info("%s split: test category sample-F1 %.4f, master sample-F1 %.4f", split,
             result["test"]["category_sample_f1"], result["test"]["master_sample_f1"])
    export_model(model, out / "model", vocab=prep.vocab, phrases=prep.phrases, labels=prep.labels,
                 max_tokens=cfg.max_tokens, threshold=thr,
                 metrics={k: result[k] for k in ("split", "threshold", "train", "test")},
                 provenance={"split": split, "train_papers": summary["train_papers"],
                             "train_config": cfg.to_dict()})
    return result


def uncorrect(probs: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Probabilities as the weighted loss left them (the prior shift added back in logit space)."""
    p = np.clip(probs.astype(np.float64), 1e-7, 1 - 1e-7)
    return (1 / (1 + np.exp(-(np.log(p / (1 - p)) + shift)))).astype(np.float32)


def ship(run_dir: Path, split: str = "temporal", dest: Path = SHIPPED_MODEL_DIR, name: str | None = None) -> Path:
    src = run_dir / (name or split) / "model"
    if not (src / "weights.pt").exists():
        raise FileNotFoundError(f"no exported model in {src}; train first")
    tmp = dest.with_name(dest.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(src, tmp)
    other = {}
    for ev in sorted(run_dir.glob("*/eval.json")):
        e = json.loads(ev.read_text())
        other[ev.parent.name] = {"split": e["split"], "test": e["test"], "val": e["val"],
                                 "threshold": e["threshold"], "train": e["train"]}
    config = json.loads((tmp / "config.json").read_text())
    config["name"] = dest.name
    (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    metrics = json.loads((tmp / "metrics.json").read_text())
    metrics["by_split"] = other
    (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if dest.exists():
        shutil.rmtree(dest)
    tmp.replace(dest)
    log.info("shipped %s model to %s", split, dest)
    return dest


def run(data: Path | None, run_dir: Path, cfg: TrainConfig, splits: tuple[str, ...] = ("temporal", "random"),
        ship_model: bool = True, progress: bool = True, name: str | None = None,
        store_path: Path | None = None, vectors_from: Path | None = None) -> dict[str, dict]:
    """Train and evaluate one model per split on the corpus file ``data`` or (``data`` None) the papers of the
    store at ``store_path``; ``name`` (one split only) names its subdirectory."""
    labels = Labels.from_taxonomy()
    records = load_corpus(data, labels, store_path)
    prep = prepare(records, labels, cfg, run_dir, vectors_from=vectors_from)
    results = {}
    for split in splits:
        results[split] = train_split(prep, cfg, run_dir, split, progress, name if len(splits) == 1 else None)
    if ship_model and "temporal" in splits:
        ship(run_dir, "temporal", name=name if len(splits) == 1 else None)
    return results
