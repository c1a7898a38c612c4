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
