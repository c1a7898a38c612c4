"""Write the evaluation report (markdown + JSON) from a run directory's results.

Inputs: ``<run>/<split>/eval.json`` (SHA-RNN), ``<run>/baselines.json`` (``training.baselines``),
``<run>/bigram_comparison.json`` (``training.compare_vectors``), if present. Outputs the markdown report and a
JSON file with every number in it.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from training.config import DEFAULT_RUN_DIR, REPO_ROOT

log = logging.getLogger(__name__)

REFERENCE = {"SHA-RNN": (65, 93), "multinomial NB (tf-idf)": (40, None), "logistic regression (tf-idf)": (45, None),
             "random forest (tf-idf)": (9, None)}


def _load(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def collect(run_dir: Path) -> dict:
    results = []
    for split in ("temporal", "random"):
        ev = _load(run_dir / split / "eval.json")
        if ev:
            results.append(ev)
    results += _load(run_dir / "baselines.json") or []
    return {"results": results, "bigram_comparison": _load(run_dir / "bigram_comparison.json"),
            "splits": _split_sizes(run_dir)}


def _split_sizes(run_dir: Path) -> dict:
    s = _load(run_dir / "splits.json") or {}
    return {k: {p: len(v[p]) for p in ("train", "val", "test")} for k, v in s.items()}


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def render(data: dict) -> str:
    lines: list[str] = []
    res = data["results"]
    for split in ("temporal", "random"):
        rows = [r for r in res if r["split"] == split]
        if not rows:
            continue
        sz = data["splits"].get(split, {})
        lines += [f"### {split.capitalize()} split (train {sz.get('train', '?')}, validation {sz.get('val', '?')}, "
                  f"test {sz.get('test', '?')} papers)", "",
                  "| model | categories sample-F1 | master sample-F1 | categories micro-F1 | categories macro-F1 "
                  "| master micro-F1 | threshold | test papers | reference (cat / master) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        rows.sort(key=lambda r: -r["test"]["category_sample_f1"])
        for r in rows:
            t = r["test"]
            ref = REFERENCE.get(r["model"])
            ref_s = "–" if not ref else f"{ref[0]}%" + (f" / {ref[1]}%" if ref[1] else "")
            name = f"**{r['model']}**" if r["model"] == "SHA-RNN" else r["model"]
            lines.append(f"| {name} | {_pct(t['category_sample_f1'])} | {_pct(t['master_sample_f1'])} | "
                         f"{_pct(t['category_micro_f1'])} | {_pct(t['category_macro_f1'])} | "
                         f"{_pct(t['master_micro_f1'])} | {r['threshold']:.2f} | {t['papers']} | {ref_s} |")
        notes = [f"- {r['model']}: {r['notes']}" for r in rows if r.get("notes")]
        lines += [""] + notes + ([""] if notes else [])
        sha = next((r for r in rows if r["model"] == "SHA-RNN"), None)
        if sha:
            lines += [f"Per group, SHA-RNN, {split} test split:", "",
                      "| group | test papers | master F1 | category micro-F1 within the group |", "|---|---|---|---|"]
            for g, v in sorted(sha["test"]["per_group"].items(), key=lambda kv: -kv[1]["papers"]):
                lines.append(f"| {g} | {v['papers']} | {_pct(v['master_f1'])} | {_pct(v['category_micro_f1'])} |")
            tr = sha.get("train", {})
            lines += ["", f"Training: {tr.get('train_papers')} papers, {tr.get('epochs_done')} full epoch(s), "
                          f"status '{tr.get('status')}', best epoch {tr.get('best_epoch')}, "
                          f"{tr.get('train_minutes', 0):.0f} minutes, {tr.get('trainable_parameters')} "
                          "trainable parameters.", ""]
    bc = data.get("bigram_comparison")
    if bc:
        lines += ["### Word vectors with and without bigram phrases", "", bc.get("setup", ""), "",
                  "| vectors | categories sample-F1 | master sample-F1 |", "|---|---|---|"]
        for name, v in bc["results"].items():
            lines.append(f"| {name} | {_pct(v['category_sample_f1'])} | {_pct(v['master_sample_f1'])} |")
        lines.append("")
    return "\n".join(lines)


def write_report(run_dir: Path = DEFAULT_RUN_DIR, md_path: Path = REPO_ROOT / "docs" / "classifier_report.md",
                 json_path: Path = REPO_ROOT / "training" / "reports" / "classifier_report.json",
                 preamble: str = "", epilogue: str = "") -> None:
    data = collect(run_dir)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    md_path.write_text(preamble + render(data) + "\n" + epilogue)
    log.info("wrote %s and %s", md_path, json_path)
