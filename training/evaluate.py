"""Score a model directory on any corpus-format JSONL: the ``evaluate-classifier`` command."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from recommender.classification.classify import Classifier, ClassifierError, Encoded
from training.data import Labels, load_records
from training.metrics import full_report

log = logging.getLogger(__name__)


def evaluate_file(path: Path, model_dir: Path | None = None, batch_size: int = 256) -> dict:
    clf = Classifier.load(model_dir)
    labels = Labels.from_taxonomy()
    records = load_records(path, labels)
    pos = {c: i for i, c in enumerate(clf.codes)}
    y = np.zeros((len(records), len(clf.codes)), dtype=np.uint8)
    encoded: list[Encoded | None] = []
    for n, r in enumerate(records):
        for c in r.labels:
            if c in pos:
                y[n, pos[c]] = 1
        try:
            encoded.append(clf.encode(r.title, r.abstract))
        except ClassifierError:  # empty title and abstract
            encoded.append(None)
    keep = [i for i, e in enumerate(encoded) if e is not None]
    probs = np.zeros((len(keep), len(clf.codes)), dtype=np.float32)
    for s in tqdm(range(0, len(keep), 2048), desc="classifying", unit="chunk"):
        ks = keep[s:s + 2048]
        probs[s:s + len(ks)] = clf.probabilities([e for k in ks if (e := encoded[k]) is not None], batch_size)
    report = full_report(probs, y[keep], clf.group_index, clf.groups, clf.threshold, clf.thresholds)
    report["model"] = str(model_dir or "shipped")
    report["skipped_empty"] = len(records) - len(keep)
    return report
