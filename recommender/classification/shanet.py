"""The simplified SHA-RNN category classifier network, shared by training and inference.

Frozen word vectors -> bidirectional GRU -> scaled dot-product self-attention over time -> attention pooling
to one vector -> linear projection to C category logits -> self-attention across the category logits ->
a "Boom" feed-forward block (C -> 512 -> C, GELU) -> category logits. Layer normalisation around the blocks,
GELU throughout. Master-category (group) logits are the "mix" of the two largest category logits inside each
group, computed in logit space: mix(x, y) = logit(1 - (1 - sigmoid x)(1 - sigmoid y))
= x + y + log(1 + e^-x + e^-y) = logsumexp(x, y, x + y), which is exact and stable for any magnitude.

Training weights each category's positives by w_c (rare categories count more), which moves the loss's optimum
from logit(p) to logit(p) + log w_c. ``calibrated_logits`` subtracts that ``prior_shift`` (saved with the
weights) so predicted probabilities are probabilities again and one threshold suits frequent and rare
categories alike.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

PAD, UNK = "-PAD-", "-UNK-"


@dataclass
class NetConfig:
    vocab_size: int
    embed_dim: int
    n_categories: int
    gru_hidden: int = 256
    cat_attn_dim: int = 32
    boom_dim: int = 512
    dropout: float = 0.1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mix_logits(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Logit of P(x or y) for independent events with logits x, y: logsumexp(x, y, x + y)."""
    return torch.logsumexp(torch.stack([x, y, x + y], dim=-1), dim=-1)


def master_logits(cat_logits: torch.Tensor, group_index: torch.Tensor, n_groups: int) -> torch.Tensor:
    """(B, G) master logits: mix of the two largest category logits of each group.

    ``group_index`` (C,) maps each category to its group. A group with a single category gets that logit.
    """
    b, c = cat_logits.shape
    neg = torch.finfo(cat_logits.dtype).min / 4
    masked = cat_logits.new_full((b, n_groups, c), neg)
    member = F.one_hot(group_index, n_groups).T.bool()  # (G, C)
    masked = torch.where(member.unsqueeze(0), cat_logits.unsqueeze(1), masked)
    top2 = masked.topk(2, dim=-1).values  # (B, G, 2)
    single = member.sum(-1) < 2
    mixed = mix_logits(top2[..., 0], top2[..., 1])
    return torch.where(single.unsqueeze(0), top2[..., 0], mixed)


class CategoryAttention(nn.Module):
    """Self-attention across the C category logits: each category is a token (its logit times a learned
    direction, plus a learned category embedding); the attended value is read back to one scalar per
    category and added to the logit (residual)."""

    def __init__(self, n_categories: int, dim: int) -> None:
        super().__init__()
        self.cat_embed = nn.Parameter(torch.randn(n_categories, dim) * 0.02)
        self.value_dir = nn.Parameter(torch.randn(dim) * 0.02)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, 1)
        self.scale = 1.0 / math.sqrt(dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        tokens = z.unsqueeze(-1) * self.value_dir + self.cat_embed  # (B, C, d)
        q, k, v = self.qkv(tokens).chunk(3, dim=-1)
        att = torch.softmax(q @ k.transpose(1, 2) * self.scale, dim=-1)
        out: torch.Tensor = z + self.out(F.gelu(att @ v)).squeeze(-1)
        return out


class Boom(nn.Module):
    """C -> boom -> C feed-forward block with GELU, residual."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.up = nn.Linear(dim, hidden)
        self.down = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = z + self.down(self.drop(F.gelu(self.up(z))))
        return out


class ShaRNN(nn.Module):
    prior_shift: torch.Tensor  # a buffer (saved with the weights), registered in __init__

    def __init__(self, cfg: NetConfig, vectors: torch.Tensor | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim, padding_idx=0)
        if vectors is not None:
            if tuple(vectors.shape) != (cfg.vocab_size, cfg.embed_dim):
                raise ValueError(f"vectors shape {tuple(vectors.shape)} != ({cfg.vocab_size}, {cfg.embed_dim})")
            self.embed.weight.data.copy_(vectors)
        self.embed.weight.requires_grad_(False)  # frozen word vectors
        self.embed_norm = nn.LayerNorm(cfg.embed_dim)
        # two directions as two GRUs over unpacked padded batches: a packed sequence makes torch's CPU GRU
        # ~10x slower; reversing each sequence's valid part for the backward GRU keeps padding out of both.
        self.gru_fwd = nn.GRU(cfg.embed_dim, cfg.gru_hidden, batch_first=True)
        self.gru_bwd = nn.GRU(cfg.embed_dim, cfg.gru_hidden, batch_first=True)
        h = 2 * cfg.gru_hidden
        self.seq_norm = nn.LayerNorm(h)
        self.att_norm = nn.LayerNorm(h)
        self.pool = nn.Linear(h, 1)
        self.drop = nn.Dropout(cfg.dropout)
        self.proj = nn.Linear(h, cfg.n_categories)
        self.cat_norm = nn.LayerNorm(cfg.n_categories)
        self.cat_attn = CategoryAttention(cfg.n_categories, cfg.cat_attn_dim)
        self.boom_norm = nn.LayerNorm(cfg.n_categories)
        self.boom = Boom(cfg.n_categories, cfg.boom_dim, cfg.dropout)
        self.scale = 1.0 / math.sqrt(h)
        self.register_buffer("prior_shift", torch.zeros(cfg.n_categories))  # log of the positive-class weights

    def calibrated_logits(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Category logits with the training-time positive-class weighting undone: what inference uses."""
        logits: torch.Tensor = self(ids, lengths) - self.prior_shift
        return logits

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """ids (B, T) int64 padded with 0, lengths (B,) -> category logits (B, C), as trained (weighted)."""
        x = self.embed_norm(self.embed(ids))
        mask = ids != 0  # (B, T)
        rev = reverse_index(lengths.to(ids.device), ids.shape[1]).unsqueeze(-1)
        h_fwd, _ = self.gru_fwd(x)  # padding comes after the valid steps: it cannot affect them
        h_bwd, _ = self.gru_bwd(x.gather(1, rev.expand(-1, -1, x.shape[-1])))
        h_bwd = h_bwd.gather(1, rev.expand(-1, -1, h_bwd.shape[-1]))
        hseq = self.seq_norm(torch.cat([h_fwd, h_bwd], dim=-1))
        scores = (hseq @ hseq.transpose(1, 2)) * self.scale  # scaled dot-product self-attention over time
        scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        hseq = self.att_norm(hseq + torch.softmax(scores, dim=-1) @ hseq)
        w = self.pool(hseq).squeeze(-1).masked_fill(~mask, float("-inf"))  # weighted sum to one vector
        doc = (torch.softmax(w, dim=-1).unsqueeze(-1) * hseq).sum(1)
        z = self.proj(self.drop(F.gelu(doc)))
        z = self.cat_attn(self.cat_norm(z))
        logits: torch.Tensor = self.boom(self.boom_norm(z))
        return logits


def reverse_index(lengths: torch.Tensor, total: int) -> torch.Tensor:
    """(B, T) time indices reversing each row's first ``length`` steps and leaving the padding in place
    (an involution: applying the gather twice restores the order)."""
    t = torch.arange(total, device=lengths.device).unsqueeze(0)
    lens = lengths.unsqueeze(1)
    return torch.where(t < lens, lens - 1 - t, t)


def count_trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
