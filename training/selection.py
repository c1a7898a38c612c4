"""The ensemble selection run on the temporal split, and the shipped ensemble's assembly.

``python -m training.selection select --run DIR``: the SHA-RNN of ``--sharnn`` (trained on the temporal train part
only) and a tf-idf logistic regression trained here on the same papers are scored on validation and test;
every combination (each alone, averaged, stacked; one global threshold or per-category thresholds with
shrinkage) is fitted on validation only and scored once on test. Writes ``DIR/selection.json`` (the chosen
recipe's parameters and every variant's report, in the format ``training.report`` reads), ``DIR/eval_*.json``
and ``DIR/predictions_<split>.npz`` (every model's per-paper probabilities on test, and the labels), and the
paired bootstrap intervals of each variant against tf-idf LR and the SHA-RNN. ``--random`` also scores tf-idf LR
on the random split.

``python -m training.selection ship --run DIR --sharnn-model M --dest D``: trains the tf-idf head on every
paper, and writes the model directory ``D``: the SHA-RNN files of ``M``, the head, and ``ensemble.json`` with the
selection run's stack and thresholds.
"""
from __future__ import annotations

import argparse
import json
import logging
import pickle
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recommender import paths
from recommender.classification.classify import ENSEMBLE_FILE, Classifier
from recommender.classification.tfidf_head import TfidfHead, paper_terms
from training.data import Labels, Record, load_records
from training.ensemble import (
    apply_stack,
    average,
    choose_shrinkage,
    fit_platt,
    fit_stack,
    paired_bootstrap,
    per_paper_f1,
    shrink,
    sigmoid,
    tune_category_thresholds,
)
from training.metrics import full_report, master_sets, predict_sets, tune_threshold
from training.prepare import make_splits, multi_hot
from training.tfidf_lr import LrConfig, head_logits, train_head

log = logging.getLogger(__name__)

# the shipped tf-idf head keeps its largest weights only (fp16 + uint16 index: ~4 bytes each): the model
# directory stays under ~25 MB with the SHA-RNN's 16.7 MB; the cost is measured in the selection run
TFIDF_MAX_WEIGHTS = 1_500_000


def prune_threshold(head: TfidfHead, max_weights: int = TFIDF_MAX_WEIGHTS) -> float:
    """The |w| at or above which ``max_weights`` weights remain."""
    a = np.abs(head.weights).ravel()
    return 0.0 if a.size <= max_weights else float(np.partition(a, a.size - max_weights)[a.size - max_weights])


def _groups(labels: Labels) -> tuple[np.ndarray, list[str]]:
    return np.array([labels.groups.index(labels.group_of[c]) for c in labels.codes]), labels.groups


def sharnn_logits(model_dir: Path, records: list[Record], idx: list[int]) -> np.ndarray:
    clf = Classifier.load(model_dir)
    enc = [clf.encode(records[i].title, records[i].abstract) for i in idx]
    return clf.sharnn_logits(enc)


def cached_sharnn_logits(run: Path, model_dir: Path, records: list[Record], va: list[int],
                         te: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The SHA-RNN's validation and test logits, cached in the run directory by model and papers."""
    cache = run / f"sharnn_logits_{model_dir.name}.npz"
    ids = np.array([records[i].id for i in va + te])
    if cache.exists():
        with np.load(cache) as z:
            if np.array_equal(z["ids"], ids):
                return z["val"], z["test"]
    zv, zt = sharnn_logits(model_dir, records, va), sharnn_logits(model_dir, records, te)
    np.savez(cache, ids=ids, val=zv, test=zt)
    return zv, zt


def _variant(name: str, split: str, pv: np.ndarray, yv: np.ndarray, pt: np.ndarray, yt: np.ndarray,
             gi: np.ndarray, groups: list[str], thr: float, cat_thr: np.ndarray | None = None,
             **extra: Any) -> dict:
    return {"model": name, "split": split, "threshold": thr,
            "val": full_report(pv, yv, gi, groups, thr, cat_thr),
            "test": full_report(pt, yt, gi, groups, thr, cat_thr), **extra}


def _paper_scores(p: np.ndarray, y: np.ndarray, gi: np.ndarray, n_groups: int, thr: float,
                  cat_thr: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    yb = y.astype(bool)
    cat = per_paper_f1(yb, predict_sets(p, thr if cat_thr is None else cat_thr).astype(bool))
    ym = np.stack([yb[:, gi == g].any(1) for g in range(n_groups)], 1)
    mas = per_paper_f1(ym, master_sets(p, gi, n_groups, thr).astype(bool))
    return cat, mas


def select(run: Path, corpus: Path, sharnn_dir: Path, lr_cfg: LrConfig, with_random: bool,
           records: list[Record] | None = None) -> dict:
    labels = Labels.from_taxonomy()
    records = records if records is not None else load_records(corpus, labels, progress=False)
    splits = make_splits(records, _train_config())
    gi, groups = _groups(labels)
    y = multi_hot(records, labels)
    docs = _terms(run, records)
    s = splits["temporal"]
    tr, va, te = s.train, s.val, s.test
    t0 = time.time()
    head_path = run / "tfidf_temporal"
    if (head_path / "tfidf_lr.npz").exists():
        head = TfidfHead.load(head_path)
    else:
        head = train_head([docs[i] for i in tr], y[tr], lr_cfg)
        head_path.mkdir(parents=True, exist_ok=True)
        head.save(head_path)  # unpruned, for this run
    lr_minutes = (time.time() - t0) / 60
    zl_v, zl_t = head_logits(head, [docs[i] for i in va]), head_logits(head, [docs[i] for i in te])
    zs_v, zs_t = cached_sharnn_logits(run, sharnn_dir, records, va, te)
    yv, yt = y[va], y[te]
    variants: dict[str, dict] = {}
    probs_t: dict[str, np.ndarray] = {}
    params: dict[str, Any] = {}

    def add(key: str, name: str, pv: np.ndarray, pt: np.ndarray, thr: float, cat_thr: np.ndarray | None = None,
            **extra: Any) -> None:
        variants[key] = _variant(name, "temporal", pv, yv, pt, yt, gi, groups, thr, cat_thr, **extra)
        variants[key]["cat_thr"] = None if cat_thr is None else [round(float(x), 4) for x in cat_thr]
        probs_t[key] = pt
        log.info("%-40s val %.4f / %.4f  test %.4f / %.4f", name, variants[key]["val"]["category_sample_f1"],
                 variants[key]["val"]["master_sample_f1"], variants[key]["test"]["category_sample_f1"],
                 variants[key]["test"]["master_sample_f1"])

    ps_v, ps_t = sigmoid(zs_v), sigmoid(zs_t)
    pl_v, pl_t = sigmoid(zl_v), sigmoid(zl_t)
    add("sharnn", "SHA-RNN (sharnn-v2)", ps_v, ps_t, tune_threshold(ps_v, yv))
    add("tfidf", "logistic regression (tf-idf)", pl_v, pl_t, tune_threshold(pl_v, yv),
        fit_seconds=round(lr_minutes * 60, 1))
    # Platt scaling of each, then the two averaged
    a_s, a_l = fit_platt(zs_v, yv), fit_platt(zl_v, yv)
    params["platt"] = {"sharnn": a_s.tolist(), "tfidf": a_l.tolist()}
    cs_v, cs_t = apply_stack(a_s, [zs_v]), apply_stack(a_s, [zs_t])
    cl_v, cl_t = apply_stack(a_l, [zl_v]), apply_stack(a_l, [zl_t])
    w, thr = average(cs_v, cl_v, yv)
    params["average"] = {"sharnn_weight": w, "threshold": thr}
    add("average", f"average of both (Platt-scaled, SHA-RNN weight {w:.1f})", w * cs_v + (1 - w) * cl_v,
        w * cs_t + (1 - w) * cl_t, thr)
    theta = fit_stack([zs_v, zl_v], yv)
    params["stack"] = {"sharnn": float(theta[0]), "tfidf": float(theta[1]), "bias": float(theta[2])}
    st_v, st_t = apply_stack(theta, [zs_v, zl_v]), apply_stack(theta, [zs_t, zl_t])
    st_thr = tune_threshold(st_v, yv)
    add("stack", "stack of both (logistic, 3 weights)", st_v, st_t, st_thr)
    # per-category thresholds, with shrinkage toward the global one chosen by cross-validation on validation
    for key, (pv, pt, g) in {"sharnn": (ps_v, ps_t, variants["sharnn"]["threshold"]),
                             "tfidf": (pl_v, pl_t, variants["tfidf"]["threshold"]),
                             "stack": (st_v, st_t, st_thr)}.items():
        k_best, cv = choose_shrinkage(pv, yv, g)
        tuned = tune_category_thresholds(pv, yv, g)
        pos = yv.sum(0).astype(np.float64)
        add(f"{key}_pc_raw", f"{variants[key]['model']}, per-category thresholds (unshrunk)", pv, pt, g, tuned)
        if k_best > 0:
            add(f"{key}_pc_shrunk", f"{variants[key]['model']}, per-category thresholds (shrinkage k={k_best:g})",
                pv, pt, g, shrink(tuned, g, pos, k_best))
        params[f"{key}_shrinkage"] = {"k": k_best, "cv_sample_f1": cv}
    # the recipe: the best variant on validation sample-F1 of categories (test only reported)
    chosen = max(variants, key=lambda k: variants[k]["val"]["category_sample_f1"])
    log.info("chosen on validation: %s", chosen)
    # paired bootstrap intervals on test, every variant against tf-idf LR and the SHA-RNN
    scores = {k: _paper_scores(probs_t[k], yt, gi, len(groups), v["threshold"],
                               None if v["cat_thr"] is None else np.array(v["cat_thr"]))
              for k, v in variants.items()}
    for k, v in variants.items():
        v["paired_vs"] = {ref: {"category": paired_bootstrap(scores[k][0], scores[ref][0]),
                                "master": paired_bootstrap(scores[k][1], scores[ref][1])}
                          for ref in ("tfidf", "sharnn") if ref != k}
    arrays: dict[str, np.ndarray] = {"ids": np.array([records[i].id for i in te]), "y": yt}
    arrays.update({k: p.astype(np.float16) for k, p in probs_t.items()})
    np.savez_compressed(run / "predictions_temporal.npz", **arrays)  # type: ignore[arg-type]
    # the shipped head is pruned and stored in fp16: the chosen stack through that exact head, on test
    pruned_dir = run / "tfidf_temporal_pruned"
    pruned_dir.mkdir(exist_ok=True)
    prune = prune_threshold(head)
    size = head.save(pruned_dir, prune=prune)
    ph = TfidfHead.load(pruned_dir)
    pz_v, pz_t = head_logits(ph, [docs[i] for i in va]), head_logits(ph, [docs[i] for i in te])
    cv = variants[chosen]
    cthr = None if cv["cat_thr"] is None else np.array(cv["cat_thr"])
    if chosen.startswith("stack"):
        pp_v, pp_t = apply_stack(theta, [zs_v, pz_v]), apply_stack(theta, [zs_t, pz_t])
        params["pruned"] = {"prune": prune, **size,
                            "val": full_report(pp_v, yv, gi, groups, cv["threshold"], cthr),
                            "test": full_report(pp_t, yt, gi, groups, cv["threshold"], cthr)}
        log.info("chosen recipe with the pruned fp16 head (%.0f%% kept, %.1f MB): test %.4f / %.4f",
                 100 * size["kept_share"], size["mb"], params["pruned"]["test"]["category_sample_f1"],
                 params["pruned"]["test"]["master_sample_f1"])
    out = {"chosen": chosen, "params": params, "variants": variants, "lr_config": lr_cfg.__dict__,
           "splits": {k: {p: len(getattr(v, p)) for p in ("train", "val", "test")} for k, v in splits.items()}}
    if with_random:
        out["random"] = _random_split(run, records, splits["random"], docs, y, gi, groups, lr_cfg)
    (run / "selection.json").write_text(json.dumps(out, indent=1) + "\n")
    return out


def _terms(run: Path, records: list[Record]) -> list[list[str]]:
    """Every paper's terms, cached in the run directory (tokenising 135k papers takes minutes)."""
    cache = run / "terms.pkl"
    if cache.exists():
        with open(cache, "rb") as f:
            docs: list[list[str]] = pickle.load(f)  # our own cache in the run directory, never shipped
        if len(docs) == len(records):
            return docs
    docs = [paper_terms(r.title, r.abstract) for r in records]
    with open(cache, "wb") as f:
        pickle.dump(docs, f)
    return docs


def _random_split(run: Path, records: list[Record], s: Any, docs: list[list[str]], y: np.ndarray,
                  gi: np.ndarray, groups: list[str], lr_cfg: LrConfig) -> dict:
    t0 = time.time()
    head = train_head([docs[i] for i in s.train], y[s.train], lr_cfg)
    secs = time.time() - t0
    pv = sigmoid(head_logits(head, [docs[i] for i in s.val]))
    pt = sigmoid(head_logits(head, [docs[i] for i in s.test]))
    thr = tune_threshold(pv, y[s.val])
    res = {"tfidf": _variant("logistic regression (tf-idf)", "random", pv, y[s.val], pt, y[s.test], gi, groups,
                             thr, fit_seconds=round(secs, 1))}
    k, _ = choose_shrinkage(pv, y[s.val], thr)
    tuned = tune_category_thresholds(pv, y[s.val], thr)
    t = shrink(tuned, thr, y[s.val].sum(0).astype(np.float64), k)
    res["tfidf_pc_shrunk"] = _variant(f"logistic regression (tf-idf), per-category thresholds (shrinkage k={k:g})",
                                      "random", pv, y[s.val], pt, y[s.test], gi, groups, thr, t)
    np.savez_compressed(run / "predictions_random.npz", ids=np.array([records[i].id for i in s.test]),
                        y=y[s.test], tfidf=pt.astype(np.float16))
    return res


def _train_config() -> Any:
    from training.config import TrainConfig

    return TrainConfig()


def ship(run: Path, corpus: Path, sharnn_model: Path, dest: Path, lr_cfg: LrConfig, recipe: str | None,
         head_dir: Path | None = None) -> Path:
    """The shipped model directory: the SHA-RNN of ``sharnn_model``, a tf-idf head (``head_dir``, default one
    trained on every paper in ``run/tfidf_all``), and the selection run's combination (``recipe``, default the
    chosen one)."""
    sel = json.loads((run / "selection.json").read_text())
    recipe = recipe or sel["chosen"]
    v = sel["variants"][recipe]
    if not recipe.startswith("stack"):
        raise ValueError(f"only stacked recipes ship (the chosen one is {recipe!r})")
    labels = Labels.from_taxonomy()
    head_path = head_dir or run / "tfidf_all"
    if not (head_path / "tfidf_lr.npz").exists():
        records = load_records(corpus, labels, progress=False)
        t0 = time.time()
        head = train_head(_terms(run, records), multi_hot(records, labels), lr_cfg)
        head_path.mkdir(parents=True, exist_ok=True)
        head.save(head_path)
        (head_path / "fit.json").write_text(json.dumps({"minutes": (time.time() - t0) / 60,
                                                        "papers": len(records)}))
    head = TfidfHead.load(head_path)
    fit = json.loads((head_path / "fit.json").read_text()) if (head_path / "fit.json").exists() else {}
    tmp = dest.with_name(dest.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(sharnn_model, tmp)
    prune = prune_threshold(head)
    size = head.save(tmp, prune=prune)
    p = sel["params"]["stack"]
    cat_thr = v["cat_thr"] if v["cat_thr"] is not None else [v["threshold"]] * len(labels.codes)
    ens = {"recipe": recipe, "model": v["model"], "stack": p, "threshold": v["threshold"],
           "tfidf_head": head_path.name, "sharnn": sharnn_model.name,
           "thresholds": cat_thr, "tfidf_prune": round(prune, 5), "tfidf_kept_share": round(size["kept_share"], 4),
           "tfidf_train_papers": fit.get("papers"), "tfidf_train_minutes": round(fit.get("minutes", 0.0), 2),
           "selection": {"temporal_test": {k: v["test"][k] for k in ("category_sample_f1", "master_sample_f1",
                                                                    "category_macro_f1")}}}
    (tmp / ENSEMBLE_FILE).write_text(json.dumps(ens, indent=1) + "\n")
    config = json.loads((tmp / "config.json").read_text())
    config["name"] = dest.name
    (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    if dest.exists():
        shutil.rmtree(dest)
    tmp.replace(dest)
    log.info("shipped %s to %s (tf-idf head %.1f MB, %.0f%% of weights kept)", recipe, dest, size["mb"],
             100 * size["kept_share"])
    return dest


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    ap = argparse.ArgumentParser(description="ensemble selection on the temporal split, and the shipped model")
    ap.add_argument("step", choices=["select", "ship"])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=paths.SHARED_CORPUS)
    ap.add_argument("--sharnn", type=Path, default=paths.CLASSIFIER_DIR,
                    help="select: the SHA-RNN trained on the temporal train part (default: the shipped model's, "
                         "sharnn-v2's weights)")
    ap.add_argument("--sharnn-model", type=Path, help="ship: the SHA-RNN model directory to ship")
    ap.add_argument("--dest", type=Path, default=paths.CLASSIFIER_DIR)
    ap.add_argument("--recipe", help="ship: a variant of selection.json (default: the chosen one)")
    ap.add_argument("--tfidf-head", type=Path, help="ship: this trained tf-idf head (default: train on every paper)")
    ap.add_argument("--random", action="store_true", help="select: also tf-idf LR on the random split")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lr-epochs", type=int, default=LrConfig.epochs)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.run.mkdir(parents=True, exist_ok=True)
    cfg = LrConfig(epochs=args.lr_epochs)
    if args.step == "select":
        select(args.run, args.data, args.sharnn, cfg, args.random)
    else:
        if args.sharnn_model is None:
            ap.error("ship needs --sharnn-model")
        ship(args.run, args.data, args.sharnn_model, args.dest, cfg, args.recipe, args.tfidf_head)


if __name__ == "__main__":
    main()
