"""Write the evaluation report (markdown + JSON) from a run directory's results.

Inputs: ``<run>/<split>/eval.json`` (SHA-RNN), ``<run>/baselines*.json`` (``training.baselines``),
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


def model_label(model_dir: Path) -> str:
    """'SHA-RNN, N epochs, word|phrase vectors' from a trained model's directory (config.json, eval.json);
    a run started from an earlier run's weights (init_from) counts that run's epochs too."""
    cfg = _load(model_dir / "config.json") or {}
    ev = _load(model_dir / "eval.json") or {}
    epochs = ev.get("train", {}).get("epochs_done", 0)
    seen = {model_dir.resolve()}
    init = cfg.get("init_from")
    while init:
        parent = Path(init).parent
        if parent.resolve() in seen:
            break
        seen.add(parent.resolve())
        epochs += (_load(parent / "eval.json") or {}).get("train", {}).get("epochs_done", 0)
        init = (_load(parent / "config.json") or {}).get("init_from")
    vectors = "phrase vectors" if cfg.get("phrases", True) else "word vectors"
    label = f"SHA-RNN, {epochs} epoch{'s' if epochs != 1 else ''}, {vectors}"
    best = ev.get("train", {}).get("best_epoch")
    if not cfg.get("init_from") and isinstance(best, int) and 0 < best < epochs:
        label = label.replace(f"{epochs} epochs", f"{epochs} epochs (weights of epoch {best})")
    if ev.get("prior_correction"):
        label += ", prior-corrected"
    if ev.get("train", {}).get("status", "finished") != "finished":
        label += " (partial)"
    return label


def collect(run_dirs: list[Path]) -> dict:
    """Every SHA-RNN evaluation and baseline result under the run directories (the first one's splits)."""
    results = []
    bigram = None
    for run_dir in run_dirs:
        for ev_path in sorted(run_dir.glob("*/eval.json")):
            ev = _load(ev_path)
            ev["model"] = model_label(ev_path.parent)
            ev["run"] = f"{run_dir.name}/{ev_path.parent.name}"
            results.append(ev)
            raw = ev.get("without_prior_correction")
            if raw:  # the same weights scored as the weighted loss left them
                results.append({**raw, "model": ev["model"].replace(", prior-corrected", ", uncorrected"),
                                "split": ev["split"], "run": ev["run"], "train": ev.get("train", {}),
                                "notes": "the same weights without the prior correction"})
        for path in sorted(run_dir.glob("baselines*.json")):
            results += _load(path) or []
        bigram = bigram or _load(run_dir / "bigram_comparison.json")
    return {"results": results, "bigram_comparison": bigram, "splits": _split_sizes(run_dirs[0])}


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
            ref = REFERENCE.get("SHA-RNN" if r["model"].startswith("SHA-RNN") else r["model"])
            ref_s = "–" if not ref else f"{ref[0]}%" + (f" / {ref[1]}%" if ref[1] else "")
            name = f"**{r['model']}**" if r["model"].startswith("SHA-RNN") else r["model"]
            lines.append(f"| {name} | {_pct(t['category_sample_f1'])} | {_pct(t['master_sample_f1'])} | "
                         f"{_pct(t['category_micro_f1'])} | {_pct(t['category_macro_f1'])} | "
                         f"{_pct(t['master_micro_f1'])} | {r['threshold']:.2f} | {t['papers']} | {ref_s} |")
        notes = [f"- {r['model']}: {r['notes']}" for r in rows if r.get("notes")]
        lines += [""] + notes + ([""] if notes else [])
        shas = [r for r in rows if r["model"].startswith("SHA-RNN") and "uncorrected" not in r["model"]]
        if shas:  # per group: the best SHA-RNN and the best baseline side by side
            best = shas[0]
            base = next((r for r in rows if not r["model"].startswith("SHA-RNN") and r["test"].get("per_group")
                         and r["test"]["papers"] == best["test"]["papers"]), None)
            head = "| group | test papers | master F1 | category micro-F1 within the group |"
            if base:
                head += f" {base['model']}: master F1 | its category micro-F1 |"
            lines += [f"Per group, {best['model']}, {split} test split:", "", head,
                      "|---" * (head.count("|") - 1) + "|"]
            for g, v in sorted(best["test"]["per_group"].items(), key=lambda kv: -kv[1]["papers"]):
                row = f"| {g} | {v['papers']} | {_pct(v['master_f1'])} | {_pct(v['category_micro_f1'])} |"
                if base:
                    b = base["test"]["per_group"].get(g, {})
                    row += f" {_pct(b.get('master_f1'))} | {_pct(b.get('category_micro_f1'))} |"
                lines.append(row)
            lines.append("")
        for sha in shas:
            tr = sha.get("train", {})
            lines += [f"Training ({sha['model']}): {tr.get('train_papers')} papers, status "
                      f"'{tr.get('status')}', {tr.get('train_minutes', 0):.0f} minutes of wall time for the "
                      f"network, {tr.get('trainable_parameters')} trainable parameters.", ""]
    bc = data.get("bigram_comparison")
    if bc:
        lines += ["### Word vectors with and without bigram phrases", "", bc.get("setup", ""), "",
                  "| vectors | categories sample-F1 | master sample-F1 |", "|---|---|---|"]
        for name, v in bc["results"].items():
            lines.append(f"| {name} | {_pct(v['category_sample_f1'])} | {_pct(v['master_sample_f1'])} |")
        lines.append("")
    return "\n".join(lines)


def _ci(d: dict) -> str:
    return f"{100 * d['diff']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"


def render_selection(sel: dict) -> str:
    """The ensemble selection run (``training.selection``): every variant fitted on validation, scored once on
    test, with paired bootstrap intervals (95%) of its per-paper F1 against tf-idf LR and the SHA-RNN."""
    sz = sel["splits"]["temporal"]
    lines = [f"### Temporal split: ensemble selection (train {sz['train']}, validation {sz['val']}, "
             f"test {sz['test']} papers)", "",
             "| model | val categories sample-F1 | categories sample-F1 | master sample-F1 | categories micro-F1 "
             "| categories macro-F1 | master micro-F1 | threshold | vs tf-idf LR: categories | master "
             "| vs SHA-RNN: categories | master |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = sorted(sel["variants"].items(), key=lambda kv: -kv[1]["test"]["category_sample_f1"])
    for key, v in rows:
        t = v["test"]
        pv = v.get("paired_vs", {})
        lr = pv.get("tfidf")
        sh = pv.get("sharnn")
        shipped = sel.get("shipped", sel["chosen"])
        name = f"**{v['model']}** (shipped)" if key == shipped else v["model"]
        if key == sel["chosen"] and key != shipped:
            name += " (best validation score: in-sample thresholds)"
        thr = f"{v['threshold']:.2f}" + (" + per category" if v.get("cat_thr") else "")
        lines.append(f"| {name} | {_pct(v['val']['category_sample_f1'])} | {_pct(t['category_sample_f1'])} | "
                     f"{_pct(t['master_sample_f1'])} | {_pct(t['category_micro_f1'])} | "
                     f"{_pct(t['category_macro_f1'])} | {_pct(t['master_micro_f1'])} | {thr} | "
                     f"{_ci(lr['category']) if lr else '–'} | {_ci(lr['master']) if lr else '–'} | "
                     f"{_ci(sh['category']) if sh else '–'} | {_ci(sh['master']) if sh else '–'} |")
    chosen = sel["variants"][sel.get("shipped", sel["chosen"])]
    lr_v = sel["variants"]["tfidf"]
    lines += ["", f"Per group, {chosen['model']} (shipped), temporal test split:", "",
              "| group | test papers | master F1 | category micro-F1 within the group | tf-idf LR: master F1 "
              "| its category micro-F1 |", "|---|---|---|---|---|---|"]
    for g, v in sorted(chosen["test"]["per_group"].items(), key=lambda kv: -kv[1]["papers"]):
        b = lr_v["test"]["per_group"].get(g, {})
        lines.append(f"| {g} | {v['papers']} | {_pct(v['master_f1'])} | {_pct(v['category_micro_f1'])} | "
                     f"{_pct(b.get('master_f1'))} | {_pct(b.get('category_micro_f1'))} |")
    rnd = sel.get("random")
    if rnd:
        rs = sel["splits"]["random"]
        lines += ["", f"### Random split (train {rs['train']}, validation {rs['val']}, test {rs['test']} papers)",
                  "", "| model | categories sample-F1 | master sample-F1 | categories micro-F1 | categories macro-F1 "
                  "| master micro-F1 | threshold |", "|---|---|---|---|---|---|---|"]
        for v in rnd.values():
            t = v["test"]
            lines.append(f"| {v['model']} | {_pct(t['category_sample_f1'])} | {_pct(t['master_sample_f1'])} | "
                         f"{_pct(t['category_micro_f1'])} | {_pct(t['category_macro_f1'])} | "
                         f"{_pct(t['master_micro_f1'])} | {v['threshold']:.2f} |")
    return "\n".join(lines) + "\n"


def write_report(run_dirs: list[Path] | None = None, md_path: Path = REPO_ROOT / "docs" / "classifier_report.md",
                 json_path: Path = REPO_ROOT / "training" / "reports" / "classifier_report.json",
                 preamble: str = "", epilogue: str = "") -> None:
    data = collect(run_dirs or [DEFAULT_RUN_DIR])
    md_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    md_path.write_text(preamble + render(data) + "\n" + epilogue)
    log.info("wrote %s and %s", md_path, json_path)


PREAMBLE = """# Category classifier: evaluation report

Generated by `python -m training.report --run training/runs/v2 training/runs/main --epilogue
training/reports/discussion.md` from the run directories (not committed); every number below is also in
`training/reports/classifier_report.json`. The shipped model is `data/models/sharnn-v2`: the SHA-RNN trained
for 3 epochs on the temporal split's training part, word vectors, prior-corrected (row 1 of the temporal
table). `training/runs/main` holds the previous session's runs (`sharnn-v1`, phrase vectors) and the
baselines; both run directories use the same splits (identical `splits.json`).

## Setup
- Data: `../shared/data/arxiv_corpus.jsonl.gz`, 135,205 real papers; labels are the 149 active canonical
  categories (aliases and subsumed archives mapped); 170 papers without a known active category dropped.
  Master categories: the 8 taxonomy groups with active categories.
- Splits (seed 13): **temporal**: the latest 3 announced weeks are test, the week before is validation,
  everything earlier (and the ~1,000 undated old papers) is train; **random**: 7% test, 4% validation.
- Preprocessing (`recommender/textprep.py`, shared with inference): maths -> `-EQN-`, title/abstract markers,
  NFKC + lower-case, word tokens, cap 224 tokens (~90% of papers whole). The `phrase vectors` runs also merged
  15,000 learned bigram phrases (e.g. `neural_network`) into single tokens; the `word vectors` runs do not.
- Word vectors: fastText skipgram, 100-d, 5 epochs, on the papers that are in the training part of both splits
  (110,106 papers, ~20M tokens), trimmed to the vocabulary (64,332 tokens with count >= 5 for word vectors),
  frozen, shipped in fp16. Training them took 9.7 minutes on 2 threads.
- SHA-RNN (`recommender/shanet.py`): frozen embeddings -> bidirectional GRU (2 x 256) -> scaled dot-product
  self-attention over time -> attention pooling -> linear to 149 logits -> self-attention across the category
  logits -> Boom block (149 -> 512 -> 149, GELU), layer norms around the blocks; 790,920 trainable parameters.
  Nested loss: 0.9 x weighted BCE on categories + 0.1 x weighted BCE on master logits = mix of the two largest
  category logits of each group (pos_weight w_c = sqrt(neg/pos), clipped to 30). AdamW, lr 2e-3, warm-up then
  cosine decay over the run, batch 64, length-bucketed batches.
- **Prior correction** (`prior-corrected` rows): the weighted loss is minimised at logit(p) + log w_c rather
  than logit(p), so raw probabilities are inflated by a different factor per category. At inference the network
  subtracts log w_c (`ShaRNN.prior_shift`, computed from the training labels, saved with the weights); nothing
  is fitted on validation or test. `uncorrected` rows score the very same weights without it.
- Budget: `sharnn-v2` (temporal) took 9.7 min of fastText + 48 min for 3 epochs at ~125 papers/s on 2 free
  cores, about 60 minutes end to end; the random-split model uses the same recipe and vectors (another ~50
  minutes). Validation after each epoch at that epoch's tuned threshold; the best epoch is kept. The previous
  session's `phrase vectors` runs were trained on a CPU shared with other jobs (25-100 papers/s), one epoch
  each, plus one further epoch (warm restart at lr 1e-3) for the temporal one.
- Predictions: every category with probability >= threshold, always at least the top one; one global threshold
  per model, tuned on the validation part, for every model (SHA-RNN and baselines alike). Master categories: for
  every model, the group's probability is the mix 1 - (1 - p1)(1 - p2) of its two most probable categories;
  predicted masters are those >= threshold plus the group of the top category.
- Sample-F1 is per-paper F1 averaged over all test papers. Macro-F1 is over the categories present in the test
  part.
- Reference (the design this product was built from): SHA-RNN ~65% / ~93% sample-F1 (categories / master)
  with ~1.3M training papers; baselines NB 40%, LR 45%, RF 9%.

## Results (test parts)

"""


def main() -> None:
    import argparse

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    ap = argparse.ArgumentParser(description="write the classifier evaluation report")
    ap.add_argument("--run", type=Path, nargs="+", default=[DEFAULT_RUN_DIR],
                    help="run directories (SHA-RNN evaluations and baselines of all are reported together)")
    ap.add_argument("--epilogue", type=Path, help="markdown file appended after the tables (discussion)")
    ap.add_argument("--selection", type=Path,
                    help="print the ensemble selection tables of this selection.json (training.selection) only")
    args = ap.parse_args()
    if args.selection:
        print(render_selection(json.loads(args.selection.read_text())))
        return
    write_report(args.run, preamble=PREAMBLE, epilogue=args.epilogue.read_text() if args.epilogue else "")


if __name__ == "__main__":
    main()
