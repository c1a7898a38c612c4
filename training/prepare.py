"""Preparation steps shared by both splits: splits, phrases, fastText vectors, vocabulary, token-id cache.

Each step writes its output into the run directory and is skipped when that output already exists, so an
interrupted run resumes where it stopped. Phrases, word vectors and the vocabulary are learned only from
papers that are in the training part of *both* splits, so one set of vectors serves both models without
any validation or test text leaking into them.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from recommender.classification.textprep import corpus_line, preprocess, tokenize
from training.config import TrainConfig
from training.data import Labels, Record
from training.phrases import learn_phrases
from training.splits import Split, random_split, temporal_split
from training.vectors import build_vocab, train_fasttext, vocab_vectors, write_corpus_text

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """Everything the network trainer needs, in memory."""

    records: list[Record]
    labels: Labels
    splits: dict[str, Split]
    phrases: list[str]
    vocab: list[str]
    vectors: np.ndarray  # (V, dim) float32
    token_ids: list[np.ndarray]  # per record, int32
    targets: np.ndarray  # (N, C) uint8 multi-hot


def make_splits(records: list[Record], cfg: TrainConfig) -> dict[str, Split]:
    temporal = temporal_split(records, cfg.temporal_test_weeks, cfg.temporal_val_weeks)
    return {
        "temporal": temporal,
        "random": random_split(records, cfg.random_test_frac, cfg.random_val_frac, cfg.seed),
        # the shipped model learns from every paper; its "validation" papers (the temporal ones) are seen in
        # training, so they only monitor it: its epochs and threshold come from the temporal selection run
        "all": Split("all", list(range(len(records))), list(temporal.val), []),
    }


def vector_train_indices(splits: dict[str, Split]) -> list[int]:
    common = set(splits["temporal"].train)
    for s in splits.values():
        if s.test:  # splits with a test part (not "all")
            common &= set(s.train)
    return sorted(common)


def seed_vectors(run_dir: Path, model_dir: Path) -> None:
    """Start a run from a shipped model's vocabulary, phrases and (fp16) word vectors: no fastText step."""
    if (run_dir / "vectors.npy").exists():
        return
    (run_dir / "phrases.txt").write_text((model_dir / "phrases.txt").read_text(encoding="utf-8"))
    (run_dir / "vocab.txt").write_text((model_dir / "vocab.txt").read_text(encoding="utf-8"))
    np.save(run_dir / "vectors.npy", np.load(model_dir / "vectors.f16.npy").astype(np.float32))
    log.info("vocabulary and word vectors taken from %s", model_dir)


def prepare(records: list[Record], labels: Labels, cfg: TrainConfig, run_dir: Path,
            splits: dict[str, Split] | None = None, vectors_from: Path | None = None) -> Prepared:
    run_dir.mkdir(parents=True, exist_ok=True)
    if vectors_from is not None:
        seed_vectors(run_dir, vectors_from)
    splits = splits or make_splits(records, cfg)
    splits_path = run_dir / "splits.json"
    if not splits_path.exists():
        splits_path.write_text(json.dumps({k: s.to_dict(records) for k, s in splits.items()}))
    for k, s in splits.items():
        log.info("split %s: train %d, val %d, test %d", k, len(s.train), len(s.val), len(s.test))
    vec_idx = vector_train_indices(splits)

    phrases_path = run_dir / "phrases.txt"
    if not phrases_path.exists():
        phrases = []
        if cfg.phrases:
            toks = (tokenize(records[i].title) + ["-SEP-"] + tokenize(records[i].abstract) for i in vec_idx)
            phrases = learn_phrases(toks, cfg.phrase_min_count, cfg.phrase_top_k, cfg.phrase_threshold,
                                    total=len(vec_idx))
        phrases_path.write_text("\n".join(phrases) + ("\n" if phrases else ""))
    phrases = [p for p in phrases_path.read_text().splitlines() if p]
    pset = frozenset(phrases)

    ft_bin = run_dir / "fasttext.bin"
    if not ft_bin.exists() and not (run_dir / "vectors.npy").exists():
        text_path = run_dir / "fasttext_corpus.txt"
        if not text_path.exists():
            lines = (corpus_line(records[i].title, records[i].abstract, pset)
                     for i in tqdm(vec_idx, desc="writing fastText corpus", unit=" papers"))
            write_corpus_text(lines, text_path)
        train_fasttext(text_path, ft_bin, cfg.ft_dim, cfg.ft_epoch, cfg.ft_min_count, cfg.ft_threads, cfg.seed)

    vocab_path, vec_path = run_dir / "vocab.txt", run_dir / "vectors.npy"
    if not vec_path.exists():
        toks = (preprocess(records[i].title, records[i].abstract, cfg.max_tokens, pset) for i in vec_idx)
        vocab = build_vocab(tqdm(toks, total=len(vec_idx), desc="vocabulary", unit=" papers"),
                            cfg.vocab_size, cfg.vocab_min_count)
        vocab_path.write_text("\n".join(vocab) + "\n")
        np.save(vec_path, vocab_vectors(ft_bin, vocab))
    vocab = vocab_path.read_text().splitlines()
    vectors = np.load(vec_path)

    enc_path = run_dir / "encoded.npz"
    if not enc_path.exists():
        index = {t: i for i, t in enumerate(vocab)}
        ids = [encode(preprocess(r.title, r.abstract, cfg.max_tokens, pset), index)
               for r in tqdm(records, desc="encoding", unit=" papers")]
        lengths = np.array([len(a) for a in ids], dtype=np.int64)
        np.savez(enc_path, flat=np.concatenate(ids), lengths=lengths)
    with np.load(enc_path) as enc:  # read each array once (NpzFile re-reads on every access)
        flat, lengths = enc["flat"], enc["lengths"]
    if len(lengths) != len(records):
        raise ValueError(f"{enc_path} was built from a different corpus; delete the run directory")
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    token_ids = [flat[offsets[i]:offsets[i + 1]] for i in range(len(records))]
    return Prepared(records, labels, splits, phrases, vocab, vectors, token_ids, multi_hot(records, labels))


def encode(tokens: list[str], index: dict[str, int]) -> np.ndarray:
    return np.fromiter((index.get(t, 1) for t in tokens), dtype=np.int32, count=len(tokens))


def multi_hot(records: list[Record], labels: Labels) -> np.ndarray:
    pos = {c: i for i, c in enumerate(labels.codes)}
    y = np.zeros((len(records), len(labels.codes)), dtype=np.uint8)
    for n, r in enumerate(records):
        for c in r.labels:
            y[n, pos[c]] = 1
    return y
