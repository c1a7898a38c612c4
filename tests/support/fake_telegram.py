"""A fake Telegram Bot API server on 127.0.0.1 that enforces Telegram's rules, for tests and benchmarks.

It speaks the Bot API over HTTP (``/bot<token>/<method>``, form, multipart or JSON bodies) well enough for
python-telegram-bot: ``getMe``, ``getUpdates`` (long polling), ``setMyCommands``, ``sendMessage``,
``editMessageText``, ``editMessageReplyMarkup``, ``answerCallbackQuery``, ``sendDocument``,
``sendChatAction``, ``deleteWebhook``, ``getFile`` (the file itself served under ``/file/bot<token>/``) and
``getChatMember`` (group admins in :attr:`FakeTelegram.admins`). And it refuses what Telegram refuses, with
Telegram's error texts: message text over 4096 characters (UTF-16 units, after entity parsing) or empty,
invalid HTML (unknown or unbalanced tags, a bare ``<``, ``>`` or ``&``), callback data over 64 bytes, an edit
to identical content ("message is not modified"), callback answers over 200 characters; it answers 429 with
``retry_after`` when more than ``max_per_second`` messages arrive within a second overall or more than
``max_per_chat`` within a second to one chat, 403 for users who blocked the bot (and groups it left), 401 for
any token but its own, and injected 5xx errors or delays on demand. Tests play users with
:meth:`FakeTelegram.send_text`, :meth:`FakeTelegram.send_document`, :meth:`FakeTelegram.send_group_text`,
:meth:`FakeTelegram.group_member_update` and :meth:`FakeTelegram.press`
(also forged or odd presses: from a group, on a message Telegram no longer shows, with only an
``inline_message_id``), delete messages with :meth:`FakeTelegram.delete`, put raw (even malformed) updates
into ``getUpdates`` with :meth:`FakeTelegram.inject`, and read what the bot sent from :attr:`FakeTelegram.chats`.
"""
from __future__ import annotations

import collections
import email.parser
import email.policy
import html
import itertools
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

TOKEN = "123456:TEST-token-for-the-fake-server"
BOT_USER = {"id": 123456, "is_bot": True, "first_name": "arxiv-digest", "username": "arxiv_digest_bot",
            "can_join_groups": False, "can_read_all_group_messages": False, "supports_inline_queries": False}
ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "tg-spoiler",
                "span", "blockquote", "tg-emoji"}
SEND_METHODS = {"sendMessage", "sendDocument", "editMessageText", "editMessageReplyMarkup"}
NOT_MODIFIED = ("Bad Request: message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message")


class ApiError(Exception):
    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.retry_after = code, description, retry_after


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


_TAG = re.compile(r'<(/?)([a-zA-Z][a-zA-Z0-9\-]*)((?:\s+[a-zA-Z\-]+\s*=\s*"[^"<>]*")*)\s*>')
_ENTITY = re.compile(r"&(lt|gt|amp|quot|#\d{1,7}|#x[0-9a-fA-F]{1,6});")


def parse_html(text: str) -> str:
    """The plain text of Telegram HTML; raises ApiError like Telegram for anything it would reject."""
    out: list[str] = []
    stack: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "<":
            m = _TAG.match(text, i)
            if not m:
                raise ApiError(400, f"Bad Request: can't parse entities: Unsupported start tag at byte offset "
                                    f"{len(text[:i].encode())}")
            closing, tag = m[1] == "/", m[2].lower()
            if tag not in ALLOWED_TAGS:
                raise ApiError(400, f'Bad Request: can\'t parse entities: Unsupported start tag "{tag}" at byte '
                                    f"offset {len(text[:i].encode())}")
            if closing:
                if not stack or stack[-1] != tag:
                    raise ApiError(400, f'Bad Request: can\'t parse entities: Unexpected end tag "{tag}" at byte '
                                        f"offset {len(text[:i].encode())}")
                stack.pop()
            else:
                if tag == "a" and "href=" not in m[3]:
                    raise ApiError(400, "Bad Request: can't parse entities: Wrong href")
                stack.append(tag)
            i = m.end()
        elif ch == "&":
            m = _ENTITY.match(text, i)
            if not m:
                raise ApiError(400, f"Bad Request: can't parse entities: Can't find end of the entity starting at "
                                    f"byte offset {len(text[:i].encode())}")
            out.append(html.unescape(m[0]))
            i = m.end()
        elif ch == ">":
            raise ApiError(400, f"Bad Request: can't parse entities: Unescaped > at byte offset "
                                f"{len(text[:i].encode())}")
        else:
            out.append(ch)
            i += 1
    if stack:
        raise ApiError(400, f'Bad Request: can\'t parse entities: Can\'t find end tag corresponding to start tag '
                            f'"{stack[-1]}"')
    return "".join(out)


def check_markup(markup: Any) -> dict | None:
    if markup in (None, ""):
        return None
    if isinstance(markup, str):
        try:
            markup = json.loads(markup)
        except ValueError:
            raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object") from None
    rows = markup.get("inline_keyboard")
    if not isinstance(rows, list):
        raise ApiError(400, "Bad Request: field \"inline_keyboard\" of the InlineKeyboardMarkup must be an Array")
    if sum(len(r) for r in rows) > 100:
        raise ApiError(400, "Bad Request: reply markup is too long")
    for row in rows:
        for b in row:
            if not b.get("text"):
                raise ApiError(400, "Bad Request: text buttons are unallowed in the inline keyboard")
            data = b.get("callback_data")
            if data is not None and not 1 <= len(data.encode("utf-8")) <= 64:
                raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
            if data is None and not b.get("url"):
                raise ApiError(400, "Bad Request: can't find field \"callback_data\"")
    return markup


class _QuietServer(ThreadingHTTPServer):
    """A client hanging up mid-request (a bot shutting down its long poll) is normal here, not an error."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass
class Sent:
    """A message the bot sent (its latest state after edits)."""

    message_id: int
    chat_id: int
    text: str = ""  # plain text after HTML parsing
    html: str = ""
    markup: dict | None = None
    document: tuple[str, bytes] | None = None
    caption: str = ""
    sent_at: float = field(default_factory=time.monotonic)
    edits: int = 0

    def callback_data(self) -> list[str]:
        return [b.get("callback_data", "") for row in (self.markup or {}).get("inline_keyboard", []) for b in row]

    def labels(self) -> list[str]:
        return [b["text"] for row in (self.markup or {}).get("inline_keyboard", []) for b in row]

    def button(self, label_startswith: str) -> str:
        for row in (self.markup or {}).get("inline_keyboard", []):
            for b in row:
                if b["text"].startswith(label_startswith):
                    return b["callback_data"]
        raise KeyError(label_startswith)


class FakeTelegram:
    def __init__(self, token: str = TOKEN, max_per_second: int = 30, max_per_chat: int = 3,
                 poll_cap: float = 2.0) -> None:
        self.token = token
        self.max_per_second = max_per_second
        self.max_per_chat = max_per_chat
        self.poll_cap = poll_cap
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.updates: list[dict] = []
        self.update_ids = itertools.count(1)
        self.message_ids = itertools.count(1000)
        self.callback_ids = itertools.count(1)
        self.chats: dict[int, list[Sent]] = collections.defaultdict(list)
        self.by_id: dict[tuple[int, int], Sent] = {}
        self.callbacks: dict[str, dict] = {}  # id -> {"answered": bool, "text": str, "user": id}
        self.calls: list[tuple[str, dict]] = []
        self.errors: list[tuple[str, int, str]] = []  # (method, code, description) we answered
        self.commands: list[dict] = []
        self.blocked: set[int] = set()
        self.files: dict[str, tuple[str, bytes]] = {}  # file_id -> (file_path, content) of documents users sent
        self.downloads: list[str] = []  # file paths the bot downloaded
        self.admins: dict[int, set[int]] = collections.defaultdict(set)  # group chat id -> its admins' user ids
        self.owners: dict[int, int] = {}  # group chat id -> its creator's user id
        self.failures: list[dict] = []  # injected: {"method", "status", "times", "retry_after", "delay"}
        self.answer_delay = 0.0  # seconds between accepting a sendMessage and answering it
        self.html_refused: set[int] = set()  # chats whose HTML messages are refused (400)
        self.recent: collections.deque[tuple[float, int]] = collections.deque()  # (time, chat) of sends
        self.rate_violations = 0
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    # -- life cycle ---------------------------------------------------------------------------------------
    def start(self) -> Self:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                fake._serve(self)

            do_GET = do_POST

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="fake-telegram")
        self.thread.start()
        return self

    def stop(self) -> None:
        with self.cond:
            self.cond.notify_all()
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/bot"

    # -- playing users ------------------------------------------------------------------------------------
    @staticmethod
    def _user(user_id: int, name: str = "") -> dict:
        return {"id": user_id, "is_bot": False, "first_name": name or f"User{user_id}", "language_code": "en"}

    def _push(self, update: dict) -> dict:
        with self.cond:
            update["update_id"] = next(self.update_ids)
            self.updates.append(update)
            self.cond.notify_all()
        return update

    def inject(self, update: dict) -> dict:
        """Queue ``update`` for ``getUpdates`` exactly as given (it may be malformed); an ``update_id`` is
        added unless present. Returns the queued dict."""
        with self.cond:
            if "update_id" not in update:
                update["update_id"] = next(self.update_ids)
            self.updates.append(update)
            self.cond.notify_all()
        return update

    def pending_updates(self) -> list[dict]:
        """Updates not yet confirmed by the bot (a later ``getUpdates`` offset confirms them)."""
        with self.lock:
            return list(self.updates)

    def send_text(self, user_id: int, text: str, chat_type: str = "private", edited: bool = False,
                  name: str = "") -> dict:
        chat_id = user_id if chat_type == "private" else -abs(user_id) - 1_000_000
        chat = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = name or f"User{user_id}"
        else:
            chat["title"] = "A group"
        msg: dict[str, Any] = {"message_id": next(self.message_ids), "date": int(time.time()), "chat": chat,
                               "from": self._user(user_id, name), "text": text}
        m = re.match(r"^/[A-Za-z0-9_]+(@\w+)?", text)
        if m:
            msg["entities"] = [{"type": "bot_command", "offset": 0, "length": utf16_len(m[0])}]
        if edited:
            msg["edit_date"] = int(time.time())
        return self._push({"edited_message" if edited else "message": msg})

    def send_sticker(self, user_id: int) -> dict:
        msg = {"message_id": next(self.message_ids), "date": int(time.time()),
               "chat": {"id": user_id, "type": "private", "first_name": f"User{user_id}"},
               "from": self._user(user_id),
               "sticker": {"file_id": "CAACAgI", "file_unique_id": "AgAD", "width": 512, "height": 512,
                           "is_animated": False, "is_video": False, "type": "regular"}}
        return self._push({"message": msg})

    def member_update(self, user_id: int, status: str) -> dict:
        """The user blocked ("kicked") or restarted ("member") the bot: Telegram's my_chat_member update."""
        with self.lock:
            if status == "kicked":
                self.blocked.add(user_id)
            else:
                self.blocked.discard(user_id)
        old = "member" if status == "kicked" else "kicked"

        def member(st: str) -> dict[str, Any]:
            return {"user": BOT_USER, "status": st, **({"until_date": 0} if st == "kicked" else {})}

        return self._push({"my_chat_member": {
            "chat": {"id": user_id, "type": "private", "first_name": f"User{user_id}"},
            "from": self._user(user_id), "date": int(time.time()),
            "old_chat_member": member(old), "new_chat_member": member(status)}})

    def send_document(self, user_id: int, filename: str, content: bytes, mime_type: str | None = None,
                      declared_size: int | None = None, group_id: int | None = None) -> dict:
        """User ``user_id`` sends a file (in their private chat, or in group ``group_id``); the bot fetches it
        with ``getFile`` and then ``GET /file/bot<token>/<file_path>``. ``declared_size`` overrides the
        ``file_size`` Telegram announces (-1: none announced)."""
        with self.lock:
            file_id = f"BQACAgIAAx{len(self.files) + 1:04d}"
            self.files[file_id] = (f"documents/file_{len(self.files) + 1}.{filename.rsplit('.', 1)[-1]}", content)
        doc: dict[str, Any] = {"file_id": file_id, "file_unique_id": f"AgAD{len(self.files)}", "file_name": filename}
        if mime_type:
            doc["mime_type"] = mime_type
        size = len(content) if declared_size is None else declared_size
        if size >= 0:
            doc["file_size"] = size
        chat = self._group_chat(group_id) if group_id is not None else \
            {"id": user_id, "type": "private", "first_name": f"User{user_id}"}
        msg = {"message_id": next(self.message_ids), "date": int(time.time()), "chat": chat,
               "from": self._user(user_id), "document": doc}
        return self._push({"message": msg})

    @staticmethod
    def _group_chat(group_id: int, title: str = "Reading group") -> dict:
        return {"id": group_id, "type": "group" if group_id > -1_000_000_000_000 else "supergroup", "title": title}

    def send_group_text(self, group_id: int, user_id: int, text: str, title: str = "Reading group",
                        anonymous_admin: bool = False) -> dict:
        """Member ``user_id`` writes ``text`` in group ``group_id`` (a negative id); ``anonymous_admin``: sent
        as the group itself, as Telegram does for an admin who stays anonymous."""
        msg: dict[str, Any] = {"message_id": next(self.message_ids), "date": int(time.time()),
                               "chat": self._group_chat(group_id, title), "from": self._user(user_id), "text": text}
        if anonymous_admin:
            msg["from"] = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
            msg["sender_chat"] = self._group_chat(group_id, title)
        m = re.match(r"^/[A-Za-z0-9_]+(@\w+)?", text)
        if m:
            msg["entities"] = [{"type": "bot_command", "offset": 0, "length": utf16_len(m[0])}]
        return self._push({"message": msg})

    def group_member_update(self, group_id: int, status: str, by_user: int, title: str = "Reading group") -> dict:
        """The bot is added to ("member", "administrator") or removed from ("left", "kicked") group ``group_id``
        by ``by_user``: Telegram's my_chat_member update. Removed, the bot's messages there are refused (403)."""
        with self.lock:
            if status in ("left", "kicked"):
                self.blocked.add(group_id)
            else:
                self.blocked.discard(group_id)
        old = "left" if status not in ("left", "kicked") else "member"
        return self._push({"my_chat_member": {
            "chat": self._group_chat(group_id, title), "from": self._user(by_user), "date": int(time.time()),
            "old_chat_member": self._member_json(BOT_USER, old),
            "new_chat_member": self._member_json(BOT_USER, status)}})

    @staticmethod
    def _member_json(user: dict, status: str) -> dict[str, Any]:
        out: dict[str, Any] = {"user": user, "status": status}
        if status == "kicked":
            out["until_date"] = 0
        if status == "creator":
            out["is_anonymous"] = False
        if status == "administrator":
            out.update({k: k != "can_be_edited" for k in (
                "can_be_edited", "is_anonymous", "can_manage_chat", "can_delete_messages", "can_manage_video_chats",
                "can_restrict_members", "can_promote_members", "can_change_info", "can_invite_users",
                "can_post_stories", "can_edit_stories", "can_delete_stories")})
            out["is_anonymous"] = False
        return out

    def press(self, user_id: int, message: Sent, data: str, *, group: bool = False, inline: bool = False,
              inaccessible: bool = False) -> str:
        """User ``user_id`` presses a button with ``data`` under ``message``; returns the callback query id.

        ``group``: the press claims to come from a group chat (``message.chat`` is a supergroup);
        ``inline``: the query carries only an ``inline_message_id`` and no message; ``inaccessible``: the
        message is one Telegram no longer shows (an ``InaccessibleMessage``, ``date`` 0)."""
        cid = str(next(self.callback_ids))
        with self.lock:
            self.callbacks[cid] = {"answered": False, "text": None, "user": user_id}
            msg = self._message_json(message)
        if group:
            msg["chat"] = {"id": -1_000_000_000_000 - abs(user_id), "type": "supergroup", "title": "A group"}
        if inaccessible:
            msg = {"chat": msg["chat"], "message_id": msg["message_id"], "date": 0}
        query: dict[str, Any] = {"id": cid, "from": self._user(user_id), "chat_instance": f"ci{user_id}",
                                 "data": data}
        if inline:
            query["inline_message_id"] = f"inline{message.message_id}"
        else:
            query["message"] = msg
        self._push({"callback_query": query})
        return cid

    def delete(self, message: Sent) -> None:
        """The user deletes ``message``: later edits of it fail with "message to edit not found"."""
        with self.lock:
            self.by_id.pop((message.chat_id, message.message_id), None)
            chat = self.chats.get(message.chat_id, [])
            if message in chat:
                chat.remove(message)

    # -- failure injection ----------------------------------------------------------------------------------
    def block(self, user_id: int) -> None:
        with self.lock:
            self.blocked.add(user_id)

    def fail(self, method: str = "sendMessage", status: int = 502, times: int = 1, retry_after: int = 1,
             delay: float = 0.0) -> None:
        """Answer the next ``times`` calls of ``method`` with ``status`` (429/5xx); with ``delay``, hang that
        long first and then drop the call unprocessed (the client should have timed out by then)."""
        with self.lock:
            self.failures.append({"method": method, "status": status, "times": times, "retry_after": retry_after,
                                  "delay": delay})

    def slow_answers(self, seconds: float) -> None:
        """Deliver every sendMessage at once but answer it only ``seconds`` later (a slow Telegram: a client
        killed in between cannot know its message went out)."""
        self.answer_delay = seconds

    def refuse_html(self, chat_id: int) -> None:
        """Refuse every HTML sendMessage to ``chat_id`` with Telegram's "can't parse entities" (400)."""
        with self.lock:
            self.html_refused.add(chat_id)

    # -- reading what the bot did -----------------------------------------------------------------------
    def messages(self, chat_id: int) -> list[Sent]:
        with self.lock:
            return list(self.chats.get(chat_id, []))

    def texts(self, chat_id: int) -> list[str]:
        return [m.text for m in self.messages(chat_id)]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                value = predicate()
            if value:
                return value
            time.sleep(0.01)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    async def until(self, predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
        """Like :meth:`wait_for`, for async tests (does not block the event loop the bot runs on)."""
        import asyncio
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                value = predicate()
            if value:
                return value
            await asyncio.sleep(0.005)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    async def replies(self, chat_id: int, count: int, timeout: float = 20.0) -> list[Sent]:
        """Wait until chat ``chat_id`` holds ``count`` messages; return them all."""
        await self.until(lambda: len(self.chats.get(chat_id, [])) >= count, timeout,
                         f"{count} messages in chat {chat_id} (have {len(self.chats.get(chat_id, []))}: "
                         f"{[m.text[:60] for m in self.chats.get(chat_id, [])]})")
        return self.messages(chat_id)

    async def answer_of(self, callback_id: str, timeout: float = 20.0) -> dict:
        await self.until(lambda: self.callbacks[callback_id]["answered"], timeout, f"answer to {callback_id}")
        return self.callbacks[callback_id]

    def wait_messages(self, chat_id: int, count: int, timeout: float = 20.0) -> list[Sent]:
        self.wait_for(lambda: len(self.chats.get(chat_id, [])) >= count, timeout,
                      f"{count} messages in chat {chat_id} (have {len(self.chats.get(chat_id, []))})")
        return self.messages(chat_id)

    def answered(self, callback_id: str, timeout: float = 20.0) -> dict:
        self.wait_for(lambda: self.callbacks[callback_id]["answered"], timeout, f"answer to callback {callback_id}")
        return self.callbacks[callback_id]

    # -- the HTTP side -------------------------------------------------------------------------------------
    def _serve(self, req: BaseHTTPRequestHandler) -> None:
        m = re.match(r"^/bot([^/]+)/(\w+)$", urllib.parse.urlsplit(req.path).path)
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        if self._serve_file(req):
            return
        status, payload = 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        if m and m[1] == self.token:
            method = m[2]
            try:
                params = self._params(req.headers.get("Content-Type", ""), body)
                result = self._call(method, params)
                status, payload = 200, {"ok": True, "result": result}
            except ApiError as exc:
                status = exc.code
                payload = {"ok": False, "error_code": exc.code, "description": exc.description}
                if exc.retry_after is not None:
                    payload["parameters"] = {"retry_after": exc.retry_after}
                with self.lock:
                    self.errors.append((method, exc.code, exc.description))
        elif m:
            status, payload = 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        data = json.dumps(payload).encode()
        try:
            req.send_response(status)
            req.send_header("Content-Type", "application/json")
            req.send_header("Content-Length", str(len(data)))
            req.end_headers()
            req.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _serve_file(self, req: BaseHTTPRequestHandler) -> bool:
        """``GET /file/bot<token>/<file_path>``: a file a user sent (404 for any other path or token)."""
        f = re.match(r"^/file/bot([^/]+)/(.+)$", urllib.parse.unquote(urllib.parse.urlsplit(req.path).path))
        if not f:
            return False
        with self.lock:
            found = next((c for p, c in self.files.values() if p == f[2]), None) if f[1] == self.token else None
            if found is not None:
                self.downloads.append(f[2])
        data = found if found is not None else b"Not Found"
        req.send_response(200 if found is not None else 404)
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)
        return True

    @staticmethod
    def _params(content_type: str, body: bytes) -> dict[str, Any]:
        if not body:
            return {}
        if content_type.startswith("application/json"):
            return json.loads(body)
        if content_type.startswith("multipart/form-data"):
            msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
            out: dict[str, Any] = {}
            for part in msg.iter_parts():
                name = part.get_param("name", header="content-disposition")
                filename = part.get_filename()
                payload = part.get_payload(decode=True)
                assert isinstance(name, str) and isinstance(payload, bytes), "a form field without name or bytes"
                out[name] = (filename, payload) if filename else payload.decode("utf-8")
            return out
        return {k: v[-1] for k, v in urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}

    def _message_json(self, s: Sent) -> dict:
        out: dict[str, Any] = {"message_id": s.message_id, "date": int(time.time()),
                               "chat": {"id": s.chat_id, "type": "private" if s.chat_id > 0 else "group",
                                        **({"first_name": "U"} if s.chat_id > 0 else {"title": "G"})},
                               "from": BOT_USER}
        if s.document:
            out["document"] = {"file_id": f"doc{s.message_id}", "file_unique_id": f"u{s.message_id}",
                               "file_name": s.document[0]}
            if s.caption:
                out["caption"] = s.caption
        else:
            out["text"] = s.text
        if s.markup:
            out["reply_markup"] = s.markup
        return out

    def _injected(self, method: str, chat_id: int | None) -> None:
        with self.lock:
            for f in self.failures:
                if f["method"] in (method, "*") and f["times"] > 0:
                    f["times"] -= 1
                    failure = dict(f)
                    break
            else:
                failure = None
        if failure is None:
            return
        if failure["delay"]:  # a black hole: hang, then drop the request unprocessed
            time.sleep(failure["delay"])
            raise ApiError(504, "Gateway Timeout")
        if failure["status"] == 429:
            raise ApiError(429, f"Too Many Requests: retry after {failure['retry_after']}", failure["retry_after"])
        raise ApiError(failure["status"], "Internal Server Error" if failure["status"] == 500 else "Bad Gateway")

    def _rate(self, chat_id: int) -> None:
        now = time.monotonic()
        with self.lock:
            while self.recent and now - self.recent[0][0] > 1.0:
                self.recent.popleft()
            overall = len(self.recent)
            per_chat = sum(1 for _, c in self.recent if c == chat_id)
            if overall >= self.max_per_second or per_chat >= self.max_per_chat:
                self.rate_violations += 1
                raise ApiError(429, "Too Many Requests: retry after 1", 1)
            self.recent.append((now, chat_id))

    def _text_param(self, params: dict, key: str = "text", limit: int = 4096) -> tuple[str, str]:
        raw = params.get(key, "")
        if not isinstance(raw, str):
            raw = str(raw)
        plain = parse_html(raw) if params.get("parse_mode", "").upper() == "HTML" else raw
        if key == "text" and not plain.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if utf16_len(plain) > limit:
            raise ApiError(400, "Bad Request: message is too long" if key == "text"
                           else "Bad Request: message caption is too long")
        return raw, plain

    def _chat(self, params: dict) -> int:
        try:
            chat_id = int(params["chat_id"])
        except (KeyError, ValueError):
            raise ApiError(400, "Bad Request: chat not found") from None
        if chat_id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat_id

    def _call(self, method: str, params: dict) -> Any:
        with self.lock:
            self.calls.append((method, params))
        chat_id = None
        if "chat_id" in params:
            try:
                chat_id = int(params["chat_id"])
            except ValueError:
                chat_id = None
        self._injected(method, chat_id)
        if method == "getMe":
            return BOT_USER
        if method == "getFile":
            with self.lock:
                found = self.files.get(str(params.get("file_id")))
            if found is None:
                raise ApiError(400, "Bad Request: invalid file_id")
            if len(found[1]) > 20 * 1024 * 1024:
                raise ApiError(400, "Bad Request: file is too big")
            return {"file_id": params["file_id"], "file_unique_id": "AgAD", "file_size": len(found[1]),
                    "file_path": found[0]}
        if method == "getChatMember":
            chat, user = int(params.get("chat_id", 0)), int(params.get("user_id", 0))
            with self.lock:
                status = "creator" if self.owners.get(chat) == user else \
                    "administrator" if user in self.admins.get(chat, set()) else "member"
            return self._member_json(self._user(user), status)
        if method in ("deleteWebhook", "close", "logOut"):
            return True
        if method == "setMyCommands":
            cmds = params.get("commands")
            cmds = json.loads(cmds) if isinstance(cmds, str) else cmds
            for c in cmds or []:
                if not re.fullmatch(r"[a-z0-9_]{1,32}", c.get("command", "")) or \
                        not 1 <= len(c.get("description", "")) <= 256:
                    raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            with self.lock:
                self.commands = cmds or []
            return True
        if method == "getUpdates":
            return self._get_updates(params)
        if method == "sendChatAction":
            self._chat(params)
            return True
        if method == "answerCallbackQuery":
            with self.lock:
                cb = self.callbacks.get(str(params.get("callback_query_id")))
                if cb is None or cb["answered"]:
                    raise ApiError(400, "Bad Request: query is too old and response timeout expired or query ID "
                                        "is invalid")
                text = params.get("text") or ""
                if len(text) > 200:
                    raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
                cb["answered"], cb["text"] = True, text
            return True
        if method in SEND_METHODS:
            chat_id = self._chat(params)
            if method == "sendMessage":
                if chat_id in self.html_refused and params.get("parse_mode", "").upper() == "HTML":
                    raise ApiError(400, "Bad Request: can't parse entities: Can't find end of the entity "
                                        "starting at byte offset 0")
                raw, plain = self._text_param(params)
                markup = check_markup(params.get("reply_markup"))
                self._rate(chat_id)
                with self.lock:
                    s = Sent(next(self.message_ids), chat_id, plain, raw, markup)
                    self.chats[chat_id].append(s)
                    self.by_id[(chat_id, s.message_id)] = s
                    answer = self._message_json(s)
                if self.answer_delay:  # the message is delivered; the answer is slow to come back
                    time.sleep(self.answer_delay)
                return answer
            if method == "sendDocument":
                doc = params.get("document")
                if not isinstance(doc, tuple):
                    raise ApiError(400, "Bad Request: there is no document in the request")
                raw, plain = self._text_param(params, "caption", 1024)
                markup = check_markup(params.get("reply_markup"))
                self._rate(chat_id)
                with self.lock:
                    s = Sent(next(self.message_ids), chat_id, "", "", markup, document=doc, caption=plain)
                    self.chats[chat_id].append(s)
                    self.by_id[(chat_id, s.message_id)] = s
                    return self._message_json(s)
            with self.lock:
                edited = self.by_id.get((chat_id, int(params.get("message_id", 0))))
            if edited is None:
                raise ApiError(400, "Bad Request: message to edit not found")
            s = edited
            markup = check_markup(params.get("reply_markup"))
            if method == "editMessageText":
                raw, plain = self._text_param(params)
            else:
                raw, plain = s.html, s.text
            with self.lock:
                if raw == s.html and plain == s.text and markup == s.markup:
                    raise ApiError(400, NOT_MODIFIED)
            self._rate(chat_id)
            with self.lock:
                s.html, s.text, s.markup = raw, plain, markup
                s.edits += 1
                return self._message_json(s)
        raise ApiError(404, "Not Found: method not found")

    def _get_updates(self, params: dict) -> list[dict]:
        offset = int(params.get("offset") or 0)
        timeout = min(float(params.get("timeout") or 0), self.poll_cap)
        limit = int(params.get("limit") or 100)
        deadline = time.monotonic() + timeout
        with self.cond:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
            while not self.updates:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            return self.updates[:limit]
