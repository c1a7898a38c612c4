"""The recommender's front door: similar papers, ad-hoc recommendations, a user's daily digest, embedding.

:class:`Engine` ties the store, the embedder and the vector index together; the bot and the command line call
only this. The embedder and the index load on first use (the ONNX export, if needed, happens then), behind a
lock, so one Engine can serve the threads of one process. Papers the store lacks are fetched from arXiv
(:meth:`Engine.ensure_papers`), stored and embedded. The vectors of the current model live in their own
directory under ``vectors_dir``; the model key last used is kept in the store's meta table, so a model change is
noticed, logged and answered by embedding every paper again for the new model (never a silent mix).

Papers are compared on meaning (MiniLM vectors) and on words (a tf-idf index of the store, kept in
``<home>/lexical/`` and refreshed by :meth:`Engine.embed_missing`); each like's similarity mixes the two
(see :mod:`recommender.ranking.profile`), which is what beat both the mean-of-likes and the tf-idf + SVM baselines.
Thresholds compare the embedding-only score, in cosine units. A user who follows categories but has neither likes
nor interests gets the day's papers ranked by closeness to the names of those categories, without the
minimum-score threshold (there is no personal signal to measure against yet).
"""
from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from recommender.config import Settings
from recommender.ranking.digest import Ranked, digest_candidates, rank
from recommender.embedding.embed import Embedder, _slug, load_embedder, paper_text
from recommender.ids import parse_arxiv_id
from recommender.embedding.lexical import LexicalIndex
from recommender.models import Paper
from recommender.engine.pipeline import lookup_papers
from recommender.ranking.profile import Profile, ScoringParams
from recommender.embedding.vectors import VectorIndex

log = logging.getLogger(__name__)

META_KEY = "embedding_model"
EMBED_CHUNK = 512
# text that is meant as an id: digits.digits, old-style archive/NNNNNNN, or an arXiv link
_ID_LIKE = re.compile(r"^\s*(?:arxiv:|https?://|(?:www\.|export\.)?arxiv\.org/)?\S*(?:\d{4}\.\d+|[a-z\-]+(?:\.[A-Z]{2})?/\d{5,})"
                      r"(?:v\d+)?(?:\.pdf)?/?\s*$", re.IGNORECASE)


@dataclass
class Recommendation:
    paper: Paper
    score: float
    why: str
    nearest_id: str | None = None  # liked (or queried) paper behind it; None for a text/interest match
    nearest_cos: float | None = None
    # embedding-only score in cosine units, what min_score is compared to (score also weighs shared words)
    similarity: float | None = None


@dataclass
class Engine:
    """Recommendations over one store. ``embedder``, ``client`` and ``params`` may be injected (tests)."""

    settings: Settings
    store: object  # recommender.store.Store
    embedder: Embedder | None = None
    client: object | None = None  # recommender.sources.arxiv.ArxivClient
    params: ScoringParams = field(default_factory=ScoringParams)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._index: VectorIndex | None = None
        self._lexical: LexicalIndex | None = None
        self._embed_lock = threading.Lock()  # one embedding / tf-idf update at a time (scheduler vs bot)

    # -- lazy parts -------------------------------------------------------------------------------------
    def _embedder(self) -> Embedder:
        with self._lock:
            if self.embedder is None:
                self.embedder = load_embedder(self.settings)
                log.info("embedder: %s (%s)", self.embedder.key, self.embedder.backend)
            return self.embedder

    @property
    def index(self) -> VectorIndex:
        """The vector index of the current model (checks for a model change on first use)."""
        with self._lock:
            if self._index is None:
                emb = self._embedder()
                previous = self.store.get_meta(META_KEY)
                if previous and previous != emb.key:
                    log.warning("embedding model changed from %s to %s: papers will be embedded again "
                                "(run `arxiv-digest embed`)", previous, emb.key)
                self._index = VectorIndex(self.settings.vectors_dir / _slug(emb.key), emb.key, emb.dim)
                if previous != emb.key:
                    self.store.set_meta(META_KEY, emb.key)
            return self._index

    @property
    def lexical(self) -> LexicalIndex:
        """The tf-idf index of the stored papers (fitted by :meth:`embed_missing`)."""
        with self._lock:
            if self._lexical is None:
                self._lexical = LexicalIndex(self.settings.home / "lexical")
            return self._lexical

    def sync_lexical(self, progress: bool = False) -> int:
        """Bring the tf-idf index up to date with the store (refit when it has grown by half); returns the
        number of papers (re)indexed."""
        lex = self.lexical
        ids = self.store.paper_ids()
        if lex.needs_refit(len(ids)):
            papers = self.store.iter_papers()
            if progress:
                from tqdm import tqdm

                papers = tqdm(papers, total=len(ids), desc="tf-idf", unit="paper")
            pairs = [(p.id, paper_text(p)) for p in papers]
            lex.fit([i for i, _ in pairs], [t for _, t in pairs])
            changed = len(pairs) if lex.ready else 0
        else:
            missing = lex.missing(ids)
            for start in range(0, len(missing), 5000):
                papers = list(self.store.iter_papers(ids=missing[start:start + 5000]))
                lex.add([p.id for p in papers], [paper_text(p) for p in papers])
            changed = len(missing)
        if changed:
            lex.save()
        return changed

    def lexical_rows(self, ids: Sequence[str]):
        """tf-idf rows of stored papers (indexing those missing), or None while there is no fitted index."""
        lex = self.lexical
        if not lex.ready:
            return None
        lacking = lex.missing(ids)
        if lacking:
            papers = self.store.get_papers(lacking)
            known = [i for i in lacking if i in papers]
            lex.add(known, [paper_text(papers[i]) for i in known])
            if len(known) != len(lacking):
                return None
        return lex.get(list(ids))

    def _client(self):
        if self.client is None:
            from recommender.sources.arxiv import ArxivClient

            self.client = ArxivClient(self.settings)
        return self.client

    # -- embedding --------------------------------------------------------------------------------------
    def embed_missing(self, progress: bool = True) -> int:
        """Embed every stored paper without a vector for the current model; returns how many were embedded."""
        with self._embed_lock:
            index = self.index
            missing = index.missing(self.store.paper_ids())
            if missing:
                log.info("embedding %d papers with %s", len(missing), index.key)
                self._embed_ids(missing, progress)
            self.sync_lexical(progress)
            return len(missing)

    def refresh(self, ids: Sequence[str]) -> int:
        """Re-embed stored papers whose text changed (a new version), so their vectors and tf-idf rows follow
        the new title and abstract; returns how many vectors were replaced. Papers without a vector yet are
        left to :meth:`embed_missing`."""
        ids = list(dict.fromkeys(ids))
        if not ids:
            return 0
        with self._embed_lock:
            stale = [i for i in ids if i in self.index]
            if stale:
                self._embed_ids(stale)
            lex = self.lexical
            if lex.ready:
                papers = self.store.get_papers([i for i in ids if i in lex])
                if papers:
                    lex.add(list(papers), [paper_text(p) for p in papers.values()])
                    lex.save()
        return len(stale)

    def seed_vectors(self, path) -> int:
        """Take the vectors of stored papers from a file made by ``VectorIndex.export`` (e.g. shipped with the
        demo papers) instead of embedding them; only used when it was made with the current model."""
        from pathlib import Path

        path = Path(path)
        if not path.is_file():
            return 0
        with self._embed_lock:
            n = self.index.import_file(path, only=self.store.paper_ids())
        log.info("took %d vectors from %s", n, path)
        return n

    def _embed_ids(self, ids: Sequence[str], progress: bool = False) -> None:
        emb, index = self._embedder(), self.index
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(ids), desc="embedding", unit="paper")
        for start in range(0, len(ids), EMBED_CHUNK):
            papers = list(self.store.iter_papers(ids=ids[start:start + EMBED_CHUNK]))
            if papers:
                with self._lock:
                    vecs = emb.encode([paper_text(p) for p in papers], batch_size=32)
                index.add([p.id for p in papers], vecs)
            if bar is not None:
                bar.update(min(EMBED_CHUNK, len(ids) - start))
        if bar is not None:
            bar.close()

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """Vectors of stored papers, embedding on the spot those that lack one."""
        lacking = self.index.missing(ids)
        if lacking:
            self._embed_ids(lacking)
        return self.index.get(list(ids))

    def embed_text(self, text: str) -> np.ndarray:
        emb = self._embedder()
        with self._lock:
            return emb.encode_one(text)

    # -- papers -----------------------------------------------------------------------------------------
    def ensure_papers(self, ids: Iterable[str]) -> dict[str, Paper]:
        """Papers by id, fetching from arXiv, storing and embedding those the store lacks.

        Raises :class:`InvalidArxivId` for text that is no id and :class:`LookupError` naming the ids
        arXiv does not know (or that could not be fetched).
        """
        wanted = list(dict.fromkeys(parse_arxiv_id(i).id for i in ids))
        try:
            found = lookup_papers(self.store, wanted, self._client)
        except Exception as exc:  # network or arXiv errors: tell the caller which ids are unknown
            stored = self.store.get_papers(wanted)
            lacking = [i for i in wanted if i not in stored]
            raise LookupError(f"could not fetch {', '.join(lacking)} from arXiv: {exc}") from exc
        unknown = [i for i in wanted if i not in found]
        if unknown:
            raise LookupError(f"arXiv does not know {', '.join(unknown)}")
        self.vectors(wanted)
        return found

    # -- profiles ---------------------------------------------------------------------------------------
    def profile(self, likes: Sequence[str] = (), dislikes: Sequence[str] = (), interests: str = "",
                fetch: bool = True) -> Profile:
        """A profile from liked/disliked ids and interest text. ``fetch=False`` skips ids the store lacks."""
        likes = list(dict.fromkeys(parse_arxiv_id(i).id for i in likes))
        dislikes = [i for i in dict.fromkeys(parse_arxiv_id(i).id for i in dislikes) if i not in likes]
        if fetch:
            self.ensure_papers(likes + dislikes)
        else:
            have = self.store.get_papers(likes + dislikes)
            likes = [i for i in likes if i in have]
            dislikes = [i for i in dislikes if i in have]
        interests = (interests or "").strip()
        prof = Profile(
            like_ids=likes, likes=self.vectors(likes) if likes else None,
            dislike_ids=dislikes, dislikes=self.vectors(dislikes) if dislikes else None,
            interest=interests, interest_vec=self.embed_text(interests) if interests else None,
        )
        self._attach_lexical(prof)
        return prof

    def _attach_lexical(self, prof: Profile) -> None:
        if self.params.lexical_weight <= 0 or prof.empty or not self.lexical.ready:
            return
        rows = self.lexical_rows(prof.like_ids) if prof.like_ids else None
        if prof.like_ids and rows is None:
            return
        lex = self.lexical
        parts = [rows] if rows is not None else []
        if prof.interest_vec is not None:
            parts.append(lex.transform([prof.interest]))
        import scipy.sparse as sp

        prof.positives_lex = sp.vstack(parts).tocsr()

    def _recommendations(self, ranked: list[Ranked]) -> list[Recommendation]:
        papers = self.store.get_papers([r.paper_id for r in ranked])
        return [Recommendation(papers[r.paper_id], r.score, r.why, r.nearest_id, r.nearest_cos,
                               r.similarity if r.similarity is not None else r.score)
                for r in ranked if r.paper_id in papers]

    # -- public API -------------------------------------------------------------------------------------
    def similar(self, query: str, n: int = 10) -> list[Recommendation]:
        """Nearest stored papers to an arXiv id/link (excluding itself) or to a free text."""
        query = (query or "").strip()
        if not query:
            raise ValueError("give an arXiv id, a link or some text")
        if _ID_LIKE.match(query):
            pid = parse_arxiv_id(query).id  # InvalidArxivId for a malformed id
            self.ensure_papers([pid])
            vec = self.index.get([pid])[0]
            hits = self.index.search(vec, n, exclude={pid})
            why = lambda cos: f"close to {pid} (cos {cos:.2f})"  # noqa: E731
            nearest: str | None = pid
        else:
            vec = self.embed_text(query)
            hits = self.index.search(vec, n)
            shown = query if len(query) <= 60 else query[:57] + "..."
            why = lambda cos: f"matches \u201c{shown}\u201d (cos {cos:.2f})"  # noqa: E731
            nearest = None
        ranked = [Ranked(h, s, nearest, s, why(s)) for h, s in hits]
        return self._recommendations(ranked)

    def recommend(self, likes: Sequence[str], dislikes: Sequence[str] = (), interests: str = "",
                  candidates: Sequence[str] | None = None, n: int = 10, min_score: float | None = None,
                  exclude: set[str] = frozenset()) -> list[Recommendation]:
        """Rank ``candidates`` (None: every stored paper) for an ad-hoc profile; liked, disliked and
        ``exclude``d ids never come back. ``min_score`` None means no threshold."""
        prof = self.profile(likes, dislikes, interests)
        if prof.empty:
            return []
        skip = set(exclude) | set(prof.like_ids) | set(prof.dislike_ids)
        if candidates is None:
            ids, vecs = list(self.index.ids), self.index.matrix
        else:
            ids = [c for c in dict.fromkeys(candidates) if c not in skip]
            have = self.store.get_papers(ids)
            ids = [c for c in ids if c in have]
            vecs = self.vectors(ids)
        lex = self.lexical_rows(ids) if prof.positives_lex is not None else None
        return self._recommendations(rank(prof, ids, vecs, n, min_score, skip, self.params, lex))

    def digest(self, user_id: int, day: str, n: int | None = None) -> list[Recommendation]:
        """``user_id``'s digest for announcement day ``day`` (see :func:`digest_candidates` for the rules)."""
        user = self.store.get_user(user_id)
        if user is None:
            raise LookupError(f"no user {user_id}")
        size = user.digest_size if n is None else n
        cands = digest_candidates(self.store, user.id, day, user.categories, user.cross_lists)
        if not cands or size <= 0:
            return []
        prof = self.profile(self.store.liked_ids(user.id), self.store.disliked_ids(user.id), user.interests,
                            fetch=False)
        min_score: float | None = user.min_score
        category_only = False
        if prof.empty and user.categories:
            names = self.store.category_names()
            text = "; ".join(names.get(c, c) for c in user.categories)
            prof = Profile(interest=text, interest_vec=self.embed_text(text))
            min_score, category_only = None, True
        if prof.empty:
            return []
        lex = self.lexical_rows(cands) if prof.positives_lex is not None else None
        ranked = rank(prof, cands, self.vectors(cands), size, min_score, params=self.params, lexical=lex)
        if category_only:
            for r in ranked:
                r.why = "new in the categories you follow"
        return self._recommendations(ranked)
