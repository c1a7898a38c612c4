"""Train/validation/test splits with fixed seeds: a random split and a temporal split.

The temporal split puts the latest announced weeks in test (and the weeks just before in validation), which is
what a daily bot faces: next week's papers, classified by a model trained on the past. Papers without an
announcement date (the ~1,000 old ones) always go to train in the temporal split.
"""
from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from training.data import Record


@dataclass
class Split:
    name: str
    train: list[int]
    val: list[int]
    test: list[int]

    def to_dict(self, records: list[Record]) -> dict:
        return {"name": self.name, **{k: [records[i].id for i in getattr(self, k)] for k in ("train", "val", "test")}}


def random_split(records: list[Record], test_frac: float, val_frac: float, seed: int) -> Split:
    idx = list(range(len(records)))
    random.Random(seed).shuffle(idx)
    n_test, n_val = int(len(idx) * test_frac), int(len(idx) * val_frac)
    return Split("random", sorted(idx[n_test + n_val:]), sorted(idx[n_test:n_test + n_val]), sorted(idx[:n_test]))


def temporal_split(records: list[Record], test_weeks: int, val_weeks: int) -> Split:
    dated = [r.announced for r in records if r.announced]
    if not dated:
        raise ValueError("no paper has an 'announced' date: a temporal split is impossible")
    last = dt.date.fromisoformat(max(dated))
    test_from = (last - dt.timedelta(weeks=test_weeks)).isoformat()
    val_from = (last - dt.timedelta(weeks=test_weeks + val_weeks)).isoformat()
    train, val, test = [], [], []
    for i, r in enumerate(records):
        a = r.announced
        if a and a > test_from:
            test.append(i)
        elif a and a > val_from:
            val.append(i)
        else:
            train.append(i)
    if not test or not val:
        raise ValueError("temporal split left test or validation empty; use fewer weeks or more data")
    return Split("temporal", train, val, test)
