"""Training curves as PNG: training loss per 50 steps and validation sample-F1 per epoch, from metrics.jsonl."""
from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def plot_metrics(metrics_path: Path, out_png: Path, title: str = "SHA-RNN") -> Path | None:
    if not metrics_path.exists():
        log.warning("no metrics at %s; no plot", metrics_path)
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    tr = [r for r in recs if r["kind"] == "train"]
    va = [r for r in recs if r["kind"] in ("val", "val_partial")]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    a1.plot([r["step"] for r in tr], [r["loss"] for r in tr])
    a1.set_xlabel("step")
    a1.set_ylabel("training loss (nested)")
    a1.set_title(title)
    a2.plot([r["step"] for r in va], [r["val_category_sample_f1"] for r in va], "o-", label="categories")
    a2.plot([r["step"] for r in va], [r["val_master_sample_f1"] for r in va], "s-", label="master")
    a2.set_xlabel("step")
    a2.set_ylabel("validation sample-F1")
    a2.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return out_png
