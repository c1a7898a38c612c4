"""Write a trained SHA-RNN as a self-contained model directory that ``recommender.classification.classify`` loads.

Files: config.json (network, length cap, threshold, provenance), labels.json, vocab.txt, phrases.txt,
vectors.f16.npy (frozen vectors in fp16, the bulk of the size), weights.pt (trainable weights, fp32), and
metrics.json. The embedding matrix is not duplicated inside weights.pt.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import torch

from recommender.classification.shanet import ShaRNN
from training.data import Labels

log = logging.getLogger(__name__)


def export_model(model: ShaRNN, out_dir: Path, *, vocab: list[str], phrases: list[str], labels: Labels,
                 max_tokens: int, threshold: float, metrics: dict, provenance: dict) -> Path:
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if k != "embed.weight"}
    torch.save(state, tmp / "weights.pt")
    np.save(tmp / "vectors.f16.npy", model.embed.weight.detach().cpu().numpy().astype(np.float16))
    (tmp / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (tmp / "phrases.txt").write_text("\n".join(phrases) + ("\n" if phrases else ""), encoding="utf-8")
    (tmp / "labels.json").write_text(json.dumps(labels.to_dict(), indent=1) + "\n")
    config = {"name": out_dir.name, "net": model.cfg.to_dict(), "max_tokens": max_tokens,
              "threshold": threshold, "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              **provenance}
    (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.replace(out_dir)
    size = sum(f.stat().st_size for f in out_dir.iterdir()) / 1e6
    log.info("exported model to %s (%.1f MB)", out_dir, size)
    return out_dir
