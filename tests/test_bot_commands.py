"""The transport-free parts of the bot: rich text (escaping, splitting), rendering, buttons, commands."""
from __future__ import annotations

import pytest

from bot.commands import Caller, Commands, UserError, parse_timezone
from bot.render import bibtex, digest_buttons, numbered_ids
from bot.reply import Button
from bot.rich import Rich, split, to_html, to_plain, utf16_len
from recommender.config import Settings
from recommender.models import Paper
from recommender.store import Store
from tests.support.bot_fixtures import KeywordClassifier, hash_engine
from tests.support.fake_telegram import parse_html


def test_every_span_is_escaped_and_parses_as_telegram_html() -> None:
    nasty = "a < b && c > d <b>not bold</b> &amp; $x_1*y$ \"q\""
    r = Rich().b(nasty).text(nasty).i(nasty).code(nasty).link(nasty, "https://arxiv.org/abs/2501.00001?a=1&b=\"2\"")
    assert parse_html(to_html(r)) == nasty * 5
    assert to_plain(r).startswith(nasty)


def test_split_respects_telegram_length_in_utf16_and_keeps_styles() -> None:
    r = Rich()
    for k in range(400):
        r.b(f"{k}. ").link("Title with emoji 🧪🔭 and maths $\\alpha$", f"https://arxiv.org/abs/2501.{k:05d}").nl()
        r.text("Some authors et al. " * 2).nl(2)
    pieces = split(r, 4096)
    assert len(pieces) > 1
    for p in pieces:
        assert utf16_len(parse_html(to_html(p))) <= 4096
    joined = "".join(p.plain for p in pieces)
    assert joined.split() == r.plain.split()
    one_word = Rich().text("x" * 10_000)
    assert [len(p) for p in split(one_word)] == [4096, 4096, 1808]


def test_buttons_fit_64_bytes_even_for_old_style_ids() -> None:
    rows = digest_buttons([(20, "math-ph/0601001"), (1, "2501.12345")], {"2501.12345"}, set())
    assert all(len(b.data.encode()) <= 64 for row in rows for b in row)
    assert numbered_ids(rows) == [(20, "math-ph/0601001"), (1, "2501.12345")]
    assert rows[1][0].label == "✅ 1"
    with pytest.raises(ValueError):
        Button("x", "L:" + "9" * 70)


def test_bibtex_escapes_and_keeps_ids() -> None:
    p = Paper(id="hep-th/9901002", title="Braces {and} 100% & more", authors=["Ann O'Neil", "B. Who"],
              categories=["hep-th"])
    text = bibtex([p])
    assert text.startswith("@misc{oneil") and "eprint = {hep-th/9901002}" in text
    assert "\\{and\\}" in text and "100\\%" in text and "year = {1999}" in text


def test_timezones() -> None:
    assert parse_timezone("europe/berlin") == "Europe/Berlin"
    assert parse_timezone("UTC") == "UTC"
    with pytest.raises(UserError, match="Did you mean"):
        parse_timezone("Europe/Berlinn")
    with pytest.raises(UserError):
        parse_timezone("../../etc/passwd")


@pytest.fixture
def commands(settings: Settings, demo_store: Store) -> Commands:
    return Commands(settings, demo_store, engine_factory=lambda: hash_engine(settings, demo_store),
                    classifier_factory=KeywordClassifier)


def test_commands_answer_every_input_without_raising(commands: Commands) -> None:
    store = commands.store
    me = Caller(7, 7, "Q")
    pid = store.paper_ids()[0]
    inputs = ["", "   ", "/start", "/help", "/start@arxiv_digest_bot", "/LIKE " + pid, "/likes", "/likes 99",
              "/unlike " + pid, "/unlike " + pid, "/dislike " + pid, "/export", "/follow", "/follow cs.lg math.MP",
              "/unfollow math-ph", "/interests -", "/interests dark matter", "/similar dark matter halos 3",
              "/similar " + pid, "/classify " + pid, "/classify A title\n\nAn abstract about galaxies.",
              "/classify !!!", "/digest", "/settings", "/settings minscore 0,25", "/settings crosslists off",
              "/settings pause", "/resume", "/pause", pid, "https://arxiv.org/abs/" + pid, "/similar x" * 500,
              "\x00\x01", "/settings hour 7:00", "/like " + " ".join([pid] * 25)]
    for text in inputs:
        replies = commands.handle(me, text)
        assert replies and all(r.text or r.document or r.buttons for r in replies), text
        for r in replies:
            assert "Traceback" not in r.text.plain
            parse_html(to_html(r.text))
    assert store.get_user(7).categories == ["cs.LG"]  # math.MP resolved to math-ph, then unfollowed
    assert store.get_user(7).min_score == 0.25 and store.get_user(7).cross_lists is False


def test_buttons_of_a_stale_or_forged_kind_are_answered(commands: Commands) -> None:
    me = Caller(8, 8)
    for data in ["", "Z:1", "L:1:notanid", "S:", "FG:99", "FG:x", "F:xx.YY", "LK:abc", "ST:boom", "C:1234"]:
        replies = commands.press(me, data, [])
        assert replies and (replies[0].toast or replies[0].text), data
