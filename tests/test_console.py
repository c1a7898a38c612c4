"""The terminal chat, driven through a pipe: same commands and replies, buttons as numbered choices."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.commands import Commands
from bot.console import Console
from recommender.config import Settings
from recommender.store import Store
from tests.support.bot_fixtures import KeywordClassifier, hash_engine

ROOT = Path(__file__).resolve().parent.parent


def test_a_scripted_terminal_session(settings: Settings, demo_store: Store) -> None:
    store = demo_store
    latest = store.latest_announcement()
    assert latest is not None
    pid = store.announced_ids(latest, categories=["cs.LG"])[0]
    out = io.StringIO()
    console = Console(Commands(settings, store, engine_factory=lambda: hash_engine(settings, store),
                               classifier_factory=KeywordClassifier), out=out, echo=True)
    script = ["/start", "1", "/follow cs.LG", "/interests large language models", f"/like {pid}", "/digest",
              "1", "1", "/export", "99", "/settings tz Asia/Tokyo", "/classify galaxies and dark matter", "/nope"]
    console.run(io.StringIO("\n".join(script) + "\n"))
    text = out.getvalue()
    assert "» /start" in text and "[1] Computer Science" in text
    assert "cs.LG Machine Learning" in text  # pressed button 1: the field's menu
    assert f"Your arXiv digest for {latest}" in text and "[1] 👍 1" in text
    assert "(👍 Liked" in text and "[1] ✅ 1" in text and "already liked" in text
    assert "[file saved:" in text and (settings.home / "exports" / "arxiv-digest-likes.bib").is_file()
    assert "There are buttons 1 to" in text
    assert "09:00" not in text and "Asia/Tokyo" in text
    assert "astro-ph.GA" in text and "I don't know /nope" in text
    assert store.delivered_ids(1, latest)  # the digest was logged like a delivery


@pytest.mark.slow
def test_make_run_without_a_token_answers_a_piped_script(tmp_path: Path) -> None:
    env = {**os.environ, "ARXIV_DIGEST_HOME": str(tmp_path / "var"), "HF_HUB_OFFLINE": "1"}
    env.pop("TELEGRAM_BOT_TOKEN", None)
    script = ("/start\n/help\n/follow cs.LG cs.CL\n/interests large language models and their reasoning\n"
              "/digest\n/similar 2606.28354 3\n")
    proc = subprocess.run([sys.executable, "-m", "recommender.cli.main", "run"], input=script, text=True,
                          capture_output=True, env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "» /start" in proc.stdout and "What I can do" in proc.stdout
    assert "Your arXiv digest for" in proc.stdout and "Close to 2606.28354" in proc.stdout


def test_first_start_answers_while_the_models_warm_up(settings: Settings, demo_store: Store) -> None:
    import threading
    import time
    store = demo_store
    class SlowWarmup:  # stands in for bot.console.Warmup: not ready until released
        had_vectors = False
        first_embedding = True
        ready = threading.Event()

    warmup = SlowWarmup()
    release = warmup.ready
    out = io.StringIO()
    console = Console(Commands(settings, store, engine_factory=lambda: hash_engine(settings, store),
                               classifier_factory=KeywordClassifier), out=out, echo=True, warmup=warmup)
    t0 = time.monotonic()
    console.run(io.StringIO("/start\n/help\n/follow cs.LG\n"))
    assert time.monotonic() - t0 < 5 and "preparing" not in out.getvalue()
    threading.Timer(0.2, release.set).start()
    console.run(io.StringIO("/similar neural networks\n"))
    text = out.getvalue()
    assert text.index("(preparing the demo papers") < text.index("Close to")
