"""Papers that are always in a user's digest: new papers by the authors they follow and papers matching their
keyword alerts, each with the reason to show as its why-line.

:func:`must_include_many` answers for many users and a set of announcement days at once (the batched delivery
run): the days' new papers (cross-lists too for users who want them; replacements never), whatever their
category and score, minus what each user was sent or rated already. Authors are matched on folded names
(:func:`recommender.store.follows.split_name`: case, accents, initials, name order), alerts with the store's FTS5
phrase search, each distinct phrase once for all users. A digest takes at most ``cap`` of them (followed authors
first, then alerts, in paper id order); :func:`merge` puts them at the top of the ranked digest, taking its places
first and growing it beyond the user's digest size only when they alone outnumber it, so one digest holds at most
``max(digest size, cap)`` papers.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from recommender.store import Store, User
from recommender.store.follows import compatible, split_name

log = logging.getLogger(__name__)

MAX_DAILY = 10  # always-included papers in one daily digest (the rest are logged, not sent)
MAX_WEEKLY = 20  # in one weekly digest
NEW_TYPES = ("new", "cross")


@dataclass(frozen=True)
class MustInclude:
    paper_id: str
    why: str  # e.g. "by Claudio Bonanno, whom you follow; matches your alert “cathetus rule”"


def _by_surname(names: dict[str, list[str]]) -> dict[str, list[tuple[str, int, tuple[str, ...], str]]]:
    """Folded surname -> (paper id, author position, folded given names, name as written) of the pool's authors."""
    out: dict[str, list[tuple[str, int, tuple[str, ...], str]]] = {}
    keys: dict[str, tuple[tuple[str, ...], str]] = {}
    for pid, authors in names.items():
        for pos, name in enumerate(authors):
            key = keys.get(name)
            if key is None:
                key = keys[name] = split_name(name)
            out.setdefault(key[1], []).append((pid, pos, key[0], name))
    return out


def must_include_many(store: Store, users: Sequence[User], days: Sequence[str],
                      cap: int = MAX_DAILY) -> dict[int, list[MustInclude]]:
    """user id -> the papers of announcement ``days`` always in their digest (at most ``cap``); users without
    follows or alerts, or with nothing matching, are absent."""
    uids = [u.id for u in users]
    follows = store.author_follows_of(uids)
    alerts = store.alerts_of(uids)
    wanted = [u for u in users if u.id in follows or u.id in alerts]
    if not wanted or not days:
        return {}
    new: list[str] = []
    pool: list[str] = []
    for day in dict.fromkeys(days):
        new += store.announced_ids(day, ("new",))
        pool += store.announced_ids(day, NEW_TYPES)
    pool = list(dict.fromkeys(pool))
    only_new = set(new)
    if not pool:
        return {}
    authors = _by_surname(store.author_names(pool)) if any(u.id in follows for u in wanted) else {}
    phrases = {a.words for u in wanted for a in alerts.get(u.id, [])}
    matches = {words: sorted(store.phrase_matches(words, pool)) for words in phrases}
    out: dict[int, list[MustInclude]] = {}
    for u in wanted:
        seen = store.delivered_ids(u.id) | set(store.liked_ids(u.id)) | set(store.disliked_ids(u.id))
        if not u.cross_lists:
            seen |= set(pool) - only_new
        by: dict[str, tuple[int, str]] = {}  # paper -> (position, name) of its first followed author
        for f in follows.get(u.id, []):
            for pid, pos, given, name in authors.get(f.surname, ()):
                if pid not in seen and compatible(given, f.given) and (pid not in by or pos < by[pid][0]):
                    by[pid] = (pos, name)
        reasons = {pid: [f"by {by[pid][1]}, whom you follow"] for pid in sorted(by)}
        for alert in alerts.get(u.id, []):
            for pid in matches.get(alert.words, []):
                if pid not in seen:
                    reasons.setdefault(pid, []).append(f"matches your alert \u201c{alert.phrase}\u201d")
        if not reasons:
            continue
        ordered = sorted(by) + sorted(set(reasons) - set(by))
        if len(ordered) > cap:
            log.info("user %s: %d papers match follows or alerts on %s; the digest takes %d", u.id, len(ordered),
                     ",".join(days), cap)
        out[u.id] = [MustInclude(pid, "; ".join(dict.fromkeys(reasons[pid]))) for pid in ordered[:cap]]
    return out


def must_include(store: Store, user: User, days: Sequence[str], cap: int = MAX_DAILY) -> list[MustInclude]:
    """:func:`must_include_many` for one user."""
    return must_include_many(store, [user], days, cap).get(user.id, [])


class _Item(Protocol):
    @property
    def paper(self) -> _HasId: ...

    why: str


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=_Item)


def merge(ranked: Sequence[T], must: Sequence[MustInclude], size: int, make: Callable[[MustInclude], T | None]
          ) -> list[T]:
    """The digest: the ``must`` papers first (a ranked one keeps its score, its why-line prefixed by the must
    reason; others are built by ``make``, None when the paper is gone), then the best other ``ranked`` ones, up to
    ``size`` papers in all, or ``len(must)`` when those alone are more."""
    if not must:
        return list(ranked[:size])
    by_id = {r.paper.id: r for r in ranked}
    top: list[T] = []
    for m in must:
        item = by_id.get(m.paper_id)
        if item is not None:
            item.why = m.why
        else:
            item = make(m)
        if item is not None:
            top.append(item)
    taken = {t.paper.id for t in top}
    rest = [r for r in ranked if r.paper.id not in taken]
    return top + rest[:max(0, size - len(top))]
