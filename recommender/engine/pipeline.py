"""The daily pipeline: fetch today's listing, store it, embed and classify what is new; plus first-run set-up.

:func:`fetch_feed` fetches the listing (network only) and :func:`ingest` stores a fetched feed, so the caller
decides where the wait for arXiv happens. ``ingest`` is idempotent: running it twice on the same feed stores
nothing new the second time. A feed with no items (arXiv's empty channel on days without an announcement) is
recorded and reported as ``announced=None``. Embedding and classification are passed in as callables so this
module does not load models itself; :func:`model_steps` builds the real ones.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from recommender.config import Settings
from recommender.interfaces import CategoryClassifier, RecommenderEngine
from recommender.models import FeedResult, Paper
from recommender.sources.arxiv import ArxivClient
from recommender.sources.importer import import_file
from recommender.store import Store

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    categories: list[str]
    announced: str | None = None  # None: the feed had no announcement
    new: int = 0
    cross: int = 0
    replaced: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    embedded: int = 0
    classified: int = 0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def validate_categories(store: Store, categories: Sequence[str]) -> list[str]:
    """Canonical codes for ``categories``; raises UnknownCategory on the first unknown one."""
    out: list[str] = []
    for c in categories:
        code = c.strip()
        if not code:
            continue
        # archive names (cs, math, astro-ph) are valid RSS feeds too
        out.append(code if store.is_archive(code) else store.canonical_category(code))
    return list(dict.fromkeys(out))


def fetch_feed(settings: Settings, store: Store, categories: Sequence[str] | None = None,
               client: ArxivClient | None = None) -> FeedResult:
    """The current RSS listing of ``categories`` (default: the setting), validated first (UnknownCategory).

    This is ingestion's network half: callers run it where a slow arXiv holds up nobody (the bot: a
    background thread; the command line: right away), then hand the feed to :func:`ingest`."""
    cats = validate_categories(store, categories or settings.categories)
    own_client = client is None
    client = client or ArxivClient(settings)
    try:
        return client.fetch_rss(cats)
    finally:
        if own_client:
            client.close()


def ingest(settings: Settings, store: Store, feed: FeedResult, categories: Sequence[str] | None = None,
           embed: Callable[[list[str]], int] | None = None,
           classify: Callable[[list[str]], int] | None = None) -> IngestReport:
    """Store an already-fetched RSS listing (see :func:`fetch_feed`) of ``categories`` (default: the setting),
    then embed and classify what changed."""
    cats = validate_categories(store, categories or settings.categories)
    report = IngestReport(categories=cats)
    report.announced = feed.announced
    store.record_feed_fetch(cats, feed.announced, len(feed.papers))
    if feed.announced is None:
        log.info("no announcement in the feed for %s", "+".join(cats))
        return report
    report.new, report.cross, report.replaced = len(feed.new), len(feed.cross), len(feed.replaced)
    listings = [(p.id, feed.announced, p.announce_type or "new") for p in feed.papers]
    with store.transaction():
        stats = store.upsert_papers(feed.papers)
        store.record_announcements(listings)
    store.sync_author_keys()  # the new authors' matching keys, so /follow author finds them without the work
    report.inserted, report.updated, report.unchanged = stats.inserted, stats.updated, stats.unchanged
    log.info("ingested %s listing of %s: %d new, %d cross, %d replaced (%s)", feed.announced, "+".join(cats),
             report.new, report.cross, report.replaced, stats.to_dict())
    changed = [pid for pid, _, kind in listings]  # new, cross-listed and replaced (text may have changed)
    # embedding gets the papers whose text a new version changed (their vectors must follow); it also embeds
    # every paper still without a vector
    steps: list[tuple[str, Callable[[], int] | None]] = [
        ("embedded", (lambda: embed(stats.text_changed)) if embed else None),
        ("classified", (lambda: classify(changed)) if classify else None)]
    for name, step in steps:
        if step is None:
            continue
        try:
            setattr(report, name, step())
        except Exception as exc:  # a model failure must not lose the stored listing
            log.exception("ingest step %s failed", name)
            report.errors.append(f"{name}: {type(exc).__name__}: {exc}")
    return report


def lookup_papers(store: Store, ids: Sequence[str], client: Callable[[], ArxivClient]) -> dict[str, Paper]:
    """Stored papers by (canonical) id; those the store lacks are fetched from the arXiv API through
    ``client()`` (called only then) and stored first. Ids arXiv does not know are absent from the result;
    arXiv errors propagate."""
    wanted = list(dict.fromkeys(ids))
    found = store.get_papers(wanted)
    lacking = [i for i in wanted if i not in found]
    if lacking:
        log.info("looking up %d paper(s) on arXiv: %s", len(lacking), ", ".join(lacking[:5]))
        fetched = [p for p in client().fetch_by_ids(lacking) if p.id in set(lacking)]
        if fetched:
            for p in fetched:  # a looked-up paper is not a new paper of any day
                p.announced, p.announce_type = None, None
            store.upsert_papers(fetched)
            found.update(store.get_papers([p.id for p in fetched]))
    return found


def model_name(classifier: CategoryClassifier) -> str:
    """The name stored with a classifier's predictions (its model directory's name, e.g. ``sharnn-v2``)."""
    return str(classifier.meta.get("name", "classifier"))


def classify_papers(store: Store, classifier: CategoryClassifier, ids: Sequence[str] | None = None,
                    model: str = "", batch_size: int = 256) -> int:
    """Predict and store the categories of ``ids`` (default: every paper without this model's predictions).

    Papers with neither title nor abstract are skipped. Returns how many papers got predictions."""
    model = model or model_name(classifier)
    todo = list(ids) if ids is not None else store.unpredicted_ids(model=model)
    done = 0
    for i in range(0, len(todo), batch_size):
        papers = [p for p in store.get_papers(todo[i:i + batch_size]).values() if (p.title + p.abstract).strip()]
        if not papers:
            continue
        preds = classifier.predict_batch([(p.title, p.abstract) for p in papers], batch_size=batch_size)
        done += store.save_predictions(((p.id, pred.categories) for p, pred in zip(papers, preds, strict=True)), model)
    return done


def model_steps(store: Store, engine: RecommenderEngine | None, get_classifier: Callable[[], CategoryClassifier]
                ) -> dict[str, Callable[[list[str]], int]]:
    """The ``embed`` and ``classify`` steps of :func:`ingest` for a recommender engine (None: no embedding) and
    a classifier loaded on first use (only when a listing actually has papers)."""
    steps: dict[str, Callable[[list[str]], int]] = {
        "classify": lambda ids: classify_papers(store, get_classifier(), ids)}
    if engine is not None:
        steps["embed"] = lambda changed: engine.refresh(changed) + engine.embed_missing(progress=False)
    return steps


def run_ingest(settings: Settings, categories: Sequence[str] | None = None, models: bool = True) -> IngestReport:
    """One whole ingestion with a store and models of its own: fetch the feed, store it, embed and classify
    what is new. ``arxiv-digest ingest`` runs it, and so does the bot, in a child process (see
    :mod:`recommender.engine.concurrency`): what it writes (rows, vector parts, the tf-idf file) is published
    for readers as it commits."""
    from recommender.classification.classify import get_classifier
    from recommender.engine.core import Engine

    settings.ensure_home()
    with Store(settings.db_path, taxonomy=settings.taxonomy_path) as store:
        steps: dict[str, Callable[..., int]] = {}
        if models:
            model_dir = Path(settings.classifier_dir) if settings.classifier_dir else None
            steps = model_steps(store, Engine(settings, store), lambda: get_classifier(model_dir))
        feed = fetch_feed(settings, store, categories)
        return ingest(settings, store, feed, categories, embed=steps.get("embed"), classify=steps.get("classify"))


def ensure_demo_corpus(settings: Settings, store: Store, progress: bool = True) -> int:
    """Import the bundled demo papers into an empty store; returns how many were imported."""
    if store.count_papers() > 0:
        return 0
    path = Path(settings.demo_corpus)
    if not path.is_file():
        log.warning("demo corpus %s not found; the store stays empty", path)
        return 0
    report, stats = import_file(store, path, progress=progress)
    log.info("imported %d demo papers from %s", stats["inserted"], path)
    return stats["inserted"]
