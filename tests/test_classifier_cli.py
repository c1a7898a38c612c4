"""The classifier's command-line surface through the product CLI: classify and evaluate-classifier."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import torch

from recommender.classification.shanet import NetConfig, ShaRNN
from recommender.cli.main import main
from training.data import Labels
from training.export import export_model

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "classifier" / "papers.jsonl.gz"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    torch.manual_seed(3)
    labels = Labels.from_taxonomy()
    vocab = ["-PAD-", "-UNK-", "-EQN-", "-TITLE_START-", "-TITLE_END-", "-ABSTRACT_START-", "-ABSTRACT_END-",
             "quantum", "galaxy", "the"]
    net = ShaRNN(NetConfig(len(vocab), 8, len(labels.codes), gru_hidden=8, cat_attn_dim=4, boom_dim=16),
                 torch.randn(len(vocab), 8))
    return export_model(net, tmp_path_factory.mktemp("m") / "tiny", vocab=vocab, phrases=[], labels=labels,
                        max_tokens=64, threshold=0.5, metrics={}, provenance={})


def test_classify_text_json(model_dir, capsys):
    assert main(["classify", "--title", "Quantum galaxy", "--abstract", "the galaxy", "--model", str(model_dir),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["categories"] and out["masters"] and "name" in out["categories"][0]


def test_classify_needs_id_or_title(model_dir, capsys):
    assert main(["classify", "--model", str(model_dir)]) == 2
    assert "either" in capsys.readouterr().err


def test_classify_empty_text_is_a_clear_error(model_dir, capsys):
    assert main(["classify", "--title", " ", "--abstract", "", "--model", str(model_dir)]) == 1
    assert "empty" in capsys.readouterr().err


def test_evaluate_classifier_on_real_papers(model_dir, capsys):
    assert main(["evaluate-classifier", str(FIXTURE), "--model", str(model_dir), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["papers"] == 420 and 0 <= rep["category_sample_f1"] <= 1 and len(rep["per_group"]) == 8


def test_evaluate_classifier_missing_file(model_dir, capsys):
    assert main(["evaluate-classifier", "/nonexistent.jsonl", "--model", str(model_dir)]) == 1


API = Path(__file__).resolve().parent / "fixtures" / "arxiv_api"


def test_classify_stored_paper_by_id(cli_env, model_dir, capsys):
    assert main(["import", str(FIXTURE)]) == 0
    capsys.readouterr()
    first = json.loads(gzip.open(FIXTURE, "rt").readline())
    assert main(["classify", f"https://arxiv.org/abs/{first['id']}v1", "--model", str(model_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    cats = first["categories"].split() if isinstance(first["categories"], str) else first["categories"]
    assert out["actual_categories"][0] in cats
    assert out["categories"]


def test_classify_unstored_id_is_fetched_from_arxiv_and_kept(cli_env, server, model_dir, capsys):
    server.route("/api/query", (200, (API / "id_2104.12255v1_s0_m100_6ae69987ffe1.body.xml").read_bytes()))
    assert main(["classify", "2104.12255", "--model", str(model_dir)]) == 0
    text = capsys.readouterr().out
    assert "actual: " in text and "master: " in text
    calls = len(server.requests)
    assert main(["classify", "2104.12255", "--model", str(model_dir)]) == 0
    assert len(server.requests) == calls  # the second time it comes from the store


def test_classify_bad_or_unknown_id(cli_env, server, model_dir, capsys, monkeypatch):
    monkeypatch.setenv("ARXIV_DIGEST_API_RETRIES", "1")
    assert main(["classify", "banana", "--model", str(model_dir)]) == 2
    assert "not an arXiv id" in capsys.readouterr().err
    server.route("/api/query", (200, (API / "id_0000.0000_s0_m100_8b51d9633a68.body.xml").read_bytes()))
    assert main(["classify", "2501.99999", "--model", str(model_dir)]) == 1
    assert "no such paper" in capsys.readouterr().err
    server.route("/api/query", (503, b"down"))
    assert main(["classify", "2501.99998", "--model", str(model_dir)]) == 2
    assert capsys.readouterr().err.strip()


@pytest.fixture(scope="module")
def ensemble_dir(model_dir, tmp_path_factory) -> Path:
    """The untrained tiny SHA-RNN stacked with a tf-idf head trained on the fixture's papers (weight 1 on it):
    what the scores see is the ensemble, not the SHA-RNN alone."""
    import shutil

    from recommender.classification.classify import ENSEMBLE_FILE
    from recommender.classification.tfidf_head import paper_terms
    from training.data import load_records
    from training.prepare import multi_hot
    from training.tfidf_lr import LrConfig, train_head

    labels = Labels.from_taxonomy()
    records = load_records(FIXTURE, labels, progress=False)
    head = train_head([paper_terms(r.title, r.abstract) for r in records], multi_hot(records, labels),
                      LrConfig(min_df=2, epochs=20, lr=0.05))
    d = tmp_path_factory.mktemp("ens") / "ensemble"
    shutil.copytree(model_dir, d)
    head.save(d)
    (d / ENSEMBLE_FILE).write_text(json.dumps({"stack": {"sharnn": 0.0, "tfidf": 1.0, "bias": 0.0},
                                               "threshold": 0.3, "thresholds": [0.3] * len(labels.codes)}))
    return d


def test_evaluate_classifier_scores_the_ensemble(model_dir, ensemble_dir, capsys):
    assert main(["evaluate-classifier", str(FIXTURE), "--model", str(model_dir), "--json"]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert main(["evaluate-classifier", str(FIXTURE), "--model", str(ensemble_dir), "--json"]) == 0
    ens = json.loads(capsys.readouterr().out)
    assert ens["per_category_thresholds"] and ens["threshold"] == 0.3
    # the tf-idf head has seen these papers; the untrained SHA-RNN is near chance
    assert ens["category_sample_f1"] > 0.6 > alone["category_sample_f1"]
    assert main(["classify", "--title", "Dark matter halos of dwarf galaxies", "--abstract",
                 "Simulations of galaxy rotation curves.", "--model", str(ensemble_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["categories"]
