"""Bulk import: the snapshot format, our corpus format, bad lines, truncated gzip, category filters."""
from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from recommender.sources.importer import ImportFileError, import_file, iter_file
from recommender.store import Store

from .conftest import DEMO, FIXTURES

SNAPSHOT = FIXTURES / "kaggle_snapshot_sample.jsonl"


def test_snapshot_sample_import_and_reimport(store: Store) -> None:
    report, stats = import_file(store, SNAPSHOT)
    assert report.read == 200 and report.bad_lines == 0 and stats["inserted"] == 200
    p = store.get_paper("0704.0001")
    assert p.title.startswith("Calculation of prompt diphoton") and "\n" not in p.title
    assert p.categories == ["hep-ph"] and p.version == 2 and p.doi == "10.1103/PhysRevD.76.013009"
    assert p.published == "2007-04-02T19:18:42Z" and len(p.authors) == 4
    again = import_file(store, SNAPSHOT)[1]
    assert again == {"inserted": 0, "updated": 0, "unchanged": 200}


def test_corpus_format_gzip_and_plain(store: Store, tmp_path: Path) -> None:
    plain = tmp_path / "demo.jsonl"
    with gzip.open(DEMO, "rb") as src, open(plain, "wb") as dst:
        shutil.copyfileobj(src, dst)
    a = list(iter_file(DEMO))
    b = list(iter_file(plain))
    assert len(a) == len(b) > 2000 and a[5] == b[5]
    assert all(p.categories[0] for p in a)


def test_bad_lines_skipped_and_counted(store: Store, tmp_path: Path) -> None:
    lines = SNAPSHOT.read_text().splitlines()[:20]
    lines.insert(3, '{"id": "0704.9999", "title": ')          # bad JSON
    lines.insert(7, '["not", "an", "object"]')
    lines.insert(9, '{"id": "banana", "title": "x", "categories": "cs.LG"}')  # invalid id
    lines.insert(11, '{"id": "0704.0002"}')                     # no title
    f = tmp_path / "snap.jsonl"
    f.write_text("\n".join(lines) + "\n")
    report, stats = import_file(store, f)
    assert report.bad_lines == 4 and stats["inserted"] == 20
    assert any("line 4" in e for e in report.bad_examples)


def test_truncated_gzip_writes_nothing(store: Store, tmp_path: Path) -> None:
    data = DEMO.read_bytes()
    f = tmp_path / "cut.jsonl.gz"
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImportFileError, match="truncated"):
        import_file(store, f)
    assert store.count_papers() == 0


def test_category_filter_with_archives(store: Store) -> None:
    report, stats = import_file(store, DEMO, categories={"astro-ph", "cs.LG"})
    assert report.skipped_category > 0 and stats["inserted"] > 100
    for p in store.iter_papers():
        assert any(c == "cs.LG" or c.startswith("astro-ph") for c in p.categories)


def test_missing_file(store: Store, tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="no such file"):
        import_file(store, tmp_path / "nope.jsonl")


def test_not_json_at_all(store: Store, tmp_path: Path) -> None:
    f = tmp_path / "feed.xml"
    f.write_text("<html>not json</html>\n<p>\n")
    report, stats = import_file(store, f)
    assert report.bad_lines == 2 and stats["inserted"] == 0
