"""Long polling that one malformed update cannot stall: the ``getUpdates`` request screens update by update.

python-telegram-bot parses a whole ``getUpdates`` answer at once; if one update does not parse, it logs the
whole batch at CRITICAL, does not move its offset and asks again at once, so one bad update made the bot
retry in a tight loop (34 MB of log in 20 s) and answer nobody. :class:`ScreeningRequest` is the request
object PTB's updater uses for ``getUpdates`` (``ApplicationBuilder.get_updates_request``): it parses each
update on its own, logs a bad one once (its id, the error, the start of its data) and replaces it with an
empty update carrying the same ``update_id``. PTB then confirms it with the next offset like any other, and
no handler matches an empty update, so the good updates around it are answered and the bad one is never
fetched again. An answer that is not a list at all is raised as a network error, which PTB retries with
growing pauses instead of at once.
"""
from __future__ import annotations

import copy
import json
import logging
from collections import OrderedDict
from http import HTTPStatus
from typing import Any

from telegram import Update
from telegram.error import NetworkError
from telegram.request import HTTPXRequest, RequestData

log = logging.getLogger(__name__)
MAX_REMEMBERED = 1000  # bad update ids remembered so each is logged once even if fetched again
DATA_PREVIEW = 300


def screen_updates(result: Any, logged: OrderedDict[int, None] | None = None) -> list[dict[str, Any]]:
    """``getUpdates``' result with every update PTB cannot parse replaced by ``{"update_id": id}``.

    An update without an integer ``update_id`` is dropped (Telegram never sends one; a batch of nothing else
    is raised as a network error, retried with pauses). ``logged`` remembers the ids already reported, so a
    bad update fetched twice is logged once.
    """
    if not isinstance(result, list):
        raise NetworkError(f"getUpdates answered a {type(result).__name__}, not a list of updates")
    out: list[dict[str, Any]] = []
    for raw in result:
        update_id = raw.get("update_id") if isinstance(raw, dict) else None
        if isinstance(update_id, bool) or not isinstance(update_id, int):
            update_id = None
        try:
            if update_id is None:
                raise ValueError(f"no integer update_id in {type(raw).__name__}")
            Update.de_json(copy.deepcopy(raw), None)
        except Exception as exc:  # noqa: BLE001  anything PTB's parser raises for a malformed update
            if logged is None or update_id is None or update_id not in logged:
                log.error("skipping update %s that cannot be parsed (%s: %s); data: %.*s", update_id,
                          type(exc).__name__, exc, DATA_PREVIEW, repr(raw))
            if update_id is not None:
                if logged is not None:
                    logged[update_id] = None
                    while len(logged) > MAX_REMEMBERED:
                        logged.popitem(last=False)
                out.append({"update_id": update_id})
            continue
        out.append(raw)
    if result and not out:  # nothing to confirm, so asking again at once would get the same: back off instead
        raise NetworkError(f"getUpdates answered {len(result)} updates, none with an update_id")
    return out


class ScreeningRequest(HTTPXRequest):
    """An ``HTTPXRequest`` whose ``getUpdates`` answers pass through :func:`screen_updates` (PTB's documented
    extension point for requests is ``do_request``; ``post`` is final)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("connection_pool_size", 1)  # as PTB's own getUpdates request: one long poll at a time
        super().__init__(**kwargs)
        self._logged: OrderedDict[int, None] = OrderedDict()

    async def do_request(self, url: str, method: str, request_data: RequestData | None = None,
                         *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        code, payload = await super().do_request(url, method, request_data, *args, **kwargs)
        if code != HTTPStatus.OK or url.rsplit("/", 1)[-1] != "getUpdates":
            return code, payload
        try:
            answer = json.loads(payload)
        except ValueError:
            return code, payload  # PTB reports an unreadable answer itself, as a network error
        if isinstance(answer, dict) and answer.get("ok") and "result" in answer:
            answer["result"] = screen_updates(answer["result"], self._logged)
            payload = json.dumps(answer).encode()
        return code, payload
