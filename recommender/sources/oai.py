"""arXiv's OAI-PMH interface for bulk harvests: ``ListRecords`` in arXiv's own metadata format, page by page.

The protocol is sickle's (a maintained OAI-PMH client): it parses the responses, turns OAI-PMH errors into
exceptions (``noRecordsMatch``, ``badResumptionToken``...), reads records and resumption tokens. Its HTTP is
ours: :class:`ArxivSickle` overrides ``Sickle.harvest`` to send every request through
:meth:`recommender.sources.arxiv.ArxivClient.fetch_oai`, so OAI requests take slots of the same politeness
budget as the query API (per process and, through ``<home>/arxiv_budget``, per state directory), back off on
503 + ``Retry-After`` (arXiv's OAI flow control) and stop at once on ``request_shutdown()``.
One page is one request; :func:`list_records_page` returns its papers and the token for the next, which the
harvest stores, so a stopped harvest resumes from the token.

Set specs follow arXiv's scheme: ``group`` (``cs``, ``math``, ``physics``), ``group:archive`` (``cs:cs``,
``math:math``, ``physics:astro-ph``) and ``group:archive:SUBJECT`` (``cs:cs:LG``, ``physics:astro-ph:GA``);
see :func:`set_spec`. arXiv's datestamps are last-modification days, not submission days.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Any

from lxml import etree
from sickle import Sickle, oaiexceptions
from sickle.iterator import OAIResponseIterator
from sickle.models import Record
from sickle.response import OAIResponse

from recommender.ids import InvalidArxivId, parse_arxiv_id
from recommender.models import Paper
from recommender.sources.arxiv import ArxivClient, ArxivError, clean_abstract, clean_title

log = logging.getLogger(__name__)

ARXIV_NS = "{http://arxiv.org/OAI/arXiv/}"
OAI_NS = "{http://www.openarchives.org/OAI/2.0/}"
METADATA_PREFIX = "arXiv"
PHYSICS_GROUP = "Physics"  # the taxonomy's display name of the group whose archives are subsets of ``physics``


class ExpiredToken(ArxivError):
    """arXiv no longer accepts a stored resumption token (``badResumptionToken``): start the window over."""


@dataclass
class OaiPage:
    """One ``ListRecords`` answer: its papers (deleted records left out), how many records it held, the token
    for the next page (None on the last) and the size of the whole list when arXiv says it."""

    papers: list[Paper]
    records: int
    token: str | None
    complete_size: int | None


def set_spec(code: str, archive: str | None, group: str | None) -> str:
    """arXiv's OAI set for a category or an archive: ``cs.LG`` -> ``cs:cs:LG``, ``astro-ph.GA`` ->
    ``physics:astro-ph:GA``, archive ``astro-ph`` -> ``physics:astro-ph``, archive ``math`` -> ``math:math``.
    ``archive`` is the code's archive (itself for an archive), ``group`` its group's display name."""
    archive = archive or code.split(".")[0]
    top = "physics" if group == PHYSICS_GROUP else archive
    if code == archive:
        return f"{top}:{archive}"
    subject = code.split(".", 1)[1] if "." in code else code
    return f"{top}:{archive}:{subject}"


class _Body:
    """What sickle's OAIResponse reads of an HTTP response: the body, as bytes and text."""

    def __init__(self, content: bytes) -> None:
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


class ArxivSickle(Sickle):  # type: ignore[misc]  # sickle ships no types
    """Sickle whose every request goes through the arXiv client's politeness (see the module docstring)."""

    def __init__(self, client: ArxivClient) -> None:
        super().__init__(client.settings.oai_url, iterator=OAIResponseIterator, max_retries=0)
        self.client = client

    def harvest(self, **kwargs: str) -> OAIResponse:
        return OAIResponse(_Body(self.client.fetch_oai(kwargs)), params=kwargs)


def _text(elem: Any, name: str) -> str | None:
    child = elem.find(ARXIV_NS + name)
    if child is None or child.text is None:
        return None
    value = " ".join(child.text.split())
    return value or None


def parse_record(elem: Any) -> Paper | None:
    """A paper from one ``<record>`` in arXiv's format; None for a deleted or unusable record (logged)."""
    try:
        record = Record(elem)
    except (IndexError, AttributeError):  # a record without metadata
        log.warning("OAI record without metadata skipped")
        return None
    if record.deleted:
        return None
    meta = elem.find(f".//{OAI_NS}metadata/{ARXIV_NS}arXiv")
    if meta is None:
        log.warning("OAI record %s is not in the arXiv format; skipped", record.header.identifier)
        return None
    try:
        pid = parse_arxiv_id(_text(meta, "id") or record.header.identifier or "")
    except InvalidArxivId:
        log.warning("OAI record with unusable id %r skipped", _text(meta, "id"))
        return None
    authors = []
    for author in meta.iterfind(f"{ARXIV_NS}authors/{ARXIV_NS}author"):
        parts = [_text(author, "forenames"), _text(author, "keyname"), _text(author, "suffix")]
        name = " ".join(p for p in parts if p)
        if name:
            authors.append(name)
    created, updated = _text(meta, "created"), _text(meta, "updated")
    abstract_elem = meta.find(ARXIV_NS + "abstract")
    return Paper(
        id=pid.id, version=pid.version or 1, title=clean_title(_text(meta, "title") or ""),
        abstract=clean_abstract(abstract_elem.text if abstract_elem is not None and abstract_elem.text else ""),
        authors=authors, categories=list(dict.fromkeys((_text(meta, "categories") or "").split())),
        comment=_text(meta, "comments"), journal_ref=_text(meta, "journal-ref"), doi=_text(meta, "doi"),
        published=f"{created}T00:00:00Z" if created else None,
        updated=f"{updated}T00:00:00Z" if updated else None, source="harvest-oai",
    )


def list_records_page(sickle: ArxivSickle, set_name: str | None, first: date, last: date,
                      token: str | None = None) -> OaiPage:
    """One page of ``ListRecords`` (metadataPrefix ``arXiv``): the first page of ``set_name`` with datestamps
    ``first``..``last``, or the page a resumption ``token`` points to. ``noRecordsMatch`` is an empty last page;
    ``badResumptionToken`` raises :class:`ExpiredToken`; other OAI-PMH errors and non-OAI answers ArxivError."""
    if token:
        params = {"verb": "ListRecords", "resumptionToken": token}
    else:
        params = {"verb": "ListRecords", "metadataPrefix": METADATA_PREFIX, "from": first.isoformat(),
                  "until": last.isoformat()}
        if set_name:
            params["set"] = set_name
    where = f"{sickle.endpoint} set {set_name or 'all'} {first}..{last}"
    try:
        response = OAIResponseIterator(sickle, params)
        xml = response.oai_response.xml
    except oaiexceptions.NoRecordsMatch:
        return OaiPage([], 0, None, 0)
    except oaiexceptions.BadResumptionToken as exc:
        raise ExpiredToken(f"{where}: arXiv refused the resumption token ({exc})") from None
    except oaiexceptions.OAIError as exc:
        raise ArxivError(f"{where}: OAI-PMH error {type(exc).__name__}: {exc}") from None
    except etree.XMLSyntaxError as exc:
        raise ArxivError(f"{where}: not an OAI-PMH answer ({exc})") from None
    if not str(xml.tag).endswith("OAI-PMH"):
        raise ArxivError(f"{where}: not an OAI-PMH answer (root element {xml.tag})")
    elems = list(xml.iterfind(f".//{OAI_NS}record"))
    papers = [p for p in (parse_record(e) for e in elems) if p is not None]
    rt = response.resumption_token
    size_raw = getattr(rt, "complete_list_size", None) if rt is not None else None
    complete = int(size_raw) if size_raw and str(size_raw).isdigit() else None
    next_token = rt.token if rt is not None and rt.token else None
    return OaiPage(papers, len(elems), next_token, complete)
