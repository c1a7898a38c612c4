"""The learned ranker: the quick-check chooser, the features and the shipped combiner, and the product's paths
(`recommend`, digests) ranking with it."""
from __future__ import annotations

import numpy as np

from recommender.ranking.borderline import borderline


def test_borderline_picks_the_scores_nearest_the_threshold() -> None:
    scores = [0.9, 0.31, 0.05, 0.29, 0.5, float("nan"), 0.3]
    assert borderline(scores, 0.3, k=1) == [6]
    assert borderline(scores, 0.3, k=3) == [6, 1, 3]  # equal distance: the higher score first
    assert borderline(scores, 0.3, k=2, exclude=[6, 1]) == [3, 4]
    assert borderline(np.array(scores), 0.3, k=50) == [6, 1, 3, 4, 2, 0]  # the nan never
    assert borderline(scores, 0.3, k=0) == [] and borderline([], 0.3) == []
    assert borderline([float("nan")], 0.3) == []
