"""Word vectors: fastText skipgram trained unsupervised on the training text, trimmed to a vocabulary.

The training text is the preprocessed corpus (markers, ``-EQN-`` and phrases included), so those tokens get
vectors of their own. The vocabulary keeps the most frequent tokens of the training split (index 0 is padding,
1 is the unknown token, both zero vectors); the vectors are frozen in the network.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from recommender.classification.shanet import PAD, UNK
from recommender.classification.textprep import MARKERS

log = logging.getLogger(__name__)


def write_corpus_text(lines: Iterable[str], path: Path) -> int:
    n = 0
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")
            n += 1
    tmp.replace(path)
    return n


def train_fasttext(text_path: Path, out_bin: Path, dim: int, epoch: int, min_count: int, threads: int,
                   seed: int = 13) -> None:
    """Train skipgram vectors (fastText defaults otherwise: window 5, 5 negatives, char n-grams 3-6)."""
    import fasttext

    log.info("training fastText skipgram dim=%d epoch=%d on %s", dim, epoch, text_path)
    model = fasttext.train_unsupervised(str(text_path), model="skipgram", dim=dim, epoch=epoch,
                                        minCount=min_count, thread=threads, verbose=1)  # seed: not exposed by 0.9.3
    tmp = out_bin.with_suffix(".tmp")
    model.save_model(str(tmp))
    tmp.replace(out_bin)


def build_vocab(token_lists: Iterable[list[str]], size: int, min_count: int) -> list[str]:
    """PAD, UNK, the markers, then the most frequent tokens with count >= min_count, up to ``size`` in all."""
    counts: Counter[str] = Counter()
    for toks in token_lists:
        counts.update(toks)
    vocab = [PAD, UNK, *MARKERS]
    seen = set(vocab)
    for tok, c in counts.most_common():
        if len(vocab) >= size or c < min_count:
            break
        if tok not in seen:
            vocab.append(tok)
            seen.add(tok)
    return vocab


def vocab_vectors(ft_bin: Path, vocab: list[str]) -> np.ndarray:
    """Matrix (len(vocab), dim) of fastText vectors; PAD and UNK are zeros."""
    import fasttext

    model = fasttext.load_model(str(ft_bin))
    mat = np.zeros((len(vocab), model.get_dimension()), dtype=np.float32)
    for i, tok in enumerate(vocab[2:], 2):
        mat[i] = model.get_word_vector(tok)
    return mat
