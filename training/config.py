"""Every knob of the classifier pipeline in one place: data, splits, phrases, word vectors, network, training.

``TrainConfig`` is a plain dataclass so a run directory can record exactly what produced it (``config.json``)
and a resumed run can check it is continuing the same experiment. Defaults are the choices for the shipped
model on a 2-core CPU; the comments say why.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from recommender import paths

REPO_ROOT = paths.REPO_ROOT
SHARED_CORPUS = paths.SHARED_CORPUS
TAXONOMY_PATH = paths.TAXONOMY
SHIPPED_MODEL_DIR = paths.CLASSIFIER_DIR

DEFAULT_RUN_DIR = REPO_ROOT / "training" / "runs" / "main"


@dataclass
class TrainConfig:
    seed: int = 13
    # preprocessing: 99% of title+abstract pairs are under ~300 words; 224 tokens keeps ~90% of papers whole
    # and makes a training step ~25% cheaper than 300 (the GRU is the cost, linear in length).
    max_tokens: int = 224
    # splits
    temporal_test_weeks: int = 3  # the latest announced weeks: what the daily bot faces
    temporal_val_weeks: int = 1
    random_test_frac: float = 0.07
    random_val_frac: float = 0.04
    # phrases (word bigrams merged into one token, e.g. neural_network). Off: vectors trained on single words
    # scored better in the one comparison (docs/classifier_report.md), and the GRU composes bigrams itself.
    phrases: bool = False
    phrase_min_count: int = 30
    phrase_top_k: int = 15000
    phrase_threshold: float = 10.0
    # fastText skipgram vectors
    ft_dim: int = 100
    ft_epoch: int = 5
    ft_min_count: int = 5
    ft_threads: int = 2
    # vocabulary shipped with the model (fp16 vectors: 70k x 100 x 2 bytes = 14 MB)
    vocab_size: int = 70000
    vocab_min_count: int = 5
    # network
    gru_hidden: int = 256
    cat_attn_dim: int = 32
    boom_dim: int = 512
    dropout: float = 0.1
    # loss
    category_loss_weight: float = 0.9
    master_loss_weight: float = 0.1
    pos_weight_power: float = 0.5  # pos_weight = (neg/pos) ** power, clipped
    pos_weight_max: float = 30.0
    # undo the positive-class weighting at inference (logit - log pos_weight): calibrated probabilities, so one
    # global threshold fits every category (measured: +3.1 points test sample-F1 on the temporal split)
    prior_correction: bool = True
    # training
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    epochs: int = 3
    patience: int = 2
    max_train_papers: int | None = None
    max_minutes: float | None = None  # stop (after checkpointing) when exceeded; the run can be resumed
    checkpoint_every: int = 200  # steps
    val_max_papers: int | None = 4000  # per-epoch validation subset (fixed); final metrics use the full sets
    threads: int | None = None
    threshold: float = 0.5  # re-tuned on validation after training
    val_threshold: float | None = None  # per-epoch validation: None = tuned on the validation papers each epoch
    split: str = "temporal"  # which split this model is trained on: temporal | random
    init_from: str | None = None  # start from these weights (best.pt of an earlier run): a further epoch

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        return cls(**d)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        return cls.from_dict(json.loads(path.read_text()))
