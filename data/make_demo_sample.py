"""Build ``data/demo_papers.jsonl.gz``, the real papers a fresh clone ships for the demo and the tests.

Takes every paper of the last two announcement days of the shared corpus (so the demo has a real "today"
to make a digest from), plus up to ``PER_CATEGORY`` papers per active category (primary first) from a fixed
random sample of the rest, so every group and almost every category of the taxonomy appears. Run once:
``python data/make_demo_sample.py [../shared/data/arxiv_corpus.jsonl.gz]``.
"""
from __future__ import annotations

import gzip
import json
import random
import sys
from collections import Counter
from pathlib import Path

PER_CATEGORY = 25
SEED = 7
LAST_DAYS = 2


def main(src: str = "../shared/data/arxiv_corpus.jsonl.gz", out: str = "data/demo_papers.jsonl.gz") -> None:
    records = [json.loads(line) for line in gzip.open(src, "rt", encoding="utf-8")]
    days = sorted({r["announced"] for r in records if r.get("announced")})
    last = set(days[-LAST_DAYS:])
    chosen = {r["id"]: r for r in records if r.get("announced") in last}
    rest = [r for r in records if r["id"] not in chosen and r.get("announced")]
    random.Random(SEED).shuffle(rest)
    per_cat: Counter[str] = Counter(c for r in chosen.values() for c in r["categories"][:1])
    for r in rest:  # primary categories first
        cat = r["categories"][0]
        if per_cat[cat] < PER_CATEGORY:
            chosen[r["id"]] = r
            per_cat[cat] += 1
    covered = {c for r in chosen.values() for c in r["categories"]}
    for r in rest:  # then cross-lists, for categories that rarely are primary
        missing = [c for c in r["categories"] if c not in covered]
        if missing and r["id"] not in chosen:
            chosen[r["id"]] = r
            covered.update(r["categories"])
    with gzip.open(out, "wt", encoding="utf-8", compresslevel=9) as f:
        for r in sorted(chosen.values(), key=lambda r: (r.get("announced") or "", r["id"])):
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{len(chosen)} papers, {len(covered)} categories, days {sorted(last)} -> {out} "
          f"({Path(out).stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main(*sys.argv[1:])
