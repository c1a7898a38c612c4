"""Commands about papers: like, dislike, unlike, the paged list of likes, BibTeX export, similar, classify.

Ids and arXiv links are accepted anywhere a paper is meant; unknown ones are fetched from arXiv. Buttons under
a digest or a paper card (like, dislike, more like this, classify) land here too.
"""
from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence

from recommender.ids import InvalidArxivId, looks_like_id, parse_arxiv_id
from recommender.models import Paper
from recommender.store import User

from . import buttons as codes
from . import render
from .cmd_base import LIKES_PAGE, MAX_LIKES_PAGE, MAX_SIMILAR, CommandsBase, UserError, parse_int
from .reply import Button, Document, Reply
from .rich import Rich

log = logging.getLogger(__name__)


class _Later(Exception):
    """Carries a "fetching ..." Reply out of a command whose paper must first be fetched from arXiv."""

    def __init__(self, reply: Reply) -> None:
        super().__init__("fetch first")
        self.reply = reply


_followup = threading.local()  # set while a command runs again as its own follow-up (its fetch allowed)


class PaperCommands(CommandsBase):
    def _fetch_first(self, ids: Sequence[str], again: Callable[[], Reply | list[Reply]]) -> Reply | None:
        """If the store lacks some of ``ids``: a Reply saying they are being fetched, whose ``followup`` runs
        ``again`` (the same command, now allowed to fetch from arXiv) off the reply path; else None."""
        if getattr(_followup, "active", False):
            return None
        lacking = [i for i in ids if not self.store.has_paper(i)]
        if not lacking:
            return None

        def followup() -> list[Reply]:
            _followup.active = True
            try:
                out = again()
            except UserError as exc:
                out = Reply.plain(str(exc))
            except Exception:
                log.exception("follow-up for %s failed", ", ".join(lacking))
                out = Reply.plain("Sorry, something went wrong on my side while fetching "
                                  f"{', '.join(lacking)}. It has been logged; please try again in a moment.")
            finally:
                _followup.active = False
            return out if isinstance(out, list) else [out]

        return Reply.plain(f"Fetching {', '.join(lacking)} from arXiv …", followup=followup)

    def _feedback(self, user: User, args: str, value: int, usage: str) -> Reply:
        ids = self._parse_ids(args, usage)
        if (later := self._fetch_first(ids, lambda: self._feedback(user, args, value, usage))) is not None:
            return later
        found, missing = self._papers(ids)
        out = Rich()
        verb = "Liked" if value > 0 else "Disliked"
        for pid in ids:
            if pid not in found:
                continue
            changed = self.store.set_feedback(user.id, pid, value)
            out.text(("✓ " if changed else "(already) ") + f"{verb} ").link(pid, found[pid].url)
            out.text(": " + render.clean(found[pid].title, 120)).nl()
        if missing:
            out.text(self._missing_text(missing)).nl()
        if found and value > 0:
            out.text("See more like them with ").code(f"/similar {next(iter(found))}")
        return Reply(out)

    def cmd_like(self, user: User, args: str) -> Reply:
        return self._feedback(user, args, 1, "/like 1706.03762")

    def cmd_dislike(self, user: User, args: str) -> Reply:
        return self._feedback(user, args, -1, "/dislike 1706.03762")

    def cmd_unlike(self, user: User, args: str) -> Reply:
        ids = self._parse_ids(args, "/unlike 1706.03762")
        removed = [i for i in ids if self.store.remove_feedback(user.id, i)]
        kept = [i for i in ids if i not in removed]
        parts = []
        if removed:
            parts.append("Forgot your feedback on " + ", ".join(removed) + ".")
        if kept:
            parts.append("You had not liked or disliked " + ", ".join(kept) + ".")
        return Reply.plain(" ".join(parts))

    def _likes_page(self, user: User, page: int) -> Reply:
        ids = self.store.liked_ids(user.id)
        if not ids:
            return Reply(Rich().text("You have not liked any papers yet. Like one with ").code("/like 1706.03762")
                         .text(" or the 👍 buttons under a digest."))
        pages = (len(ids) + LIKES_PAGE - 1) // LIKES_PAGE
        page = min(max(page, 1), pages)
        chunk = ids[(page - 1) * LIKES_PAGE: page * LIKES_PAGE]
        papers = self.store.get_papers(chunk)
        out = Rich().b(f"Your likes ({len(ids)})").text(f", page {page} of {pages}").nl(2)
        for n, pid in enumerate(chunk, start=(page - 1) * LIKES_PAGE + 1):
            p = papers.get(pid)
            out.b(f"{n}. ")
            if p:
                out.link(render.clean(p.title, 150), p.url).text(f" ({pid})").nl()
            else:
                out.text(pid).nl()
        out.nl().text("/unlike ID forgets one; /export gives them as BibTeX.")
        nav = []
        if page > 1:
            nav.append(Button("« previous", codes.likes_page(page - 1)))
        if page < pages:
            nav.append(Button("next »", codes.likes_page(page + 1)))
        return Reply(out, buttons=[nav] if nav else [])

    def cmd_likes(self, user: User, args: str) -> Reply:
        page = parse_int(args, 1, MAX_LIKES_PAGE, "The page", "/likes 2") if args.strip() else 1
        return self._likes_page(user, page)

    def _press_likes(self, user: User, page: int) -> list[Reply]:
        r = self._likes_page(user, page)
        r.edit = True
        return [r]

    def cmd_export(self, user: User, args: str) -> Reply:
        ids = self.store.liked_ids(user.id)
        if not ids:
            return Reply.plain("Nothing to export yet: like papers with /like ID or the 👍 buttons.")
        papers = self.store.get_papers(ids)
        text = render.bibtex(papers[i] for i in ids if i in papers)
        return Reply(Rich().text(f"{len(papers)} liked papers as BibTeX."),
                     document=Document("arxiv-digest-likes.bib", text.encode("utf-8"),
                                       caption=f"{len(papers)} liked papers"))

    def _press_feedback(self, user: User, press: codes.Feedback, buttons: list[list[Button]]) -> list[Reply]:
        pid = self._button_paper(press.paper_id).id
        value = press.value
        changed = self.store.set_feedback(user.id, pid, value)
        if changed:
            toast = f"👍 Liked {pid}; your next digests learn from it" if value > 0 else \
                f"👎 Noted: fewer papers like {pid}"
        else:
            toast = f"You already {'liked' if value > 0 else 'disliked'} {pid}; /unlike {pid} undoes it"
        numbered = render.numbered_ids(buttons)
        if not numbered:
            return [Reply(toast=toast)]
        liked, disliked = set(self.store.liked_ids(user.id)), set(self.store.disliked_ids(user.id))
        new = render.digest_buttons(numbered, liked, disliked)
        # keep any rows that are not digest rows (none today, but be safe)
        return [Reply(buttons=new, toast=toast, edit=True)]

    # -- similar and classify ---------------------------------------------------------------------------
    def _query(self, args: str, usage: str, again: Callable[[], Reply]) -> tuple[str, Paper | None]:
        """An id/link (-> its paper) or free text; an id the store lacks raises _Later (fetched by ``again``)."""
        text = args.strip()
        if not text:
            raise UserError(f"Give an arXiv id, a link or some text, e.g. {usage}")
        first = text.split()[0]
        if len(text.split()) == 1 or looks_like_id(first):
            try:
                pid = parse_arxiv_id(first).id
            except InvalidArxivId as exc:
                if len(text.split()) == 1 and re.search(r"\d", first):
                    raise UserError(str(exc)) from None
            else:
                if (later := self._fetch_first([pid], again)) is not None:
                    raise _Later(later)
                found, missing = self._papers([pid])
                if missing:
                    raise UserError(self._missing_text(missing))
                return pid, found[pid]
        if len(re.sub(r"\W", "", text)) < 3:
            raise UserError(f"That is too short to search for. Try an id or a few words, e.g. {usage}")
        return text, None

    def cmd_similar(self, user: User, args: str) -> Reply:
        try:
            return self._similar(user, args)
        except _Later as later:
            return later.reply

    def _similar(self, user: User, args: str) -> Reply:
        original = args
        tokens = args.split()
        n = 5
        if len(tokens) > 1 and re.fullmatch(r"[0-9]+", tokens[-1]):  # ASCII digits: a count ("²" is text)
            n = parse_int(tokens[-1], 1, MAX_SIMILAR, "The number of papers", "/similar 1706.03762 5")
            args = args[: args.rstrip().rfind(tokens[-1])].strip()
        query, paper = self._query(args, "/similar 1706.03762 or /similar diffusion models for proteins",
                                   lambda: self.cmd_similar(user, original))
        return self._similar_reply(paper.id if paper else query, paper, n)

    def _similar_reply(self, query: str, paper: Paper | None, n: int) -> Reply:
        recs = self.engine.similar(paper.id if paper else query, n)
        out = Rich()
        if paper:
            out.b("Close to ").link(paper.id, paper.url).b(": ").text(render.clean(paper.title, 150)).nl(2)
        else:
            out.b("Close to “").text(render.clean(query, 100)).b("”:").nl(2)
        if not recs:
            out.text("I found nothing close enough in the papers I hold.")
            return Reply(out)
        preds = self._predictions([r.paper.id for r in recs])
        for k, r in enumerate(recs, 1):
            render.paper_card(out, r.paper, k, predicted=preds.get(r.paper.id, ()), score=r.score)
            out.nl()
        out.text("Like one with /like ID.")
        return Reply(out)

    def _press_similar(self, user: User, paper_id: str) -> list[Reply]:
        paper = self._button_paper(paper_id)
        return [Reply(toast=f"Papers like {paper.id}…"), self._similar_reply(paper.id, paper, 5)]

    def cmd_classify(self, user: User, args: str) -> Reply:
        try:
            return self._classify(user, args)
        except _Later as later:
            return later.reply

    def _classify(self, user: User, args: str) -> Reply:
        if not args.strip():
            raise UserError("Give an arXiv id, a link, or a title (optionally a blank line and the abstract), "
                            "e.g. /classify Attention is all you need")
        paper = None
        if "\n" not in args.strip():
            _, paper = self._query(args, "/classify 1706.03762", lambda: self.cmd_classify(user, args))
        if paper is not None:
            title, abstract = paper.title, paper.abstract
        else:
            title, _, abstract = args.strip().partition("\n\n")
            title, abstract = " ".join(title.split()), abstract.strip()
            if len(re.sub(r"\W", "", title + abstract)) < 3:
                raise UserError("That is too short to classify; send a title, or an arXiv id.")
        return self._classify_reply(title, abstract, paper)

    def _classify_reply(self, title: str, abstract: str, paper: Paper | None) -> Reply:
        try:
            classifier = self.classifier
        except Exception:
            log.exception("the classifier could not be loaded")
            raise UserError("Category prediction is not available right now (the model is not installed); "
                            "the operator has been told.") from None
        try:
            pred = classifier.predict(title, abstract)
        except ValueError as exc:  # ClassifierError: nothing to classify
            raise UserError(f"I can't classify that: {exc}.") from None
        out = Rich()
        if paper:
            out.b("Categories for ").link(paper.id, paper.url).b(": ").text(render.clean(paper.title, 150)).nl()
            out.i("listed on arXiv as " + (" ".join(paper.categories) or "nothing")).nl(2)
        else:
            out.b("Categories for “").text(render.clean(title, 150)).b("”").nl(2)
        cats = [(c, p) for c, p in pred.categories if p >= 0.05][:6] or list(pred.categories[:3])
        for code, p in cats:
            out.code(code).text(f" {self._names.get(code) or pred.names.get(code, '')} ").b(f"{p:.0%}").nl()
        masters = [(g, p) for g, p in pred.masters if p >= 0.05][:3] or list(pred.masters[:1])
        if masters:
            out.nl().text("Fields: " + ", ".join(f"{g} {p:.0%}" for g, p in masters))
        if pred.unknown_ratio > 0.5:
            out.nl().i("Most of those words are new to me, so take this with a grain of salt.")
        return Reply(out)

    def _press_classify(self, user: User, paper_id: str) -> list[Reply]:
        p = self._button_paper(paper_id)
        return [Reply(toast=f"Classifying {p.id}…"), self._classify_reply(p.title, p.abstract, p)]
