"""The bot's subcommands of ``arxiv-digest``: ``run``, ``deliver [--now]`` and ``users``.

``recommender.cli.main`` finds :func:`register` through the ``arxiv_digest.cli`` entry point, so the library never
imports the bot. ``run`` starts the Telegram bot when ``TELEGRAM_BOT_TOKEN`` is set and the terminal bot
otherwise; ``deliver`` sends the deliveries that are due (or, with ``--now``, the latest announcement to
everyone who has not had it) once and exits; ``users`` lists the users and their state. In Telegram mode
(:func:`on_telegram`) the token never reaches any output and the log also goes to ``$ARXIV_DIGEST_HOME/bot.log``.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from recommender.cli.common import open_store, settings_from
from recommender.config import Settings

log = logging.getLogger(__name__)


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
TOKEN_REJECTED = "Telegram rejected the bot token: check TELEGRAM_BOT_TOKEN (from @BotFather)"


def on_telegram(settings: Settings, work: Callable[[], int]) -> int:
    """Run ``work`` in Telegram mode: the token is scrubbed from every log line and uncaught traceback, the
    log also goes to ``$ARXIV_DIGEST_HOME/bot.log``, and a rejected token is one clear line, exit status 2."""
    from telegram.error import InvalidToken

    from .telegram.redact import protect_token

    protect_token(settings.telegram_token)
    logging.captureWarnings(True)  # library warnings go through logging too, so they are scrubbed and kept
    settings.ensure_home()
    handler = logging.FileHandler(settings.home / "bot.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        return work()
    except InvalidToken:
        log.error(TOKEN_REJECTED)
        return 2
    finally:
        root.removeHandler(handler)
        handler.close()


def check_token(settings: Settings) -> None:
    """Ask Telegram who we are before starting: raises ``InvalidToken`` (nothing logged) if it rejects the
    token; any other failure is left to the bot's own start-up retries."""
    import asyncio

    from telegram import Bot
    from telegram.error import InvalidToken, TelegramError

    async def ask() -> None:
        async with Bot(settings.telegram_token, base_url=settings.telegram_api_url):
            pass

    try:
        asyncio.run(ask())
    except InvalidToken:
        raise
    except TelegramError as exc:
        log.warning("could not reach Telegram yet (%s); starting anyway", exc)


def cmd_run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if settings.telegram_token:
        from .telegram import run_telegram

        def run() -> int:
            check_token(settings)
            return run_telegram(settings)
        return on_telegram(settings, run)
    from .console import run_console
    if sys.stdin.isatty():
        print("No TELEGRAM_BOT_TOKEN set: running the bot in this terminal over the bundled demo papers.",
              file=sys.stderr)
    return run_console(settings)


def cmd_deliver(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if not settings.telegram_token:
        print("arxiv-digest deliver: set TELEGRAM_BOT_TOKEN (deliveries go out through Telegram)", file=sys.stderr)
        return 2
    from .telegram import deliver_once

    def deliver() -> int:
        report = deliver_once(settings, now=args.now)
        if args.json:
            print(json.dumps(report.to_dict(), indent=2))
        else:
            print(report.summary())
        return 0
    return on_telegram(settings, deliver)


def cmd_users(args: argparse.Namespace) -> int:
    with open_store(settings_from(args)) as store:
        rows: list[dict[str, Any]] = []
        for u in store.list_users():
            latest = store.latest_digest(u.id)  # (day, status): a refused digest shows as failed
            rows.append({
                "id": u.id, "chat_id": u.chat_id, "name": u.name, "timezone": u.timezone, "hour": u.digest_hour,
                "size": u.digest_size, "min_score": u.min_score, "cross_lists": u.cross_lists,
                "paused": u.paused, "active": u.active, "categories": u.categories,
                "likes": len(store.liked_ids(u.id)), "dislikes": len(store.disliked_ids(u.id)),
                "last_digest": store.last_digest_day(u.id),
                "latest_digest": {"day": latest[0], "status": latest[1]} if latest else None,
            })
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    if not rows:
        print("no users yet")
        return 0
    print(f"{'id':>12} {'state':8} {'digest at':24} {'likes':>5} {'last digest':11} {'latest digest':22} categories")
    for r in rows:
        state = "blocked" if not r["active"] else "paused" if r["paused"] else "active"
        when = f"{r['hour']:02d}:00 {r['timezone']}"
        shown = f"{r['latest_digest']['day']} {r['latest_digest']['status']}" if r["latest_digest"] else "-"
        print(f"{r['id']:>12} {state:8} {when:24} {r['likes']:>5} {r['last_digest'] or '-':11} {shown:22} "
              f"{' '.join(r['categories']) or '-'}")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("run", help="run the bot: on Telegram if TELEGRAM_BOT_TOKEN is set, else in this "
                                          "terminal over the bundled demo papers")
    p.set_defaults(func=cmd_run)

    p = subparsers.add_parser("deliver", help="send the digests that are due now, once (Telegram)")
    p.add_argument("--now", action="store_true",
                   help="send the latest announcement to every user who has not had it, whatever their hour")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_deliver)

    p = subparsers.add_parser("users", help="list the bot's users, their settings and state")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_users)
