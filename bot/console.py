"""The bot in a terminal: one local user, the same commands and replies as in Telegram.

Replies are printed as plain text; buttons are shown as numbered choices, and typing a number presses one
(of the last message that had buttons). A file (``/export``) is written to ``<home>/exports/``. When standard
input is not a terminal, every line is one command, echoed after a ``»`` so a transcript reads well, and the
bot exits at the end of input. On a first start the demo papers get their vectors on a background thread
(:class:`Warmup`, which prepares the commands' own engine: one writer per vector index), so the terminal
answers at once; commands that need the models wait for it, saying so. The terminal is the chat: log lines
of the bot and its libraries (arXiv retries, model export) go to ``<home>/bot.log`` only, and no library
progress bar is drawn while the chat runs.
"""
from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Protocol

from recommender.config import Settings
from recommender.store import Store

from . import buttons as codes
from .commands import Caller, Commands, DigestPlan
from .inputs import ascii_int
from .reply import Button, Reply
from .rich import to_plain

log = logging.getLogger(__name__)

LOCAL_USER = Caller(user_id=1, chat_id=None, name="")
# commands (and button kinds) that may use the embedding model or the vectors; the rest answer during warm-up
NEEDS_MODELS = {"similar", "digest", "like", "dislike", "classify", "import"}
BUTTONS_NEEDING_MODELS = {codes.LIKE, codes.DISLIKE, codes.SIMILAR, codes.CLASSIFY}
MAX_BUTTON_NUMBER = 999  # a line of only digits up to this is a button press when buttons are shown


class WarmupState(Protocol):
    """What the console reads of a warm-up (:class:`Warmup`): whether the models are ready, and whether this
    is the first embedding of the demo papers (the wait is then minutes, not seconds)."""

    @property
    def ready(self) -> threading.Event: ...

    @property
    def first_embedding(self) -> bool: ...


class Console:
    def __init__(self, commands: Commands, out: IO[str] | None = None, caller: Caller = LOCAL_USER,
                 echo: bool = False, warmup: WarmupState | None = None) -> None:
        self.commands = commands
        commands.local_files = True  # /import PATH reads this machine's files (never so in Telegram)
        self.warmup = warmup
        self.out = out or sys.stdout
        self.caller = caller
        self.echo = echo
        self.buttons: list[list[Button]] = []  # of the last message that had any

    def write(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def show(self, reply: Reply) -> None:
        if reply.toast:
            self.write(f"  ({reply.toast})")
        text = to_plain(reply.text)
        if text.strip():
            self.write(text.rstrip())
        if reply.document is not None:
            path = self._save(reply.document.filename, reply.document.content)
            self.write(f"[file saved: {path}]")
        if reply.buttons:
            self.buttons = reply.buttons
            shown, k = [], 0
            for row in reply.buttons:
                cells = []
                for b in row:
                    k += 1
                    cells.append(f"[{k}] {b.label}")
                shown.append("  ".join(cells))
            self.write("\n".join(shown) + f"\n(type a number 1-{k} to press a button)")
        if isinstance(reply.delivery, DigestPlan) and reply.delivery.items:
            self._log_delivery(reply.delivery)
        self.write("")
        if reply.followup is not None:  # the terminal has no reply path to keep free: finish it now
            for later in reply.followup():
                self.show(later)

    def _save(self, filename: str, content: bytes) -> Path:
        folder = Path(self.commands.settings.home) / "exports"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / Path(filename).name
        path.write_bytes(content)
        return path

    def _log_delivery(self, plan: DigestPlan) -> None:
        # the one way a delivered digest is recorded (one transaction), as the Telegram front end does
        self.commands.store.record_digest(self.caller.user_id, plan.day, plan.items)

    def _wait_for_models(self, needs: bool) -> None:
        if not needs or self.warmup is None or self.warmup.ready.is_set():
            return
        first = self.warmup.first_embedding
        self.write("(preparing the demo papers for their first use: embedding them takes a minute or two, "
                   "once; later starts are instant)" if first else "(one moment: loading the models)")
        self.warmup.ready.wait()

    def handle_line(self, line: str) -> None:
        line = line.rstrip("\n")
        if self.echo:
            self.write(f"» {line}")
        stripped = line.strip()
        name = stripped.split()[0].lstrip("/").split("@")[0].lower() if stripped.startswith("/") else ""
        # only ASCII digits press a button ("²" passes str.isdigit() but is text, answered like any text)
        k = ascii_int(stripped, 0, MAX_BUTTON_NUMBER) if self.buttons else None
        flat = [b for row in self.buttons for b in row]
        if k is not None:
            data = flat[k - 1].data if 1 <= k <= len(flat) else ""
            self._wait_for_models(data.partition(":")[0] in BUTTONS_NEEDING_MODELS)
        else:
            self._wait_for_models(bool(stripped) and (not name or name in NEEDS_MODELS))
        if k is not None:
            if not 1 <= k <= len(flat):
                self.write(f"There are buttons 1 to {len(flat)}.\n")
                return
            button = flat[k - 1]
            if button.url:
                self.write(f"{button.label}: {button.url}\n")
                return
            for reply in self.commands.press(self.caller, button.data, self.buttons):
                self.show(reply)
            return
        for reply in self.commands.handle(self.caller, line):
            self.show(reply)

    def run(self, lines: Iterable[str], interactive: bool = False) -> None:
        if interactive:
            while True:
                try:
                    line = input("you> ")
                except (EOFError, KeyboardInterrupt):
                    self.write("")
                    return
                if line.strip() in {"/quit", "/exit"}:
                    return
                self.handle_line(line)
        else:
            for line in lines:
                if not line.strip():
                    continue
                self.handle_line(line)


class Warmup(threading.Thread):
    """Prepares the commands' own engine on a thread of its own, so the terminal answers at once on a first
    start: takes the shipped demo vectors (or embeds the papers that lack vectors), sets ``ready`` (commands
    that need the models wait for it, see ``NEEDS_MODELS``), then predicts the categories of the latest
    announcement's papers, a chunk at a time until ``stop`` is set. It uses ``commands.engine``,
    ``commands.store`` and ``commands.classifier``, never an Engine of its own, so each vector index has one
    writer; a digest asked for before the predictions are done classifies its own papers on demand."""

    CHUNK = 256

    def __init__(self, commands: Commands, progress: bool = False) -> None:
        super().__init__(name="arxiv-digest-warmup", daemon=True)
        self.commands, self.progress = commands, progress
        settings = commands.settings
        vectors = settings.vectors_dir
        self.had_vectors = vectors.is_dir() and any(vectors.iterdir())  # else: a first start
        # a first start embeds every paper, unless the shipped demo vectors can be taken instead
        self.first_embedding = not self.had_vectors and not Path(settings.demo_vectors).is_file()
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.embedded = self.classified = 0

    def run(self) -> None:
        try:
            try:
                engine = self.commands.engine
                if not self.had_vectors:  # the demo papers' shipped vectors spare a first embedding
                    engine.seed_vectors(self.commands.settings.demo_vectors)
                limit = self.commands.settings.warmup_embed_limit
                self.embedded = engine.embed_missing(progress=self.progress, limit=limit)
                log.info("warm-up: embedded %d papers", self.embedded)
            except Exception:  # the commands that need the engine will say it is unavailable
                log.warning("warm-up failed; the recommender engine is not available", exc_info=True)
            finally:
                self.ready.set()
            self._classify_latest()
        except Exception:
            log.exception("warm-up: predicting categories failed")

    def _classify_latest(self) -> None:
        store = self.commands.store
        day = store.latest_announcement()
        ids = store.announced_ids(day) if day else []
        if not ids or self.stop.is_set():
            return
        try:
            clf = self.commands.classifier
        except Exception as exc:  # no model shipped: cards just show arXiv's own categories
            log.info("warm-up: no category predictions (%s)", exc)
            return
        from recommender.engine.pipeline import classify_papers, model_name
        done = store.predictions(ids, model=model_name(clf))  # an upgraded model re-predicts the day
        todo = [i for i in ids if i not in done]
        for i in range(0, len(todo), self.CHUNK):
            if self.stop.is_set():
                return
            self.classified += classify_papers(store, clf, todo[i:i + self.CHUNK])
        if todo:
            log.info("warm-up: predicted categories of %d papers of %s", self.classified, day)


def prepare(commands: Commands, progress: bool = True) -> Warmup:
    """First-start set-up: import the bundled demo papers (once), then prepare the engine in the background."""
    from recommender.engine.pipeline import ensure_demo_corpus

    imported = ensure_demo_corpus(commands.settings, commands.store, progress=progress)
    if imported:
        log.info("imported %d demo papers", imported)
    warmup = Warmup(commands)
    warmup.start()
    return warmup


def quiet_logging(home: Path) -> None:
    """Keep the terminal for the chat: every log record (the bot's and its libraries', e.g. arXiv retry
    warnings or a first-use model export) goes to ``<home>/bot.log`` and none to the terminal, Python
    warnings are logged there too, and library progress bars (model loading) are switched off."""
    root = logging.getLogger()
    logging.captureWarnings(True)
    for h in root.handlers:
        terminal = getattr(h, "stream", None) in (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler) and terminal:
            h.setLevel(logging.CRITICAL + 1)  # the chat's terminal: nothing
    path = (home / "bot.log").resolve()
    if not any(isinstance(h, logging.FileHandler) and Path(h.baseFilename) == path for h in root.handlers):
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(min(root.level or logging.INFO, logging.INFO))
    # model loading draws "Loading weights" bars unless huggingface_hub's switch is off (transformers reads it
    # when it is first imported, which is later: the models load on first use)
    try:
        from huggingface_hub.utils.tqdm import disable_progress_bars
        disable_progress_bars()
    except ImportError:
        pass


def run_console(settings: Settings, stdin: IO[str] | None = None, out: IO[str] | None = None) -> int:
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    settings.ensure_home()
    quiet_logging(settings.home)
    store = Store(settings.db_path, taxonomy=settings.taxonomy_path)
    warmup: Warmup | None = None
    try:
        commands = Commands(settings, store)
        commands.scheduled = False
        interactive = stdin.isatty()
        warmup = prepare(commands, progress=interactive or sys.stderr.isatty())
        console = Console(commands, out=out, echo=not interactive, warmup=warmup)
        latest = store.latest_announcement()
        console.write(f"arxiv-digest in your terminal: {store.count_papers():,} papers, latest announcement "
                      f"{latest or 'none'}. Type /start or /help" + ("; Ctrl-D quits." if interactive else "."))
        console.write("")
        console.run(stdin, interactive=interactive)
        if not warmup.ready.is_set():  # finish the one-time embedding so the next start is instant
            if warmup.first_embedding:
                console.write("(finishing the first-start preparation of the demo papers; once only)")
            warmup.ready.wait()
    finally:
        if warmup is not None:  # predictions left undone are made on demand next time
            warmup.stop.set()
            warmup.join(timeout=60)
        store.close()
    return 0
