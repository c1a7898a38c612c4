"""The recommender's front door: similar papers, ad-hoc recommendations, a user's daily digest, embedding.

:class:`Engine` ties the store, the embedder and the vector and tf-idf indexes together; the bot and the command
line call only this. The embedder and the indexes load on first use (the ONNX export, if needed, happens then).
Papers the store lacks are fetched from arXiv (:meth:`Engine.ensure_papers`), stored and embedded. The vectors of
the current model live in their own directory under ``vectors_dir``; the model key last used is kept in the
store's meta table, so a model change is noticed, logged and answered by embedding every paper again for the new
model (never a silent mix).

Threads (the model is stated in :mod:`recommender.engine.concurrency`): one Engine per process and state
directory. The reply path (:meth:`similar`, :meth:`recommend`, :meth:`digest`, :meth:`profile`,
:meth:`embed_text`, :meth:`vectors`, :meth:`missing_vectors`) only reads index snapshots and may run on many
threads at once. Writer steps (:meth:`embed_missing`, :meth:`embed_ids`, :meth:`refresh`, :meth:`seed_vectors`,
:meth:`sync_lexical`, :meth:`reload_if_changed`) are serialised by one writer lock that no reader takes; they
encode in small chunks with no lock around the model, so a query's encoding runs beside them. The few papers
:meth:`ensure_papers` fetches are embedded without waiting for that lock (each index add is atomic on its own),
so a look-up is not queued behind a day's bulk embedding; it blocks on arXiv, so call it off the reply path.

Papers are compared on meaning (MiniLM vectors) and on words (a tf-idf index of the store, kept in
``<home>/lexical/`` and refreshed by :meth:`Engine.embed_missing`); each like's similarity mixes the two
(see :mod:`recommender.ranking.profile`), which is what beat both the mean-of-likes and the tf-idf + SVM baselines.
Thresholds compare the embedding-only score, in cosine units. A user who follows categories but has neither likes
nor interests gets the day's papers ranked by closeness to the names of those categories, without the
minimum-score threshold (there is no personal signal to measure against yet).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recommender.config import Settings
from recommender.embedding.embed import Embedder, _slug, load_embedder, paper_text
from recommender.embedding.lexical import STORED_ROWS_MAX, LexicalIndex, fit_sample
from recommender.embedding.vectors import VectorIndex, VectorSnapshot
from recommender.engine.concurrency import WriterLock
from recommender.engine.pipeline import lookup_papers
from recommender.ids import looks_like_id, parse_arxiv_id
from recommender.models import Paper
from recommender.ranking.digest import Ranked, digest_candidates, rank, rank_many
from recommender.ranking.features import Background
from recommender.ranking.learned import (
    LearnedContext,
    RankerModel,
    background_from,
    background_sample,
    shipped_model,
)
from recommender.ranking.must_include import MAX_DAILY, MAX_WEEKLY, MustInclude, merge, must_include_many
from recommender.ranking.profile import Profile, ScoringParams
from recommender.sources.arxiv import ArxivClient
from recommender.store import Store, User

log = logging.getLogger(__name__)

META_KEY = "embedding_model"
EMBED_CHUNK = 512  # papers per part file written by bulk embedding
ENCODE_CHUNK = 32  # texts per encode call in bulk embedding (between calls a query's encoding gets the CPU)
TRANSIENT_EMBED_LIMIT = 16  # papers without a vector that a reply encodes on the spot (not stored)
SHORTLIST_PER_POSITIVE = 300  # a big store: nearest papers per like/interest that whole-store ranking scores


class VectorsPending(LookupError):
    """Papers lack vectors and are too many to encode on the reply path; a writer step must embed them."""

    def __init__(self, ids: Sequence[str]) -> None:
        self.ids = list(ids)
        shown = ", ".join(self.ids[:5]) + (" ..." if len(self.ids) > 5 else "")
        super().__init__(f"{len(self.ids)} paper(s) are not embedded yet: {shown}")


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
    store: Store
    embedder: Embedder | None = None
    client: ArxivClient | None = None
    params: ScoringParams = field(default_factory=ScoringParams)
    learned: bool = True  # rank with the learned ranker (recommender.ranking.learned) when it can serve a profile
    ranker_model: RankerModel | None = None  # the learned ranker's weights; None: the shipped ones

    def __post_init__(self) -> None:
        self._init_lock = threading.Lock()  # first use of the embedder, the indexes and the client
        self._index: VectorIndex | None = None
        self._lexical: LexicalIndex | None = None
        self._bg: tuple[tuple[int, int], Background | None] | None = None  # (store size, background)
        self._writer = WriterLock("engine")  # one writer step at a time; never taken by the reply path

    # -- lazy parts -------------------------------------------------------------------------------------
    def _embedder(self) -> Embedder:
        emb = self.embedder
        if emb is not None:
            return emb
        with self._init_lock:
            if self.embedder is None:
                self.embedder = load_embedder(self.settings)
                log.info("embedder: %s (%s)", self.embedder.key, self.embedder.backend)
            return self.embedder

    @property
    def index(self) -> VectorIndex:
        """The vector index of the current model (checks for a model change on first use)."""
        index = self._index
        if index is not None:
            return index
        emb = self._embedder()
        with self._init_lock:
            if self._index is None:
                previous = self.store.get_meta(META_KEY)
                if previous and previous != emb.key:
                    log.warning("embedding model changed from %s to %s: papers will be embedded again "
                                "(run `arxiv-digest embed`)", previous, emb.key)
                self._index = VectorIndex(self.settings.vectors_dir / _slug(emb.key), emb.key, emb.dim,
                                          ann_min_vectors=self.settings.ann_min_vectors)
                if previous != emb.key:
                    self.store.set_meta(META_KEY, emb.key)
            return self._index

    @property
    def lexical(self) -> LexicalIndex:
        """The tf-idf index of the stored papers (fitted by :meth:`embed_missing`)."""
        lex = self._lexical
        if lex is not None:
            return lex
        with self._init_lock:
            if self._lexical is None:
                self._lexical = LexicalIndex(self.settings.home / "lexical")
            return self._lexical

    def _client(self) -> ArxivClient:
        client = self.client
        if client is not None:
            return client
        with self._init_lock:
            if self.client is None:  # look-ups are interactive: fail faster, same shared politeness budget
                self.client = ArxivClient.interactive(self.settings)
            return self.client

    # -- publishing -------------------------------------------------------------------------------------
    def reload_if_changed(self) -> bool:
        """Swap in what another process (``arxiv-digest ingest``, ``embed``) wrote to the vector and tf-idf
        files since they were loaded; cheap when nothing changed. A writer step: call it off the reply path
        (the bot: after its own jobs and periodically). Returns whether anything was reloaded."""
        with self._writer:
            changed = False
            if self._index is not None:
                changed |= self._index.reload_if_changed()
            if self._lexical is not None:
                changed |= self._lexical.reload_if_changed()
            return changed

    # -- tf-idf -----------------------------------------------------------------------------------------
    def sync_lexical(self, progress: bool = False) -> int:
        """Bring the tf-idf index up to date with the store (refit when it has grown by half); returns the
        number of papers (re)indexed. A writer step."""
        with self._writer:
            lex = self.lexical
            ids = self.store.paper_ids()
            if lex.needs_refit(len(ids)):
                # a big store: the vocabulary from a sample, no rows kept (rankings transform what they need)
                sample = fit_sample(ids) if len(ids) > STORED_ROWS_MAX else ids
                papers: Iterable[Paper] = self.store.iter_papers() if len(sample) == len(ids) \
                    else self.store.iter_papers(ids=sample)
                if progress:
                    from tqdm import tqdm

                    papers = tqdm(papers, total=len(sample), desc="tf-idf", unit="paper")
                pairs = [(p.id, paper_text(p)) for p in papers]
                lex.fit([i for i, _ in pairs], [t for _, t in pairs], total=len(ids))
                changed = len(pairs) if lex.ready else 0
            elif not lex.stores_rows:
                changed = 0
            else:
                missing = lex.missing(ids)
                for start in range(0, len(missing), 5000):
                    chunk = list(self.store.iter_papers(ids=missing[start:start + 5000]))
                    lex.add([p.id for p in chunk], [paper_text(p) for p in chunk])
                changed = len(missing)
            if changed:
                lex.save()
            return changed

    def lexical_rows(self, ids: Sequence[str]) -> sp.csr_matrix | None:
        """tf-idf rows of stored papers, or None while there is no fitted index (or an id is not stored).
        Reads one snapshot; rows of papers it lacks are computed with its vocabulary, not stored."""
        snap = self.lexical.snapshot()
        if not snap.ready:
            return None
        ids = list(ids)
        lacking = snap.missing(ids)
        if not lacking:
            return snap.get(ids)
        papers = self.store.get_papers(lacking)
        if len(papers) != len(set(lacking)):
            return None
        have = [i for i in ids if i in snap]
        extra = list(dict.fromkeys(lacking))
        stacked = sp.vstack([snap.get(have), snap.transform([paper_text(papers[i]) for i in extra])]).tocsr()
        pos = {pid: k for k, pid in enumerate(have)}
        pos.update({pid: len(have) + k for k, pid in enumerate(extra)})
        return stacked[[pos[i] for i in ids]]

    # -- embedding (writer steps) -----------------------------------------------------------------------
    def embed_missing(self, progress: bool = True, limit: int | None = None) -> int:
        """Embed every stored paper without a vector for the current model (at most ``limit``, the newest ids
        first: the bot's warm-up must not spend days on a harvested store, which is a bulk job), then bring the
        tf-idf index up to date; returns how many were embedded. A writer step."""
        with self._writer:
            index = self.index
            missing = index.missing(self.store.paper_ids())
            if limit is not None and len(missing) > limit:
                log.warning("%d papers lack vectors of %s: embedding the newest %d; embed the rest in bulk "
                            "(arxiv-digest embed [--engine ray])", len(missing), index.key, limit)
                # new-style ids (YYMM.NNNNN) sort by date; old-style ones (archive/YYMMNNN) are older still
                missing = sorted(missing, key=lambda i: ("/" not in i, i), reverse=True)[:max(limit, 0)]
            if missing:
                log.info("embedding %d papers with %s", len(missing), index.key)
                self._embed_ids(missing, progress)
            self.sync_lexical(progress)
            return len(missing)

    def embed_ids(self, ids: Sequence[str], progress: bool = False) -> int:
        """Embed those of ``ids`` (stored papers) that lack a vector, e.g. the papers :meth:`missing_vectors`
        reported; returns how many were embedded. A writer step: call it off the reply path."""
        with self._writer:
            lacking = self.index.missing(dict.fromkeys(ids))
            if lacking:
                self._embed_ids(lacking, progress)
            return len(lacking)

    def refresh(self, ids: Sequence[str]) -> int:
        """Re-embed stored papers whose text changed (a new version), so their vectors and tf-idf rows follow
        the new title and abstract; returns how many vectors were replaced. Papers without a vector yet are
        left to :meth:`embed_missing`. A writer step."""
        ids = list(dict.fromkeys(ids))
        if not ids:
            return 0
        with self._writer:
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

    def seed_vectors(self, path: Path | str) -> int:
        """Take the vectors of stored papers from a file made by ``VectorIndex.export`` (e.g. shipped with the
        demo papers) instead of embedding them; only used when it was made with the current model. A writer
        step."""
        path = Path(path)
        if not path.is_file():
            return 0
        with self._writer:
            n = self.index.import_file(path, only=self.store.paper_ids())
        log.info("took %d vectors from %s", n, path)
        return n

    def _embed_ids(self, ids: Sequence[str], progress: bool = False) -> None:
        """Encode stored papers in small chunks (no lock around the model) and add them to the index a part
        file at a time."""
        emb, index = self._embedder(), self.index
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(ids), desc="embedding", unit="paper")
        for start in range(0, len(ids), EMBED_CHUNK):
            papers = list(self.store.iter_papers(ids=ids[start:start + EMBED_CHUNK]))
            if papers:
                texts = [paper_text(p) for p in papers]
                parts = [emb.encode_bulk(texts[k:k + ENCODE_CHUNK], batch_size=ENCODE_CHUNK)
                         for k in range(0, len(texts), ENCODE_CHUNK)]
                index.add([p.id for p in papers], np.concatenate(parts))
            if bar is not None:
                bar.update(min(EMBED_CHUNK, len(ids) - start))
        if bar is not None:
            bar.close()

    # -- vectors (reply path: reads only) ---------------------------------------------------------------
    def missing_vectors(self, ids: Iterable[str]) -> list[str]:
        """Those of ``ids`` without a vector for the current model (hand them to :meth:`embed_ids`)."""
        return self.index.missing(ids)

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """Vectors of stored papers, from one index snapshot. Up to ``TRANSIENT_EMBED_LIMIT`` papers without a
        vector are encoded on the spot (not stored); more raise :class:`VectorsPending` (embed them with
        :meth:`embed_ids` off the reply path). Unknown ids raise KeyError."""
        ids = list(ids)
        snap = self.index.snapshot()
        lacking = list(dict.fromkeys(snap.missing(ids)))
        if not lacking:
            return snap.get(ids)
        if len(lacking) > TRANSIENT_EMBED_LIMIT:
            raise VectorsPending(lacking)
        extra = self._encode_stored(lacking)
        if len(extra) != len(lacking):
            raise KeyError(f"not in the store: {', '.join(i for i in lacking if i not in extra)}")
        out = np.zeros((len(ids), snap.dim), dtype=np.float32)
        for r, pid in enumerate(ids):
            out[r] = extra[pid] if pid in extra else snap.get([pid])[0]
        return out

    def _encode_stored(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        papers = self.store.get_papers(ids)
        known = [i for i in ids if i in papers]
        if not known:
            return {}
        vecs = self._embedder().encode([paper_text(papers[i]) for i in known])
        return dict(zip(known, vecs, strict=True))

    def ranking_vectors(self, ids: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """(ids, vectors) for ranking: papers with a vector, plus up to ``TRANSIENT_EMBED_LIMIT`` without one
        encoded on the spot; more than that are left out (logged) until a writer step embeds them."""
        ids = list(ids)
        snap = self.index.snapshot()
        lacking = snap.missing(ids)
        if not lacking:
            return ids, snap.get(ids)
        if len(lacking) <= TRANSIENT_EMBED_LIMIT:
            extra = self._encode_stored(lacking)
        else:
            log.info("%d of %d papers are not embedded yet and are left out of this ranking", len(lacking), len(ids))
            extra = {}
        kept = [i for i in ids if i in snap or i in extra]
        out = np.zeros((len(kept), snap.dim), dtype=np.float32)
        for r, pid in enumerate(kept):
            out[r] = extra[pid] if pid in extra else snap.get([pid])[0]
        return kept, out

    def embed_text(self, text: str) -> np.ndarray:
        """The vector of a free text (a query, an interest); runs beside any bulk embedding."""
        return self._embedder().encode_one(text)

    # -- papers -----------------------------------------------------------------------------------------
    def ensure_papers(self, ids: Iterable[str]) -> dict[str, Paper]:
        """Papers by id, fetching from arXiv, storing and embedding those the store lacks. Blocks on arXiv:
        call it off the reply path (safe from a background thread while replies are served).

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
        lacking = self.index.missing(wanted)
        if lacking:  # a few papers: published by the index's own atomic add, not queued behind bulk embedding
            self._embed_ids(lacking)
        return found

    # -- profiles ---------------------------------------------------------------------------------------
    def profile(self, likes: Sequence[str] = (), dislikes: Sequence[str] = (), interests: str = "",
                fetch: bool = True) -> Profile:
        """A profile from liked/disliked ids and interest text. ``fetch=False`` skips ids the store lacks
        (and reads only); ``fetch=True`` looks them up on arXiv first (blocking: not for the reply path).
        Rated papers without a vector beyond what a reply may encode on the spot are left out (logged)."""
        likes = list(dict.fromkeys(parse_arxiv_id(i).id for i in likes))
        dislikes = [i for i in dict.fromkeys(parse_arxiv_id(i).id for i in dislikes) if i not in likes]
        if fetch:
            self.ensure_papers(likes + dislikes)
        else:
            have = self.store.get_papers(likes + dislikes)
            likes = [i for i in likes if i in have]
            dislikes = [i for i in dislikes if i in have]
        rated, rated_vecs = self.ranking_vectors(likes + dislikes) if likes or dislikes else ([], None)
        row = {pid: r for r, pid in enumerate(rated)}
        likes = [i for i in likes if i in row]
        dislikes = [i for i in dislikes if i in row]
        interests = (interests or "").strip()
        prof = Profile(
            like_ids=likes,
            likes=rated_vecs[[row[i] for i in likes]] if likes and rated_vecs is not None else None,
            dislike_ids=dislikes,
            dislikes=rated_vecs[[row[i] for i in dislikes]] if dislikes and rated_vecs is not None else None,
            interest=interests, interest_vec=self.embed_text(interests) if interests else None,
        )
        self._attach_lexical(prof)
        self._attach_learning(prof)
        return prof

    def _attach_learning(self, prof: Profile) -> None:
        """What the learned ranker reads beside the vectors: the likes' categories, the dislikes' tf-idf rows."""
        if not self.learned or prof.positives_lex is None:
            return
        if prof.like_ids:
            papers = self.store.get_papers(prof.like_ids)
            prof.like_categories = [papers[i].categories if i in papers else [] for i in prof.like_ids]
        if prof.dislike_ids:
            prof.dislikes_lex = self.lexical_rows(prof.dislike_ids)

    def _learned_context(self, ids: Sequence[str], profiles: Sequence[Profile]) -> LearnedContext | None:
        """The learned ranker's context for candidates ``ids``: None when it is off, not shipped, or no profile
        has tf-idf rows (then the similarity score ranks, as before)."""
        if not self.learned or not any(p.positives_lex is not None for p in profiles):
            return None
        model = self.ranker_model or shipped_model()
        bg = self._background()
        if model is None or bg is None:
            return None
        papers = self.store.get_papers(list(ids))
        return LearnedContext.of(model, bg, [papers[i].categories if i in papers else [] for i in ids])

    def _background(self) -> Background | None:
        """Background statistics of the store (a fixed sample of its vectors and their tf-idf rows), recomputed
        when the store has grown by a tenth."""
        snap, lex = self.index.snapshot(), self.lexical.snapshot()
        key = (len(snap), len(lex))
        cached = self._bg
        if cached is not None and cached[0][0] * 1.1 >= key[0] and cached[0][1] * 1.1 >= key[1]:
            return cached[1]
        rows = background_sample(len(snap))
        ids = [snap.ids[r] for r in rows.tolist()]
        vecs = snap.vectors_at(rows)  # only the sample's rows: snap.matrix would stack a big store's segments
        lex_rows = lex.get([i for i in ids if i in lex]) if lex.ready else None
        bg = background_from(np.asarray(vecs, np.float32), snap.dim, lex_rows)
        self._bg = (key, bg)
        return bg

    def _attach_lexical(self, prof: Profile) -> None:
        lex = self.lexical.snapshot()
        if self.params.lexical_weight <= 0 or prof.empty or not lex.ready:
            return
        rows = self.lexical_rows(prof.like_ids) if prof.like_ids else None
        if prof.like_ids and rows is None:
            return
        parts = [rows] if rows is not None else []
        if prof.interest_vec is not None:
            parts.append(lex.transform([prof.interest]))
        prof.positives_lex = sp.vstack(parts).tocsr()

    def _recommendations(self, ranked: list[Ranked]) -> list[Recommendation]:
        papers = self.store.get_papers([r.paper_id for r in ranked])
        return [Recommendation(papers[r.paper_id], r.score, r.why, r.nearest_id, r.nearest_cos,
                               r.similarity if r.similarity is not None else r.score)
                for r in ranked if r.paper_id in papers]

    # -- public API (reply path) ------------------------------------------------------------------------
    def similar(self, query: str, n: int = 10) -> list[Recommendation]:
        """Nearest stored papers to an arXiv id/link (excluding itself) or to a free text. An id the store
        lacks is looked up on arXiv first (blocking; the bot does that off the reply path)."""
        query = (query or "").strip()
        if not query:
            raise ValueError("give an arXiv id, a link or some text")
        nearest: str | None
        if looks_like_id(query):
            pid = parse_arxiv_id(query).id  # InvalidArxivId for a malformed id
            if not self.store.has_paper(pid):
                self.ensure_papers([pid])
            vec = self.vectors([pid])[0]
            hits = self.index.search(vec, n, exclude={pid})
            why = f"close to {pid} (cos {{cos:.2f}})"
            nearest = pid
        else:
            vec = self.embed_text(query)
            hits = self.index.search(vec, n)
            shown = query if len(query) <= 60 else query[:57] + "..."
            why = f"matches \u201c{shown.replace('{', '{{').replace('}', '}}')}\u201d (cos {{cos:.2f}})"
            nearest = None
        ranked = [Ranked(h, s, nearest, s, why.format(cos=s)) for h, s in hits]
        return self._recommendations(ranked)

    def recommend(self, likes: Sequence[str], dislikes: Sequence[str] = (), interests: str = "",
                  candidates: Sequence[str] | None = None, n: int = 10, min_score: float | None = None,
                  exclude: AbstractSet[str] = frozenset()) -> list[Recommendation]:
        """Rank ``candidates`` (None: every embedded paper) for an ad-hoc profile; liked, disliked and
        ``exclude``d ids never come back. ``min_score`` None means no threshold. Likes the store lacks are
        looked up on arXiv first (blocking)."""
        prof = self.profile(likes, dislikes, interests)
        if prof.empty:
            return []
        skip = set(exclude) | set(prof.like_ids) | set(prof.dislike_ids)
        if candidates is None:
            snap = self.index.snapshot()  # ids and matrix of one snapshot: always aligned
            if snap.uses_ann:  # a big store: rank the nearest papers to each positive, not a million rows
                ids = self._shortlist(snap, prof, max(SHORTLIST_PER_POSITIVE, 10 * n), skip)
                vecs = snap.get(ids)
            else:
                ids, vecs = snap.ids, snap.matrix
        else:
            ids = [c for c in dict.fromkeys(candidates) if c not in skip]
            have = self.store.get_papers(ids)
            ids, vecs = self.ranking_vectors([c for c in ids if c in have])
        lex = self.lexical_rows(ids) if prof.positives_lex is not None else None
        return self._recommendations(rank(prof, ids, vecs, n, min_score, skip, self.params, lex,
                                          self._learned_context(ids, [prof])))

    @staticmethod
    def _shortlist(snap: VectorSnapshot, prof: Profile, per: int, skip: AbstractSet[str]) -> list[str]:
        """The ``per`` nearest papers (approximate search) to each liked paper and to the interest, united:
        the candidates whole-store ranking scores on a big store."""
        positives, _ = prof.positives()
        if positives is None:
            return []
        hits = snap.search_many(positives, per, [skip] * len(positives))
        return list(dict.fromkeys(pid for row in hits for pid, _ in row))

    def digest(self, user_id: int, day: str, n: int | None = None,
               days: Sequence[str] | None = None) -> list[Recommendation]:
        """``user_id``'s digest for announcement day ``day`` (see :func:`digest_candidates` for the rules).
        ``days``: the announcement days a weekly digest covers (None: ``day`` alone). New papers by followed
        authors and matching alerts are always in it, first (:mod:`recommender.ranking.must_include`).
        Reads only; candidates not embedded yet (beyond a few encoded on the spot) are left out and logged,
        so check :meth:`missing_vectors` first where a complete digest matters."""
        user = self.store.get_user(user_id)
        if user is None:
            raise LookupError(f"no user {user_id}")
        size = user.digest_size if n is None else n
        covered = list(days) if days else [day]
        must = must_include_many(self.store, [user], covered, MAX_WEEKLY if days else MAX_DAILY).get(user.id, [])
        cands = self._candidates(user, covered)
        if not cands or size <= 0:
            return self._with_must([], must, size, None)
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
            return self._with_must([], must, size, None)
        cands, vecs = self.ranking_vectors(cands)
        lex = self.lexical_rows(cands) if prof.positives_lex is not None else None
        ranked = rank(prof, cands, vecs, size, min_score, params=self.params, lexical=lex,
                      learned=self._learned_context(cands, [prof]))
        if category_only:
            for r in ranked:
                r.why = "new in the categories you follow"
        return self._with_must(self._recommendations(ranked), must, size, prof)

    def _candidates(self, user: User, days: Sequence[str]) -> list[str]:
        """The user's digest candidates over announcement ``days`` (one day, or a weekly digest's days)."""
        return list(dict.fromkeys(c for d in days for c in digest_candidates(
            self.store, user.id, d, user.categories, user.cross_lists)))

    def _with_must(self, recs: list[Recommendation], must: Sequence[MustInclude], size: int,
                   prof: Profile | None) -> list[Recommendation]:
        """``recs`` with the always-included papers merged in first (:func:`merge`); those the ranking did not
        reach are scored for ``prof`` without threshold (0 without a profile)."""
        if size <= 0:
            return []
        if not must:
            return recs
        have = {r.paper.id for r in recs}
        missing = [m.paper_id for m in must if m.paper_id not in have]
        scored: dict[str, Ranked] = {}
        if missing and prof is not None and not prof.empty:
            ids, vecs = self.ranking_vectors(missing)
            lex = self.lexical_rows(ids) if prof.positives_lex is not None and ids else None
            scored = {r.paper_id: r for r in rank(prof, ids, vecs, len(ids), None, params=self.params, lexical=lex)}
        papers = self.store.get_papers(missing)

        def make(m: MustInclude) -> Recommendation | None:
            paper, r = papers.get(m.paper_id), scored.get(m.paper_id)
            if paper is None:
                return None
            return Recommendation(paper, r.score if r else 0.0, m.why, similarity=r.similarity if r else None)

        return merge(recs, must, size, make)

    def digests(self, user_ids: Sequence[int], day: str,
                days: Sequence[str] | None = None) -> dict[int, list[Recommendation]]:
        """The digests of many users for announcement day ``day`` (``days``: a weekly digest's days) in one
        batched ranking pass, by exactly the rules of :meth:`digest` (each user's own candidates, size and minimum
        score; category-only users ranked by their categories' names without threshold; followed authors and
        alerts first). Users without candidates or profile get their always-included papers, or []."""
        covered = list(days) if days else [day]
        user_objs: list[User] = []
        prof_of: dict[int, Profile] = {}
        out: dict[int, list[Recommendation]] = {}
        profiles: list[Profile] = []
        wanted: list[list[str]] = []
        sizes: list[int] = []
        floors: list[float | None] = []
        category_only: list[bool] = []
        users: list[int] = []
        names: dict[str, str] | None = None
        for uid in user_ids:
            out[uid] = []
            user = self.store.get_user(uid)
            if user is None:
                raise LookupError(f"no user {uid}")
            user_objs.append(user)
            cands = self._candidates(user, covered)
            if not cands or user.digest_size <= 0:
                continue
            prof = self.profile(self.store.liked_ids(user.id), self.store.disliked_ids(user.id), user.interests,
                                fetch=False)
            floor: float | None = user.min_score
            only = False
            if prof.empty and user.categories:
                names = names if names is not None else self.store.category_names()
                text = "; ".join(names.get(c, c) for c in user.categories)
                prof = Profile(interest=text, interest_vec=self.embed_text(text))
                floor, only = None, True
            if prof.empty:
                continue
            users.append(uid)
            profiles.append(prof)
            prof_of[uid] = prof
            wanted.append(cands)
            sizes.append(user.digest_size)
            floors.append(floor)
            category_only.append(only)
        must = must_include_many(self.store, user_objs, covered, MAX_WEEKLY if days else MAX_DAILY)
        if not users:
            return {u.id: self._with_must([], must.get(u.id, []), u.digest_size, None) for u in user_objs}
        ids, vecs = self.ranking_vectors(list(dict.fromkeys(c for cands in wanted for c in cands)))
        row = {pid: r for r, pid in enumerate(ids)}
        allowed = [np.array([row[c] for c in cands if c in row], dtype=np.int64) for cands in wanted]
        lex = self.lexical_rows(ids) if any(p.positives_lex is not None for p in profiles) else None
        ranked = rank_many(profiles, ids, vecs, sizes, floors, self.params, lex, allowed=allowed,
                           learned=self._learned_context(ids, profiles))
        papers = self.store.get_papers(list({r.paper_id for rs in ranked for r in rs}))
        for uid, rs, only in zip(users, ranked, category_only, strict=True):
            if only:
                for r in rs:
                    r.why = "new in the categories you follow"
            out[uid] = [Recommendation(papers[r.paper_id], r.score, r.why, r.nearest_id, r.nearest_cos,
                                       r.similarity if r.similarity is not None else r.score)
                        for r in rs if r.paper_id in papers]
        return {u.id: self._with_must(out[u.id], must.get(u.id, []), u.digest_size, prof_of.get(u.id))
                for u in user_objs}
