"""A tiny HTTP server on 127.0.0.1 for tests: serves scripted answers per path and records requests.

``server.route("/rss/cs.LG", (200, body), ...)`` queues answers for a path (the last one repeats);
an answer is ``(status, body)`` or ``(status, body, headers)``; a callable answer gets the request path and
query and returns such a tuple. ``server.requests`` lists (path, query, monotonic time) of every request.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Answer = tuple[Any, ...] | Callable[[str, dict[str, list[str]]], tuple[Any, ...]]


class LocalServer:
    def __init__(self) -> None:
        self.routes: dict[str, list[Answer]] = {}
        self.requests: list[tuple[str, dict[str, list[str]], float]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                server.requests.append((parts.path, query, time.monotonic()))
                answers = server.routes.get(parts.path)
                if not answers:
                    answer: tuple[Any, ...] = (404, b"<html><body>Not Found</body></html>")
                else:
                    a = answers.pop(0) if len(answers) > 1 else answers[0]
                    answer = a(parts.path, query) if callable(a) else a
                status, body = answer[0], answer[1]
                headers = answer[2] if len(answer) > 2 else {}
                if isinstance(body, str):
                    body = body.encode("utf-8")
                if status == "hang":
                    time.sleep(float(body))
                    return
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def route(self, path: str, *answers: Answer) -> None:
        self.routes[path] = list(answers)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
