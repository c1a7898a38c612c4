"""Build arXiv's daily RSS 2.0 listing (the format rss.arxiv.org has served since 2024) from real papers.

Tests use it to serve realistic feeds from the local feed server: items carry ``arxiv:announce_type``,
``dc:creator``, one ``category`` per category, and the description ``arXiv:<id>v<N> Announce Type: <type>
\\nAbstract: ...``; a day without announcement is an empty channel.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from xml.sax.saxutils import escape

from recommender.models import Paper


def rss_feed(categories: Iterable[str], day: date | None, items: Iterable[tuple[Paper, str]]) -> bytes:
    cats = "+".join(categories)
    stamp = datetime(day.year, day.month, day.day).strftime("%a, %d %b %Y 00:00:00 -0400") if day else \
        "Sat, 05 Jul 2026 00:00:00 -0400"
    out = [
        '<?xml version=\'1.0\' encoding=\'UTF-8\'?>',
        '<rss xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:atom="http://www.w3.org/2005/Atom" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'version="2.0">',
        "  <channel>",
        f"    <title>{escape(cats)} updates on arXiv.org</title>",
        f"    <link>http://rss.arxiv.org/rss/{escape(cats)}</link>",
        f"    <description>{escape(cats)} updates on the arXiv.org e-print archive.</description>",
        f'    <atom:link href="https://rss.arxiv.org/rss/{escape(cats)}" rel="self" type="application/rss+xml"/>',
        "    <docs>http://www.rssboard.org/rss-specification</docs>",
        "    <language>en-us</language>",
        f"    <lastBuildDate>{stamp}</lastBuildDate>",
        "    <managingEditor>rss-help@arxiv.org</managingEditor>",
        f"    <pubDate>{stamp}</pubDate>",
        "    <skipDays>",
        "      <day>Saturday</day>",
        "      <day>Sunday</day>",
        "    </skipDays>",
    ]
    for paper, announce_type in items if day else []:
        vid = f"{paper.id}v{paper.version}"
        out += [
            "    <item>",
            f"      <title>{escape(paper.title)}</title>",
            f"      <link>https://arxiv.org/abs/{paper.id}</link>",
            f"      <description>arXiv:{vid} Announce Type: {announce_type} \nAbstract: {escape(paper.abstract)}"
            "</description>",
            f'      <guid isPermaLink="false">oai:arXiv.org:{vid}</guid>',
            *[f"      <category>{escape(c)}</category>" for c in paper.categories],
            f"      <pubDate>{stamp}</pubDate>",
            f"      <arxiv:announce_type>{announce_type}</arxiv:announce_type>",
            "      <dc:rights>http://creativecommons.org/licenses/by/4.0/</dc:rights>",
            f"      <dc:creator>{escape(', '.join(paper.authors))}</dc:creator>",
            "    </item>",
        ]
    out += ["  </channel>", "</rss>", ""]
    return "\n".join(out).encode("utf-8")


def api_feed(papers: Iterable[Paper], total: int, start: int = 0, query: str = "") -> bytes:
    """An arXiv query API answer (Atom 1.0 with opensearch counts) holding ``papers``, as export.arxiv.org
    writes it: ``<id>`` is the abs URL with version, one ``<category>`` per category, ``arxiv:primary_category``,
    and ``arxiv:comment``/``journal_ref``/``doi`` when the paper has them."""
    items = list(papers)
    out = [
        "<?xml version='1.0' encoding='UTF-8'?>",
        '<feed xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" xmlns:arxiv="http://arxiv.org/schemas/atom" '
        'xmlns="http://www.w3.org/2005/Atom">',
        "  <id>https://arxiv.org/api/harvest-test</id>",
        f"  <title>arXiv Query: search_query={escape(query)}&amp;start={start}</title>",
        "  <updated>2026-07-01T00:00:00Z</updated>",
        f"  <opensearch:itemsPerPage>{len(items)}</opensearch:itemsPerPage>",
        f"  <opensearch:totalResults>{total}</opensearch:totalResults>",
        f"  <opensearch:startIndex>{start}</opensearch:startIndex>",
    ]
    for p in items:
        published = p.published or "2026-01-01T00:00:00Z"
        out += [
            "  <entry>",
            f"    <id>http://arxiv.org/abs/{p.id}v{p.version}</id>",
            f"    <title>{escape(p.title)}</title>",
            f"    <updated>{p.updated or published}</updated>",
            f'    <link href="https://arxiv.org/abs/{p.id}v{p.version}" rel="alternate" type="text/html"/>',
            f"    <summary>{escape(p.abstract)}</summary>",
            *[f'    <category term="{escape(c)}" scheme="http://arxiv.org/schemas/atom"/>' for c in p.categories],
            f"    <published>{published}</published>",
            *([f"    <arxiv:comment>{escape(p.comment)}</arxiv:comment>"] if p.comment else []),
            *([f'    <arxiv:primary_category term="{escape(p.categories[0])}"/>'] if p.categories else []),
            *([f"    <arxiv:journal_ref>{escape(p.journal_ref)}</arxiv:journal_ref>"] if p.journal_ref else []),
            *[f"    <author>\n      <name>{escape(a)}</name>\n    </author>" for a in p.authors],
            *([f"    <arxiv:doi>{escape(p.doi)}</arxiv:doi>"] if p.doi else []),
            "  </entry>",
        ]
    out += ["</feed>", ""]
    return "\n".join(out).encode("utf-8")


def api_error_feed(message: str) -> bytes:
    """The API's error answer: one entry whose id is an ``/api/errors#...`` URL and whose title is ``Error``."""
    anchor = "_".join(message.split())
    return (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        '<feed xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" xmlns:arxiv="http://arxiv.org/schemas/atom" '
        'xmlns="http://www.w3.org/2005/Atom">\n'
        "  <id>https://arxiv.org/</id>\n  <title>arXiv Search Results</title>\n"
        "  <updated>2026-07-01T00:00:00Z</updated>\n"
        "  <opensearch:itemsPerPage>1</opensearch:itemsPerPage>\n"
        "  <opensearch:totalResults>1</opensearch:totalResults>\n"
        "  <opensearch:startIndex>0</opensearch:startIndex>\n"
        f"  <entry>\n    <id>https://arxiv.org/api/errors#{escape(anchor)}</id>\n    <title>Error</title>\n"
        "    <updated>2026-07-01T00:00:00Z</updated>\n"
        f"    <summary>{escape(message)}</summary>\n"
        "    <author>\n      <name>arXiv api core</name>\n    </author>\n  </entry>\n</feed>\n"
    ).encode()
