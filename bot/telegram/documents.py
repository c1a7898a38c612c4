"""Files users send: a reference library (BibTeX, RIS, a list of ids) to import as likes.

The document is judged by what Telegram says of it (name, type, size) before anything is downloaded, so a
PDF or a 50 MB file is refused at once; otherwise it is fetched (``getFile``, then the file's URL) and handed
to the transport-free :meth:`bot.commands.Commands.import_document`, whose reply (with the arXiv look-ups of
ids the store lacks as its ``followup``) is sent like any other. In groups files are not read (privacy mode
usually hides them from the bot anyway).
"""
from __future__ import annotations

import logging

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.reply import Reply
from bot.telegram.handlers import answer, caller_of, queued
from bot.telegram.runtime import runtime
from recommender.sources.library import MAX_BYTES

log = logging.getLogger(__name__)


@queued
async def on_document(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    rt, msg = runtime(context), update.effective_message
    assert msg is not None and msg.document is not None
    doc, caller = msg.document, caller_of(update)
    name = doc.file_name or ""
    refusal = rt.commands.check_document(name, doc.file_size, doc.mime_type)
    if refusal is None:
        try:
            file = await context.bot.get_file(doc.file_id)
            if file.file_size is not None and file.file_size > MAX_BYTES:
                refusal = rt.commands.check_document(name, file.file_size, doc.mime_type)
            else:
                data = bytes(await file.download_as_bytearray())
        except TelegramError as exc:
            log.info("could not download document %r from user %s: %s", name[:80], caller.user_id, exc)
            refusal = Reply.plain("I could not download that file from Telegram; please send it again.")
    if refusal is not None:
        await answer(rt, context.bot, msg.chat_id, caller.user_id, [refusal])
        return
    replies = await rt.call(rt.commands.import_document, caller, name, data)
    await answer(rt, context.bot, msg.chat_id, caller.user_id, replies)
