"""A fake arXiv for harvest tests: real papers with submission days, answered through the query API (Atom) and
OAI-PMH (``ListRecords`` in arXiv's metadata format, as oaipmh.arxiv.org writes it), with scriptable faults.

:class:`FakeArxiv` holds papers (each with its submission day in ``published`` and an OAI datestamp), and gives
two callables for :class:`tests.support.local_server.LocalServer` routes: :meth:`FakeArxiv.api` filters by the
query's ``cat:`` terms and ``submittedDate`` range and pages by ``start``/``max_results``; :meth:`FakeArxiv.oai`
filters by set (``cs:cs:LG``, ``physics:astro-ph``...) and datestamps ``from``..``until``, pages by
``page_size`` with resumption tokens, answers ``noRecordsMatch`` and, for tokens it no longer knows,
``badResumptionToken``. ``faults`` maps a request number (counted per route from 1) to an answer that replaces
the normal one (a 503, a 429, an empty page...); ``refuse_after`` answers 503 to every request past a number.
"""
from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any
from xml.sax.saxutils import escape

from recommender.models import Paper
from tests.support.arxiv_xml import api_error_feed, api_feed

OAI_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xsi:schemaLocation="http://www.openarchives.org/OAI/2.0/ http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd">\n'
    "  <responseDate>2026-07-01T00:00:00Z</responseDate>\n"
)


def _split_name(name: str) -> tuple[str, str]:
    """("Forenames", "Keyname") of a display name: the last word is the keyname."""
    parts = name.split()
    return (" ".join(parts[:-1]), parts[-1]) if len(parts) > 1 else ("", name)


def oai_record(p: Paper, datestamp: date, sets: Iterable[str]) -> str:
    created = (p.published or "2026-01-01")[:10]
    authors = []
    for a in p.authors:
        fore, key = _split_name(a)
        authors.append("<author><keyname>" + escape(key) + "</keyname>"
                       + (f"<forenames>{escape(fore)}</forenames>" if fore else "") + "</author>")
    parts = [
        "    <record>",
        f"      <header><identifier>oai:arXiv.org:{p.id}</identifier><datestamp>{datestamp}</datestamp>",
        *[f"        <setSpec>{escape(s)}</setSpec>" for s in sets],
        "      </header>",
        "      <metadata>",
        '        <arXiv xmlns="http://arxiv.org/OAI/arXiv/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="http://arxiv.org/OAI/arXiv/ http://arxiv.org/OAI/arXiv.xsd">',
        f"          <id>{p.id}</id>",
        f"          <created>{created}</created>",
        *([f"          <updated>{p.updated[:10]}</updated>"] if p.updated else []),
        f"          <authors>{''.join(authors)}</authors>",
        f"          <title>{escape(p.title)}</title>",
        f"          <categories>{escape(' '.join(p.categories))}</categories>",
        *([f"          <comments>{escape(p.comment)}</comments>"] if p.comment else []),
        *([f"          <journal-ref>{escape(p.journal_ref)}</journal-ref>"] if p.journal_ref else []),
        *([f"          <doi>{escape(p.doi)}</doi>"] if p.doi else []),
        "          <license>http://creativecommons.org/licenses/by/4.0/</license>",
        f"          <abstract>{escape(p.abstract)}</abstract>",
        "        </arXiv>",
        "      </metadata>",
        "    </record>",
    ]
    return "\n".join(parts)


def list_records(records: Iterable[str], params: dict[str, str], token: str | None = None,
                 cursor: int = 0, size: int | None = None) -> bytes:
    """A ListRecords answer; ``token`` None with ``size`` set writes the empty token of the last page."""
    attrs = " ".join(f'{k}="{escape(v)}"' for k, v in params.items())
    body = [OAI_HEAD, f"  <request {attrs}>https://oaipmh.arxiv.org/oai</request>\n", "  <ListRecords>\n",
            "\n".join(records), "\n"]
    if token is not None:
        body.append(f'    <resumptionToken cursor="{cursor}" completeListSize="{size}">{escape(token)}'
                    "</resumptionToken>\n")
    elif size is not None:
        body.append(f'    <resumptionToken cursor="{cursor}" completeListSize="{size}"/>\n')
    body += ["  </ListRecords>\n", "</OAI-PMH>\n"]
    return "".join(body).encode()


def oai_error(code: str, message: str, params: dict[str, str] | None = None) -> bytes:
    attrs = " ".join(f'{k}="{escape(v)}"' for k, v in (params or {}).items())
    return (OAI_HEAD + f"  <request {attrs}>https://oaipmh.arxiv.org/oai</request>\n"
            f'  <error code="{code}">{escape(message)}</error>\n</OAI-PMH>\n').encode()


def sets_of(categories: Iterable[str]) -> list[str]:
    """arXiv's OAI sets a paper with these categories is in (archive and category level)."""
    physics = {"astro-ph", "cond-mat", "gr-qc", "hep-ex", "hep-lat", "hep-ph", "hep-th", "math-ph", "nlin",
               "nucl-ex", "nucl-th", "physics", "quant-ph"}
    out: list[str] = []
    for c in categories:
        archive, _, subject = c.partition(".")
        group = "physics" if archive in physics else archive
        out.append(f"{group}:{archive}")
        if subject:
            out.append(f"{group}:{archive}:{subject}")
    return list(dict.fromkeys(out))


def with_days(papers: Iterable[Paper], first: date, days: int, later_every: int = 7) -> list[tuple[Paper, date]]:
    """Papers given submission days spread over ``days`` days from ``first`` (``published``, no announcement),
    and OAI datestamps: the submission day, or 200 days later for every ``later_every``-th paper (a record
    changed after submission)."""
    out = []
    for i, p in enumerate(papers):
        day = first + timedelta(days=(i * 7) % days)
        stamp = day + timedelta(days=200) if later_every and i % later_every == 3 else day
        out.append((replace(p, published=f"{day}T12:00:00Z", updated=None, announced=None, announce_type=None,
                            source=""), stamp))
    return out


@dataclass
class FakeArxiv:
    papers: list[tuple[Paper, date]]  # (paper, OAI datestamp)
    page_size: int = 50  # OAI records per page
    faults: dict[tuple[str, int], tuple[Any, ...]] = field(default_factory=dict)  # (route, n) -> answer
    refuse_after: dict[str, int] = field(default_factory=dict)  # route -> answer 503 past this many requests
    counts: dict[str, int] = field(default_factory=lambda: {"api": 0, "oai": 0})
    tokens: dict[str, tuple[str | None, str, str, int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _count(self, route: str) -> tuple[Any, ...] | None:
        with self.lock:
            self.counts[route] += 1
            n = self.counts[route]
        limit = self.refuse_after.get(route)
        if limit is not None and n > limit:
            return (503, "<html><body>Service Unavailable</body></html>", {"Retry-After": "0"})
        return self.faults.get((route, n))

    # -- the query API ------------------------------------------------------------------------------------
    def matching_api(self, query: str) -> list[Paper]:
        cats = set(re.findall(r"cat:([\w.\-]+)", query))
        m = re.search(r"submittedDate:\[(\d{8})\d{4} TO (\d{8})\d{4}\]", query)
        assert m, query
        lo, hi = (f"{d[:4]}-{d[4:6]}-{d[6:]}" for d in m.groups())
        hits = [p for p, _ in self.papers if set(p.categories) & cats and lo <= (p.published or "")[:10] <= hi]
        return sorted(hits, key=lambda p: (p.published or "", p.id))

    def api(self, path: str, query: dict[str, list[str]]) -> tuple[Any, ...]:
        fault = self._count("api")
        if fault is not None:
            return fault
        search = query["search_query"][0]
        if "bad" in search:
            return (200, api_error_feed("malformed query bad"))
        start, size = int(query["start"][0]), int(query["max_results"][0])
        hits = self.matching_api(search)
        return (200, api_feed(hits[start:start + size], len(hits), start, search))

    def empty_api_page(self, total: int) -> tuple[Any, ...]:
        return (200, api_feed([], total, 0, "throttled"))

    # -- OAI-PMH ------------------------------------------------------------------------------------------
    def matching_oai(self, set_spec: str | None, first: str, last: str) -> list[tuple[Paper, date]]:
        hits = [(p, d) for p, d in self.papers if first <= d.isoformat() <= last
                and (set_spec is None or set_spec in sets_of(p.categories))]
        return sorted(hits, key=lambda t: (t[1], t[0].id))

    def expire_tokens(self) -> None:
        self.tokens.clear()

    def oai(self, path: str, query: dict[str, list[str]]) -> tuple[Any, ...]:
        fault = self._count("oai")
        if fault is not None:
            return fault
        params = {k: v[0] for k, v in query.items()}
        if params.get("verb") != "ListRecords":
            return (200, oai_error("badVerb", "only ListRecords here", params))
        if "resumptionToken" in params:
            state = self.tokens.get(params["resumptionToken"])
            if state is None:
                return (200, oai_error("badResumptionToken", "token expired or unknown", params))
            set_spec, first, last, cursor = state
        else:
            if params.get("metadataPrefix") != "arXiv":
                return (200, oai_error("cannotDisseminateFormat", "wrong prefix", params))
            set_spec, first, last, cursor = params.get("set"), params["from"], params["until"], 0
        hits = self.matching_oai(set_spec, first, last)
        if not hits:
            return (200, oai_error("noRecordsMatch", "no records", params))
        page = hits[cursor:cursor + self.page_size]
        records = [oai_record(p, d, sets_of(p.categories)) for p, d in page]
        nxt = cursor + len(page)
        if nxt < len(hits):
            token = f"{set_spec}|{first}|{last}|{nxt}"
            self.tokens[token] = (set_spec, first, last, nxt)
            return (200, list_records(records, params, token, cursor, len(hits)))
        return (200, list_records(records, params, None, cursor, len(hits) if cursor else None))
