"""The nested loss: weighted BCE on categories plus weighted BCE on master categories (mixed logits).

Class weights come from label frequencies in the training set: pos_weight = (negatives / positives) ** power,
clipped to [1, max], so rare categories count more without letting a 20-paper category dominate.
total = category_weight * category loss + master_weight * master loss (0.9 / 0.1 by default).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from recommender.classification.shanet import master_logits


def pos_weights(targets: np.ndarray, power: float, max_weight: float) -> torch.Tensor:
    pos = targets.sum(0).astype(np.float64)
    neg = targets.shape[0] - pos
    w = np.clip((neg / np.maximum(pos, 1.0)) ** power, 1.0, max_weight)
    return torch.tensor(w, dtype=torch.float32)


def group_targets(targets: np.ndarray, group_index: np.ndarray, n_groups: int) -> np.ndarray:
    """(N, G) multi-hot of master categories from (N, C) category targets."""
    out = np.zeros((targets.shape[0], n_groups), dtype=targets.dtype)
    for g in range(n_groups):
        out[:, g] = targets[:, group_index == g].max(1)
    return out


class NestedLoss(nn.Module):
    group_index: torch.Tensor  # buffers, registered in __init__
    cat_pw: torch.Tensor
    master_pw: torch.Tensor

    def __init__(self, group_index: torch.Tensor, n_groups: int, cat_pos_weight: torch.Tensor,
                 master_pos_weight: torch.Tensor, category_weight: float = 0.9, master_weight: float = 0.1) -> None:
        super().__init__()
        self.register_buffer("group_index", group_index.long())
        self.register_buffer("cat_pw", cat_pos_weight)
        self.register_buffer("master_pw", master_pos_weight)
        self.n_groups = n_groups
        self.category_weight, self.master_weight = category_weight, master_weight

    def forward(self, logits: torch.Tensor, y_cat: torch.Tensor, y_master: torch.Tensor) -> tuple[torch.Tensor, dict]:
        cat = F.binary_cross_entropy_with_logits(logits, y_cat, pos_weight=self.cat_pw)
        m_logits = master_logits(logits, self.group_index, self.n_groups)
        master = F.binary_cross_entropy_with_logits(m_logits, y_master, pos_weight=self.master_pw)
        total = self.category_weight * cat + self.master_weight * master
        return total, {"loss": total.item(), "cat_loss": cat.item(), "master_loss": master.item()}
