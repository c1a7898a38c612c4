"""Keeps the bot token out of everything the process writes: log records, tracebacks, uncaught errors.

The token is a password: httpx logs request URLs (which contain it), python-telegram-bot puts it into
``InvalidToken`` messages, and any exception text may carry it. :func:`protect_token` installs, once per
process and token, a log-record factory that scrubs every record at birth (its message, its arguments, the
exception it carries and that exception's whole chain, the formatted traceback and stack), so every handler
(stderr, ``bot.log``, test capture) sees only ``<token>``; and ``sys.excepthook`` / ``threading.excepthook``
wrappers that scrub tracebacks nobody caught. The bot id before the colon is public; the secret after it is
scrubbed on its own too, as is the URL-encoded token. Process-wide by nature (logging and excepthooks are);
installing again is a no-op.
"""
from __future__ import annotations

import logging
import sys
import threading
import traceback
import urllib.parse
from collections.abc import Callable
from types import TracebackType
from typing import Any

REDACTED = "<token>"
_installed: dict[str, Redactor] = {}
_lock = threading.Lock()


class Redactor:
    """Replaces every form of one token in texts, exceptions and log records."""

    def __init__(self, token: str) -> None:
        forms = {token, urllib.parse.quote(token, safe="")}
        secret = token.partition(":")[2]
        if len(secret) >= 8:
            forms.add(secret)
        self.forms = sorted((f for f in forms if f), key=len, reverse=True)

    def leaks(self, text: str) -> bool:
        return any(f in text for f in self.forms)

    def scrub(self, text: str) -> str:
        for f in self.forms:
            text = text.replace(f, REDACTED)
        return text

    def scrub_exception(self, exc: BaseException | None) -> None:
        """Scrub ``exc`` and its causes and contexts in place (their args and message attributes)."""
        seen: set[int] = set()
        todo = [exc]
        while todo:
            e = todo.pop()
            if e is None or id(e) in seen:
                continue
            seen.add(id(e))
            try:
                if any(isinstance(a, str) and self.leaks(a) for a in e.args):
                    e.args = tuple(self.scrub(a) if isinstance(a, str) else a for a in e.args)
                for attr in ("message", "msg", "description"):
                    value = getattr(e, attr, None)
                    if isinstance(value, str) and self.leaks(value):
                        setattr(e, attr, self.scrub(value))
                notes = getattr(e, "__notes__", None)
                if isinstance(notes, list):
                    e.__notes__ = [self.scrub(n) if isinstance(n, str) else n for n in notes]
            except (AttributeError, TypeError):  # an exception type with read-only attributes
                pass
            todo += [e.__cause__, e.__context__]

    def format_exception(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                         tb: TracebackType | None) -> str:
        self.scrub_exception(exc)
        return self.scrub("".join(traceback.format_exception(exc_type, exc, tb)))

    def scrub_record(self, record: logging.LogRecord) -> logging.LogRecord:
        try:
            message = record.getMessage()
        except (TypeError, ValueError, KeyError):  # a broken format string: logging reports it later
            message = ""
        if self.leaks(message):
            record.msg, record.args = self.scrub(message), ()
        if record.exc_info and record.exc_info[1] is not None:
            exc_type, exc, tb = record.exc_info
            # formatted now, as Formatter.formatException would, so no handler formats the raw traceback
            record.exc_text = self.format_exception(exc_type, exc, tb).rstrip("\n")
        elif record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info)
        return record


class RedactToken(logging.Filter):
    """A logging filter form of :class:`Redactor`, for handlers created before :func:`protect_token`."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.redactor = Redactor(token)

    def filter(self, record: logging.LogRecord) -> bool:
        self.redactor.scrub_record(record)
        return True


def _scrubbing_factory(previous: Callable[..., logging.LogRecord], redactor: Redactor) -> Callable[
        ..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redactor.scrub_record(previous(*args, **kwargs))
    return factory


def _scrubbing_excepthook(previous: Callable[..., Any], redactor: Redactor) -> Callable[..., None]:
    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if previous is not sys.__excepthook__:  # someone else's hook: let it print the scrubbed exception
            redactor.scrub_exception(exc)
            previous(exc_type, exc, tb)
            return
        sys.stderr.write(redactor.format_exception(exc_type, exc, tb))
    return hook


def _scrubbing_threading_hook(previous: Callable[[threading.ExceptHookArgs], Any],
                              redactor: Redactor) -> Callable[[threading.ExceptHookArgs], None]:
    def hook(args: threading.ExceptHookArgs) -> None:
        redactor.scrub_exception(args.exc_value)
        previous(args)  # the default hook formats the (now scrubbed) exception; source lines hold no values
    return hook


def protect_token(token: str) -> Redactor | None:
    """Scrub ``token`` from every log record and uncaught traceback of this process from now on."""
    if not token:
        return None
    with _lock:
        if token in _installed:
            return _installed[token]
        redactor = _installed[token] = Redactor(token)
        logging.getLogger("httpx").setLevel(logging.WARNING)  # it logs every request URL at INFO
        logging.setLogRecordFactory(_scrubbing_factory(logging.getLogRecordFactory(), redactor))
        for handler in logging.getLogger().handlers:  # records made before now may still be queued
            handler.addFilter(RedactToken(token))
        sys.excepthook = _scrubbing_excepthook(sys.excepthook, redactor)
        threading.excepthook = _scrubbing_threading_hook(threading.excepthook, redactor)
        return redactor
