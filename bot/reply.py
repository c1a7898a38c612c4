"""What a command answers, independent of any chat service: text, buttons, an optional file.

A :class:`Reply` is rendered by ``bot.telegram`` (HTML message, inline keyboard, document) and by
``bot.console`` (plain text, numbered choices). Button data is the string the bot gets back when the button
is pressed; it must fit Telegram's 64-byte limit, which :class:`Button` checks at construction so a bad
button fails in tests, not in front of a user. ``toast`` is the short notice shown for a button press, and
``edit`` asks the front end to replace the message whose button was pressed instead of sending a new one,
and ``delivery`` marks a digest the front end logs as delivered once the message went out. ``followup`` is
slow work a command left for later (e.g. fetching a paper from arXiv after answering "fetching ..."): the
front end runs it off its reply path (Telegram: on the background worker; the terminal: right away) and sends
the Replies it returns as new messages.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .rich import Rich

MAX_CALLBACK_BYTES = 64


@dataclass(frozen=True)
class Button:
    label: str
    data: str = ""  # callback data, at most 64 bytes
    url: str = ""  # or a link

    def __post_init__(self) -> None:
        if not self.data and not self.url:
            raise ValueError("a button needs callback data or a url")
        if len(self.data.encode("utf-8")) > MAX_CALLBACK_BYTES:
            raise ValueError(f"callback data over {MAX_CALLBACK_BYTES} bytes: {self.data!r}")


@dataclass(frozen=True)
class Document:
    filename: str
    content: bytes
    caption: str = ""


@dataclass
class Reply:
    text: Rich = field(default_factory=Rich)
    buttons: list[list[Button]] = field(default_factory=list)
    document: Document | None = None
    toast: str = ""  # short notice for a button press (Telegram: answerCallbackQuery)
    edit: bool = False  # replace the message the pressed button belongs to
    delivery: Any = None  # a digest (bot.commands.DigestPlan) to log as delivered once this message is sent
    followup: Callable[[], list[Reply]] | None = None  # slow rest of the command, run off the reply path

    @classmethod
    def plain(cls, text: str, *, toast: str = "", edit: bool = False,
              followup: Callable[[], list[Reply]] | None = None) -> Reply:
        return cls(Rich().text(text), toast=toast, edit=edit, followup=followup)


def keyboard_equal(a: list[list[Button]], b: list[list[Button]]) -> bool:
    return [[(x.label, x.data, x.url) for x in row] for row in a] == [[(x.label, x.data, x.url) for x in row]
                                                                       for row in b]
