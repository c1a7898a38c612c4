"""The library's seams: the typed interfaces through which ``bot/`` (and anything else outside the library) uses it.

:class:`RecommenderEngine` is what a front end asks of the recommender (implemented by
:class:`recommender.engine.core.Engine`), :class:`CategoryClassifier` what it asks of the category classifier
(implemented by :class:`recommender.classification.classify.Classifier`), and :data:`PaperStore` the storage
(:class:`recommender.store.Store`, the one implementation; tests use it too, on real SQLite). Results are the
library's own dataclasses (:class:`~recommender.models.Paper`, ``Recommendation``, ``Prediction``), so a test
double that satisfies these Protocols returns exactly what production returns; mypy checks both against them.
Importing this module loads no model and no heavy dependency.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from recommender.models import Paper
from recommender.store import Store

if TYPE_CHECKING:
    from recommender.classification.classify import Prediction
    from recommender.engine.core import Recommendation

__all__ = ["CategoryClassifier", "PaperStore", "RecommenderEngine"]

PaperStore: TypeAlias = Store


class RecommenderEngine(Protocol):
    """Recommendations over one store: similar papers, a user's digest, look-ups and embedding."""

    def ensure_papers(self, ids: Iterable[str]) -> dict[str, Paper]:
        """Papers by id, fetching unknown ones from arXiv (LookupError for ids it cannot get)."""
        ...

    def similar(self, query: str, n: int = 10) -> list[Recommendation]:
        """Nearest stored papers to an arXiv id or link (excluding itself) or to a free text."""
        ...

    def recommend(self, likes: Sequence[str], dislikes: Sequence[str] = (), interests: str = "",
                  candidates: Sequence[str] | None = None, n: int = 10, min_score: float | None = None,
                  exclude: AbstractSet[str] = frozenset()) -> list[Recommendation]:
        """``candidates`` ranked for an ad-hoc profile (likes, dislikes, interests), best first."""
        ...

    def digest(self, user_id: int, day: str, n: int | None = None,
               days: Sequence[str] | None = None) -> list[Recommendation]:
        """The user's digest for announcement day ``day`` (the product's digest rules); ``days``: the days a
        weekly digest covers. Followed authors' and alerts' new papers are always in it."""
        ...

    def digests(self, user_ids: Sequence[int], day: str,
                days: Sequence[str] | None = None) -> dict[int, list[Recommendation]]:
        """The digests of many users for ``day`` in one batched ranking pass (the rules of :meth:`digest`)."""
        ...

    def embed_missing(self, progress: bool = True, limit: int | None = None) -> int:
        """Embed every stored paper that lacks a vector (at most ``limit``, newest first); returns how many."""
        ...

    def refresh(self, ids: Sequence[str]) -> int:
        """Re-embed stored papers whose text changed; returns how many vectors were replaced."""
        ...

    def seed_vectors(self, path: Path | str) -> int:
        """Take stored papers' vectors from an exported file made by the current model; returns how many."""
        ...

    def reload_if_changed(self) -> bool:
        """Swap in vector / tf-idf files another process wrote (a writer step: off the reply path)."""
        ...


class CategoryClassifier(Protocol):
    """Predicted arXiv categories of a paper's title and abstract."""

    @property
    def meta(self) -> Mapping[str, Any]:
        """The model's configuration; ``meta["name"]`` names its stored predictions."""
        ...

    def predict(self, title: str, abstract: str) -> Prediction: ...

    def predict_batch(self, papers: Sequence[tuple[str, str]], batch_size: int = 256) -> list[Prediction]: ...
