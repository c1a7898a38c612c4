"""One controlled comparison: fastText vectors trained with bigram phrases versus without.

Both variants are trained on the same random subsample of the vector-training papers with identical fastText
settings; each is scored by a cheap proxy task, logistic regression (one-vs-rest) on the mean word vector of
each paper, trained on that subsample and scored on the temporal split's test part, threshold tuned on its
validation part. It favoured single words, which the shipped model (``sharnn-v2``) uses; the SHA-RNN was not
trained both ways under one budget (see docs/classifier_report.md).
"""
from __future__ import annotations

import argparse
import json
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from tqdm import tqdm

from recommender.classification.textprep import corpus_line, preprocess
from training.config import TrainConfig
from training.data import Labels, load_records
from training.metrics import full_report, tune_threshold
from training.prepare import make_splits, multi_hot, vector_train_indices
from training.vectors import train_fasttext, write_corpus_text

log = logging.getLogger(__name__)


def mean_vectors(model, token_lists: list[list[str]]) -> np.ndarray:
    out = np.zeros((len(token_lists), model.get_dimension()), dtype=np.float32)
    for i, toks in enumerate(token_lists):
        vs = [model.get_word_vector(t) for t in toks]
        if vs:
            out[i] = np.mean(vs, axis=0)
    return out


def compare(data: Path, run_dir: Path, n_papers: int, cfg: TrainConfig) -> dict:
    import fasttext

    labels = Labels.from_taxonomy()
    records = load_records(data, labels)
    splits = make_splits(records, cfg)
    pool = vector_train_indices(splits)
    sub = sorted(random.Random(cfg.seed).sample(pool, min(n_papers, len(pool))))
    phrases = frozenset(p for p in (run_dir / "phrases.txt").read_text().splitlines() if p)
    t = splits["temporal"]
    y = multi_hot(records, labels)
    gi = np.array([labels.groups.index(labels.group_of[c]) for c in labels.codes])
    work = run_dir / "bigram_comparison"
    work.mkdir(exist_ok=True)
    results = {}
    for name, ph in (("skipgram + bigram phrases", phrases), ("skipgram, words only", frozenset())):
        key = "phrases" if ph else "words"
        text, model_path = work / f"{key}.txt", work / f"{key}.bin"
        if not model_path.exists():
            write_corpus_text((corpus_line(records[i].title, records[i].abstract, ph) for i in sub), text)
            train_fasttext(text, model_path, cfg.ft_dim, cfg.ft_epoch, cfg.ft_min_count, 1)
        model = fasttext.load_model(str(model_path))

        def feats(idx: list[int], ph: frozenset[str] = ph, model: Any = model, key: str = key) -> np.ndarray:
            toks = [preprocess(records[i].title, records[i].abstract, cfg.max_tokens, ph)
                    for i in tqdm(idx, desc=f"features ({key})", leave=False)]
            return mean_vectors(model, toks)

        present = y[sub].sum(0) > 0
        clf = OneVsRestClassifier(LogisticRegression(C=10.0, max_iter=300)).fit(feats(sub), y[sub][:, present])

        def probs(idx: list[int], present: np.ndarray = present, clf: Any = clf) -> np.ndarray:
            out = np.zeros((len(idx), y.shape[1]), dtype=np.float32)
            out[:, present] = clf.predict_proba(feats(idx))
            return out

        pv = probs(t.val)
        thr = tune_threshold(pv, y[t.val])
        rep = full_report(probs(t.test), y[t.test], gi, labels.groups, thr)
        results[name] = rep
        log.info("%s: sample-F1 %.4f / %.4f", name, rep["category_sample_f1"], rep["master_sample_f1"])
    return {"setup": f"fastText skipgram, {cfg.ft_dim}-d, {cfg.ft_epoch} epochs, minCount {cfg.ft_min_count}, trained "
                     f"on the same {len(sub)} papers; proxy: one-vs-rest logistic regression on the mean word vector "
                     f"of each paper, trained on those papers, scored on the temporal test split "
                     f"({len(t.test)} papers).", "results": results}


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--papers", type=int, default=20000)
    args = ap.parse_args()
    out = compare(args.data, args.run, args.papers, TrainConfig())
    (args.run / "bigram_comparison.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
