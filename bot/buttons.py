"""Callback-button codes: the one place that writes a button's data and reads it back when it is pressed.

A button's data is ``KIND:payload`` and must fit Telegram's 64 bytes (``bot.reply.Button`` checks that).
The kinds: ``L``/``D`` like/dislike (``L:<number in the digest, 0 on a card>:<paper id>``), ``S`` more like
this and ``C`` classify (``S:<paper id>``), ``FG`` a field's menu (``FG:<index>``, ``FG:`` all fields), ``F``
follow/unfollow a category (``F:<code>``), ``LK`` a page of likes (``LK:<page>``), ``ST`` a settings toggle
(``ST:pause``, ``ST:resume``, ``ST:cross:on``, ``ST:cross:off``), ``FA`` follow an author chosen from a list
(``FA:<author id>``: a row of the store's ``authors`` table). The encoders below build the data; :func:`parse`
turns pressed data into a typed :class:`Press` and raises :class:`StaleButton` for anything it did not write
(an old kind, a forged ``LK:²``, an id that is not an arXiv id), so a bad press is answered, never a crash.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from recommender.ids import InvalidArxivId, parse_arxiv_id

from .inputs import ascii_int

LIKE, DISLIKE, SIMILAR, CLASSIFY, FIELD, FOLLOW, LIKES, SETTINGS = "L", "D", "S", "C", "FG", "F", "LK", "ST"
AUTHOR = "FA"
KINDS = (LIKE, DISLIKE, SIMILAR, CLASSIFY, FIELD, FOLLOW, LIKES, SETTINGS, AUTHOR)
MAX_AUTHOR_ID = 2**62
MAX_NUMBER = 99  # a paper's number in a digest
MAX_FIELD = 99  # a field menu's index
MAX_PAGE = 100_000
SETTING_ACTIONS = ("pause", "resume", "cross:on", "cross:off")
_CODE = re.compile(r"[A-Za-z][A-Za-z.-]{0,31}")

OLDER_VERSION = "This button is from an older version of me; send /help."
OUT_OF_DATE = "This button is out of date."


class StaleButton(Exception):
    """Button data this version of the bot did not write; the message is a short answer for the user."""


@dataclass(frozen=True)
class Feedback:
    value: int  # 1 like, -1 dislike
    number: int  # the paper's number in the digest (0: a single paper's card)
    paper_id: str


@dataclass(frozen=True)
class PaperAction:
    kind: str  # SIMILAR or CLASSIFY
    paper_id: str


@dataclass(frozen=True)
class FieldMenu:
    index: int | None  # None: the menu of all fields


@dataclass(frozen=True)
class Follow:
    code: str


@dataclass(frozen=True)
class LikesPage:
    page: int


@dataclass(frozen=True)
class AuthorPick:
    author_id: int


@dataclass(frozen=True)
class SettingToggle:
    action: str  # one of SETTING_ACTIONS


Press = Feedback | PaperAction | FieldMenu | Follow | LikesPage | SettingToggle | AuthorPick


# -- encoders ---------------------------------------------------------------------------------------------
def like(number: int, paper_id: str) -> str:
    return f"{LIKE}:{number}:{paper_id}"


def dislike(number: int, paper_id: str) -> str:
    return f"{DISLIKE}:{number}:{paper_id}"


def similar(paper_id: str) -> str:
    return f"{SIMILAR}:{paper_id}"


def classify(paper_id: str) -> str:
    return f"{CLASSIFY}:{paper_id}"


def field_menu(index: int | None = None) -> str:
    return f"{FIELD}:" + ("" if index is None else str(index))


def follow(code: str) -> str:
    return f"{FOLLOW}:{code}"


def follow_author(author_id: int) -> str:
    return f"{AUTHOR}:{author_id}"


def likes_page(page: int) -> str:
    return f"{LIKES}:{page}"


def setting(action: str) -> str:
    if action not in SETTING_ACTIONS:
        raise ValueError(f"unknown settings button {action!r}")
    return f"{SETTINGS}:{action}"


# -- parsing ----------------------------------------------------------------------------------------------
def _paper_id(payload: str) -> str:
    try:
        return parse_arxiv_id(payload).id
    except InvalidArxivId:
        raise StaleButton(OUT_OF_DATE) from None


def _int(payload: str, lo: int, hi: int) -> int:
    value = ascii_int(payload, lo, hi)
    if value is None:
        raise StaleButton(OUT_OF_DATE)
    return value


def parse(data: str) -> Press:
    """The press that ``data`` encodes; :class:`StaleButton` if this version did not write it."""
    kind, sep, payload = (data or "").partition(":")
    if not sep or kind not in KINDS:
        raise StaleButton(OLDER_VERSION)
    if kind in (LIKE, DISLIKE):
        number, sep, pid = payload.partition(":")
        if not sep:
            raise StaleButton(OUT_OF_DATE)
        return Feedback(1 if kind == LIKE else -1, _int(number, 0, MAX_NUMBER), _paper_id(pid))
    if kind in (SIMILAR, CLASSIFY):
        return PaperAction(kind, _paper_id(payload))
    if kind == FIELD:
        return FieldMenu(None if payload == "" else _int(payload, 0, MAX_FIELD))
    if kind == FOLLOW:
        if not _CODE.fullmatch(payload):
            raise StaleButton(OUT_OF_DATE)
        return Follow(payload)
    if kind == LIKES:
        return LikesPage(_int(payload, 1, MAX_PAGE))
    if kind == AUTHOR:
        if not payload.isascii() or not payload.isdigit() or len(payload) > 19 or not 0 < int(payload) < MAX_AUTHOR_ID:
            raise StaleButton(OUT_OF_DATE)
        return AuthorPick(int(payload))
    if payload not in SETTING_ACTIONS:
        raise StaleButton(OUT_OF_DATE)
    return SettingToggle(payload)


def numbered_ids(data: list[str]) -> list[tuple[int, str]]:
    """The (number, paper id) of each like button among ``data``: how a digest keyboard is read back."""
    out: list[tuple[int, str]] = []
    for d in data:
        try:
            press = parse(d)
        except StaleButton:
            continue
        if isinstance(press, Feedback) and press.value > 0:
            out.append((press.number, press.paper_id))
    return out
