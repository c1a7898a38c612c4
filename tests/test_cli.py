"""The recommender's subcommands from the command line (``embed``, ``similar``, ``recommend`` and
``evaluate-recommender``), run through
``recommender.cli.main.main`` with the real model on a real store of 48 real papers in six topical clusters
(tests/fixtures/reco), and what the user sees when they get the arguments wrong.

One state directory serves the module (the model is exported into it once); every command finds it through
``--home``, as a user would point the CLI at their own state directory.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from recommender.cli.common import settings_from
from recommender.cli.main import main

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "reco" / "papers.jsonl"
EVAL_SLICE = Path(__file__).resolve().parent / "fixtures" / "eval_slice" / "papers.jsonl.gz"
GALAXY = ["2504.11531", "2504.11608", "2504.12079"]
QEC = "2511.15177"


@pytest.fixture(scope="module")
def clusters() -> dict[str, str]:
    return {json.loads(line)["id"]: json.loads(line)["cluster"] for line in FIXTURE.read_text().splitlines()}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The state directory the model tests share (the ONNX export is made once per session)."""
    return tmp_path_factory.getbasetemp() / "reco-model-home"


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    """The parsed JSON a command printed with ``--json`` (any JSON value)."""
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_embed_is_incremental_and_its_vectors_seed_another_home(home: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home", str(home), "import", str(FIXTURE)]) == 0
    first = run_json(capsys, "--home", str(home), "embed", "--export", str(tmp_path / "vectors.arrow"))
    assert isinstance(first, dict)
    assert first["vectors"] == 48 and first["embedded"] in (0, 48)  # 0 when an earlier test embedded them
    assert first["model"] and first["backend"]
    again = run_json(capsys, "--home", str(home), "embed")
    assert again == {**again, "embedded": 0, "seeded": 0, "vectors": 48}
    # a fresh state directory takes the exported vectors instead of embedding again
    other = tmp_path / "other"
    assert main(["--home", str(other), "import", str(FIXTURE)]) == 0
    seeded = run_json(capsys, "--home", str(other), "embed", "--seed", str(tmp_path / "vectors.arrow"))
    assert seeded == {**seeded, "seeded": 48, "embedded": 0, "vectors": 48}


def test_similar_by_id_and_by_text(home: Path, clusters: dict[str, str],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home", str(home), "import", str(FIXTURE)]) == 0
    assert main(["--home", str(home), "embed"]) == 0
    by_id = run_json(capsys, "--home", str(home), "similar", QEC, "-n", "4")
    assert isinstance(by_id, list) and len(by_id) == 4
    assert QEC not in [r["id"] for r in by_id]
    assert [clusters[r["id"]] for r in by_id] == ["qec"] * 4
    assert all(r["nearest_id"] == QEC for r in by_id)
    scores = [r["score"] for r in by_id]
    assert scores == sorted(scores, reverse=True)
    by_text = run_json(capsys, "--home", str(home), "similar", "galaxy", "formation", "and", "dust", "-n", "3")
    assert [clusters[r["id"]] for r in by_text] == ["galaxy"] * 3
    # the readable form: one numbered line per paper and its reason
    capsys.readouterr()
    assert main(["--home", str(home), "similar", f"https://arxiv.org/abs/{QEC}v2", "-n", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4 and out[0].startswith(" 1. ") and out[2].startswith(" 2. ")
    assert by_id[0]["id"] in out[0]


def test_recommend_from_likes_interests_and_candidates(home: Path, tmp_path: Path, clusters: dict[str, str],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home", str(home), "import", str(FIXTURE)]) == 0
    assert main(["--home", str(home), "embed"]) == 0
    recs = run_json(capsys, "--home", str(home), "recommend", "--like", *GALAXY, "-n", "4")
    assert isinstance(recs, list) and len(recs) == 4
    assert not set(GALAXY) & {r["id"] for r in recs}
    assert [clusters[r["id"]] for r in recs[:4]] == ["galaxy"] * 4
    by_interest = run_json(capsys, "--home", str(home), "recommend", "--interest",
                           "quantum error correction codes and decoders", "-n", "3")
    assert [clusters[r["id"]] for r in by_interest] == ["qec"] * 3
    # candidates from a file (comments skipped): only those are ranked
    wanted = [i for i, c in clusters.items() if c in ("protein", "galaxy") and i not in GALAXY]
    (tmp_path / "candidates.txt").write_text("# today's papers\n" + "\n".join(wanted) + "\n")
    ranked = run_json(capsys, "--home", str(home), "recommend", "--like", *GALAXY, "--candidates",
                      str(tmp_path / "candidates.txt"), "-n", "20")
    assert {r["id"] for r in ranked} <= set(wanted)
    assert [clusters[r["id"]] for r in ranked[:5]] == ["galaxy"] * 5
    # the papers announced on one day of the store
    day = run_json(capsys, "--home", str(home), "recommend", "--like", GALAXY[0], "--day", "2025-04-18")
    assert {r["id"] for r in day} == {"2504.12378", "2504.12394"}


@pytest.mark.parametrize("argv,message", [
    (["similar", "2513.00001"], "is not an arXiv id"),
    (["recommend", "-n", "3"], "give at least one --like ID or an --interest TEXT"),
    (["recommend", "--like", "2504.11531", "--day", "1999-01-01"], "no papers announced on 1999-01-01"),
    (["recommend", "--like", "2504.11531", "--candidates", "/nonexistent/ids.txt"], "no such file"),
    (["recommend", "--like", "banana"], "is not an arXiv id"),
])
def test_mistakes_are_one_line_with_status_2(home: Path, argv: list[str], message: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home", str(home), "import", str(FIXTURE)]) == 0
    capsys.readouterr()
    assert main(["--home", str(home), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith(f"arxiv-digest {argv[0]}: ")


@pytest.mark.slow  # ~4 min with the session's ONNX export on a loaded 2-core machine; seconds on a quiet one
def test_evaluate_recommender_on_a_corpus_slice(home: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """The offline evaluation end to end on 189 real papers (tests/fixtures/eval_slice: three announcement
    days, authors with earlier papers): author and mixed queries split dev/test, a method chosen on the dev
    half, the report written, and a second run served from the vector cache."""
    out, report = tmp_path / "eval.json", tmp_path / "eval.md"
    argv = ["--home", str(home), "evaluate-recommender", "--corpus", str(EVAL_SLICE), "--days", "3",
            "--min-day-papers", "20", "--categories", "0", "--background", "50", "--no-svm",
            "--out", str(out), "--report", str(report)]
    result = run_json(capsys, *argv)
    assert isinstance(result, dict)
    assert json.loads(out.read_text()) == result
    protocol = result["protocol"]
    assert protocol["window_days"] == {"2026-06-26": 25, "2026-06-29": 25, "2026-06-30": 25}
    assert set(protocol["queries"]) == {"author/dev", "author/test", "mixed/dev", "mixed/test"}
    assert protocol["embedded_papers"] == 189
    assert result["newly_embedded"] in (0, 189)  # 0 when the cache under <home>/eval already holds them
    chosen = result["chosen"]
    assert chosen.startswith(("softmax", "knn", "max", "lexsem")) and "cap" not in chosen
    results = result["results"]
    for name, by_proxy in results.items():
        for proxy in ("author", "mixed"):
            for split in ("dev", "test"):
                assert 0.0 <= by_proxy[proxy][split]["ndcg@10"] <= 1.0, (name, proxy, split)
    # the embeddings carry signal: an author's earlier papers find their new ones far better than chance
    for name in ("mean-of-likes", chosen):
        assert results[name]["author"]["test"]["ndcg@10"] > results["random"]["author"]["test"]["ndcg@10"] + 0.2
    assert f"| {chosen} **(chosen)** |" in report.read_text() and "## Dev half" in report.read_text()
    assert any(k.startswith(f"{chosen} - mean-of-likes (author, test") for k in result["comparisons"])
    again = run_json(capsys, *argv)
    assert isinstance(again, dict) and again["newly_embedded"] == 0 and again["results"] == {
        n: {**r, "seconds": again["results"][n]["seconds"]} for n, r in results.items()}


def test_home_on_the_command_line_beats_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """``--home X`` means X for every subcommand: its store and its config.toml, whatever
    $ARXIV_DIGEST_HOME says."""
    env_home, cli_home = tmp_path / "env-home", tmp_path / "cli-home"
    for h, size in ((env_home, 3), (cli_home, 7)):
        h.mkdir()
        (h / "config.toml").write_text(f"digest_size = {size}\n")
    monkeypatch.setenv("ARXIV_DIGEST_HOME", str(env_home))
    settings = settings_from(argparse.Namespace(home=str(cli_home)))
    assert settings.home == cli_home and settings.db_path.parent == cli_home and settings.digest_size == 7
    assert settings_from(argparse.Namespace(home=None)).digest_size == 3
    stats = run_json(capsys, "--home", str(cli_home), "stats")
    assert isinstance(stats, dict) and stats["database"] == str(cli_home / "arxiv_digest.sqlite")
    assert not (env_home / "arxiv_digest.sqlite").exists()
