"""Where shipped files live: the one definition of the paths of everything under ``data/``.

Settings (:mod:`recommender.config`) take their defaults from here, and so do the classifier, training and
the benchmarks; nothing else spells out ``data/...``. Runtime state never lives here: it goes to the state
directory (``Settings.home``).
"""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"
TAXONOMY = DATA_DIR / "taxonomy.json"
DEMO_CORPUS = DATA_DIR / "demo_papers.jsonl.gz"
DEMO_VECTORS = DATA_DIR / "demo_vectors.arrow"
MODELS_DIR = DATA_DIR / "models"
CLASSIFIER_NAME = "ensemble-v3"
CLASSIFIER_DIR = MODELS_DIR / CLASSIFIER_NAME
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
SHARED_CORPUS = SHARED_DATA / "arxiv_corpus.jsonl.gz"
