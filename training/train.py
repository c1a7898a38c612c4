"""The SHA-RNN training loop: length-bucketed batches, AdamW, nested loss, per-epoch validation, resumable.

Validation computes sample-averaged F1 (per paper, over the whole validation subset) for categories and master
categories after every epoch; the best epoch's weights are kept (early stopping after ``patience`` epochs
without improvement). A checkpoint (model, optimiser, scheduler, position in the epoch, history) is written
every ``checkpoint_every`` steps and at every epoch end, so an interrupted run continues where it stopped.
Metrics go to ``metrics.jsonl``; ``plots.py`` draws the curves.
"""
from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from recommender.classification.shanet import NetConfig, ShaRNN, count_trainable
from training.config import TrainConfig
from training.loss import NestedLoss, group_targets, pos_weights
from training.metrics import master_sets, predict_sets, sample_f1, tune_threshold

log = logging.getLogger(__name__)


@dataclass
class TrainData:
    token_ids: list[np.ndarray]
    targets: np.ndarray  # (N, C)
    group_index: np.ndarray  # (C,)
    n_groups: int
    vectors: np.ndarray
    train: list[int]
    val: list[int]


RUNTIME_FIELDS = ("max_minutes", "threads", "checkpoint_every")  # may change between resumed sessions


def _experiment(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k not in RUNTIME_FIELDS}


def pad_batch(seqs: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([max(1, len(s)) for s in seqs], dtype=torch.long)
    ids = torch.zeros(len(seqs), int(lengths.max()), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.from_numpy(s.astype(np.int64))
    return ids, lengths


def bucket_batches(indices: list[int], lengths: list[int], batch_size: int, seed: int) -> list[list[int]]:
    """Shuffle, sort within chunks of 50 batches by length (little padding), shuffle the batches."""
    rng = random.Random(seed)
    idx = list(indices)
    rng.shuffle(idx)
    chunk = batch_size * 50
    batches = []
    for s in range(0, len(idx), chunk):
        part = sorted(idx[s:s + chunk], key=lambda i: lengths[i])
        batches += [part[j:j + batch_size] for j in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


@torch.no_grad()
def predict_probs(model: ShaRNN, token_ids: list[np.ndarray], indices: list[int], batch_size: int = 256,
                  progress: bool = True, desc: str = "predicting") -> np.ndarray:
    model.eval()
    device = model.prior_shift.device
    order = sorted(range(len(indices)), key=lambda k: len(token_ids[indices[k]]))
    out = np.zeros((len(indices), model.cfg.n_categories), dtype=np.float32)
    for s in tqdm(range(0, len(order), batch_size), desc=desc, disable=not progress, leave=False):
        ks = order[s:s + batch_size]
        ids, lengths = pad_batch([token_ids[indices[k]] for k in ks])
        out[ks] = torch.sigmoid(model.calibrated_logits(ids.to(device), lengths)).cpu().numpy()
    return out


def validate(model: ShaRNN, data: TrainData, indices: list[int], threshold: float | None = None) -> dict:
    """Sample-F1 on the validation papers at ``threshold``, or (None) at the threshold that is best for them,
    the same choice the final evaluation makes, so epochs are compared as they will be used."""
    probs = predict_probs(model, data.token_ids, indices, desc="validating")
    y = data.targets[indices]
    ym = group_targets(y, data.group_index, data.n_groups)
    thr = tune_threshold(probs, y) if threshold is None else threshold
    return {
        "val_category_sample_f1": sample_f1(y, predict_sets(probs, thr)),
        "val_master_sample_f1": sample_f1(ym, master_sets(probs, data.group_index, data.n_groups, thr)),
        "val_threshold": float(thr),
    }


def training_indices(data: TrainData, cfg: TrainConfig) -> list[int]:
    """The papers a model of this config learns from (all of the split's training part, or a fixed sample)."""
    idx = list(data.train)
    if cfg.max_train_papers and len(idx) > cfg.max_train_papers:
        idx = sorted(random.Random(cfg.seed).sample(idx, cfg.max_train_papers))
    return idx


def build_model(data: TrainData, cfg: TrainConfig) -> ShaRNN:
    """A fresh network; its ``prior_shift`` is the log of the positive-class weights its loss uses."""
    net = NetConfig(vocab_size=data.vectors.shape[0], embed_dim=data.vectors.shape[1],
                    n_categories=data.targets.shape[1], gru_hidden=cfg.gru_hidden,
                    cat_attn_dim=cfg.cat_attn_dim, boom_dim=cfg.boom_dim, dropout=cfg.dropout)
    model = ShaRNN(net, torch.from_numpy(data.vectors.astype(np.float32)))
    if cfg.prior_correction:
        w = pos_weights(data.targets[training_indices(data, cfg)], cfg.pos_weight_power, cfg.pos_weight_max)
        model.prior_shift.copy_(torch.log(w))
    return model


def load_weights(model: ShaRNN, source: Path | dict, device: torch.device | str = "cpu") -> None:
    """Load trained weights (a file or a state dict); those saved before ``prior_shift`` existed keep the one
    ``build_model`` set."""
    state = torch.load(source, map_location=device, weights_only=True) if isinstance(source, Path) else source
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if k != "prior_shift"]:
        raise ValueError(f"weights do not match the network ({missing}, {unexpected})")


def train(data: TrainData, cfg: TrainConfig, out_dir: Path, progress: bool = True) -> dict:
    """Train (or resume) in ``out_dir``; returns a summary. ``best.pt`` holds the best weights."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train_idx = training_indices(data, cfg)
    val_idx = list(data.val)
    if cfg.val_max_papers and len(val_idx) > cfg.val_max_papers:
        val_idx = sorted(random.Random(cfg.seed + 1).sample(val_idx, cfg.val_max_papers))

    model = build_model(data, cfg).to(device)
    if cfg.init_from:
        load_weights(model, Path(cfg.init_from), device)
        log.info("initialised from %s", cfg.init_from)
    log.info("SHA-RNN: %d trainable parameters; %d training papers, %d validation papers",
             count_trainable(model), len(train_idx), len(val_idx))
    y_train = data.targets[train_idx]
    crit = NestedLoss(torch.from_numpy(data.group_index), data.n_groups,
                      pos_weights(y_train, cfg.pos_weight_power, cfg.pos_weight_max),
                      pos_weights(group_targets(y_train, data.group_index, data.n_groups),
                                  cfg.pos_weight_power, cfg.pos_weight_max),
                      cfg.category_loss_weight, cfg.master_loss_weight).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    lengths = [len(t) for t in data.token_ids]
    steps_per_epoch = math.ceil(len(train_idx) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    warmup = min(300, total_steps // 10 + 1)

    def lr_at(step: int) -> float:  # linear warm-up, cosine decay to 5%
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, total_steps - warmup)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    state: dict[str, Any] = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "best": -1.0, "best_epoch": -1,
             "bad_epochs": 0, "history": [], "elapsed": 0.0}
    ckpt_path, best_path, metrics_path = out_dir / "checkpoint.pt", out_dir / "best.pt", out_dir / "metrics.jsonl"
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        saved = TrainConfig.from_dict(ck["config"]).to_dict()  # fields added since then take their defaults
        if _experiment(saved) != _experiment(cfg.to_dict()):
            raise ValueError(f"{ckpt_path} was written with a different config; use another --out or delete it")
        load_weights(model, ck["model"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        state = ck["state"]
        log.info("resuming at epoch %d step %d", state["epoch"], state["step_in_epoch"])

    def save_checkpoint() -> None:
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "state": state, "config": cfg.to_dict()}, tmp)
        tmp.replace(ckpt_path)

    def log_metrics(rec: dict) -> None:
        with open(metrics_path, "a") as f:
            f.write(json.dumps(rec) + "\n")

    started = time.time() - state["elapsed"]
    stopped = "finished"
    while state["epoch"] < cfg.epochs and state["bad_epochs"] < cfg.patience:
        epoch = state["epoch"]
        batches = bucket_batches(train_idx, lengths, cfg.batch_size, cfg.seed * 1000 + epoch)
        model.train()
        bar = tqdm(total=len(batches), initial=state["step_in_epoch"], desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   disable=not progress, unit="batch")
        run_loss, run_n, t0 = 0.0, 0, time.time()
        for b in range(state["step_in_epoch"], len(batches)):
            idx = batches[b]
            ids, lens = pad_batch([data.token_ids[i] for i in idx])
            y = torch.from_numpy(data.targets[idx].astype(np.float32))
            ym = torch.from_numpy(group_targets(data.targets[idx], data.group_index, data.n_groups).astype(np.float32))
            logits = model(ids.to(device), lens)
            loss, parts = crit(logits, y.to(device), ym.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            state["step_in_epoch"] = b + 1
            state["global_step"] += 1
            run_loss += parts["loss"]
            run_n += 1
            state["epoch_loss"] = state.get("epoch_loss", 0.0) + parts["loss"]
            state["epoch_batches"] = state.get("epoch_batches", 0) + 1
            bar.update(1)
            bar.set_postfix(loss=f"{parts['loss']:.4f}")
            if state["global_step"] % 50 == 0:
                log_metrics({"kind": "train", "epoch": epoch, "step": state["global_step"],
                             "loss": run_loss / run_n, "lr": sched.get_last_lr()[0],
                             "papers_per_s": run_n * cfg.batch_size / (time.time() - t0),
                             "elapsed_min": (time.time() - started) / 60})
                run_loss, run_n, t0 = 0.0, 0, time.time()
            if state["global_step"] % cfg.checkpoint_every == 0:
                state["elapsed"] = time.time() - started
                save_checkpoint()
            if cfg.max_minutes and (time.time() - started) / 60 > cfg.max_minutes:
                stopped = "time budget reached"
                break
        bar.close()
        if stopped != "finished":
            break
        val = validate(model, data, val_idx, cfg.val_threshold)
        rec = {"kind": "val", "epoch": epoch + 1, "step": state["global_step"],
               "train_loss": state.get("epoch_loss", 0.0) / max(1, state.get("epoch_batches", 0)), **val,
               "elapsed_min": (time.time() - started) / 60}
        log_metrics(rec)
        state["history"].append(rec)
        log.info("epoch %d: %s", epoch + 1, val)
        score = val["val_category_sample_f1"]
        if score > state["best"] or cfg.split == "all":  # "all" has no held-out papers: keep the last epoch
            state.update(best=score, best_epoch=epoch + 1, bad_epochs=0)
            torch.save(model.state_dict(), best_path)
        else:
            state["bad_epochs"] += 1
        state["epoch"] += 1
        state["step_in_epoch"] = 0
        state["epoch_loss"], state["epoch_batches"] = 0.0, 0
        state["elapsed"] = time.time() - started
        save_checkpoint()
    state["elapsed"] = time.time() - started
    if stopped != "finished":
        save_checkpoint()
        # the partial epoch may already beat the last validated one: validate it and keep the better weights
        val = validate(model, data, val_idx, cfg.val_threshold)
        log_metrics({"kind": "val_partial", "epoch": state["epoch"], "step": state["global_step"], **val,
                     "elapsed_min": state["elapsed"] / 60})
        if val["val_category_sample_f1"] > state["best"] or not best_path.exists():
            torch.save(model.state_dict(), best_path)
            state.update(best=val["val_category_sample_f1"], best_epoch=state["epoch"] + 1)
    summary = {"status": stopped, "epochs_done": state["epoch"], "best_epoch": state["best_epoch"],
               "best_val_category_sample_f1": state["best"], "train_minutes": state["elapsed"] / 60,
               "train_papers": len(train_idx), "trainable_parameters": count_trainable(model)}
    (out_dir / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
