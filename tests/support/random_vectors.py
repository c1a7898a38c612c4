"""Small random stand-ins for a ranking kernel's inputs, shared by the scoring-kernel and ranker tests: unit
embedding rows and L2-normalised sparse tf-idf rows (the kernels' maths, not the model's vectors, is under test)."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

DIM, VOCAB = 24, 300


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random unit rows of ``DIM`` dimensions."""
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def lex(rng: np.random.Generator, n: int, nnz: int = 12) -> sp.csr_matrix:
    """``n`` random non-negative sparse rows over ``VOCAB`` terms (about ``nnz`` each), L2-normalised."""
    m = sp.random(n, VOCAB, density=nnz / VOCAB, format="csr", dtype=np.float32, random_state=rng)
    m.data = np.abs(m.data) + 0.01
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    return sp.diags(1 / np.maximum(norms, 1e-12)).dot(m).tocsr().astype(np.float32)
