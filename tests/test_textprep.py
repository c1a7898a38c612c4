"""Preprocessing shared by training and inference: maths, markers, unicode, phrases, the length cap."""
from __future__ import annotations

import pytest

from recommender.classification.textprep import (
    ABSTRACT_END,
    ABSTRACT_START,
    EQN,
    TITLE_END,
    TITLE_START,
    merge_phrases,
    preprocess,
    replace_math,
    tokenize,
)


def test_inline_and_display_maths_become_eqn():
    assert tokenize(r"energy $E=mc^2$ and $$\int f$$ then \(x\) and \[y\] end") == \
        ["energy", EQN, "and", EQN, "then", EQN, "and", EQN, "end"]


def test_escaped_dollar_is_literal():
    assert tokenize(r"costs \$5 and \$10 today") == ["costs", "5", "and", "10", "today"]


def test_dollar_nested_in_braces_does_not_close_span():
    assert tokenize(r"let $a \text{ if $b$ holds}$ be given") == ["let", EQN, "be", "given"]


def test_unmatched_dollar_keeps_the_rest():
    assert tokenize("price in $ of the rest of the abstract") == ["price", "in", "of", "the", "rest", "of", "the",
                                                                 "abstract"]


def test_escaped_dollar_inside_maths():
    assert replace_math(r"$a\$b$ x", "M") == "M x"


def test_unicode_is_normalised_and_lowercased():
    toks = tokenize("Schrödinger ﬁeld ＱＣＤ Αλφα")
    assert toks == ["schrödinger", "field", "qcd", "αλφα"]


def test_markers_and_empty_abstract():
    assert preprocess("A Title", "") == [TITLE_START, "a", "title", TITLE_END, ABSTRACT_START, ABSTRACT_END]
    assert preprocess("", "") == [TITLE_START, TITLE_END, ABSTRACT_START, ABSTRACT_END]


def test_length_cap_keeps_markers_and_title():
    toks = preprocess("short title", "word " * 1000, max_tokens=50)
    assert len(toks) == 50
    assert toks[:4] == [TITLE_START, "short", "title", TITLE_END]
    assert toks[-1] == ABSTRACT_END


def test_long_title_is_capped_too():
    toks = preprocess("t " * 500, "a " * 500, max_tokens=40)
    assert len(toks) == 40 and toks.count("t") == 18 and toks.count("a") == 18


def test_phrases_merge_greedily():
    assert merge_phrases(["deep", "neural", "network", "model"], {"neural_network"}) == \
        ["deep", "neural_network", "model"]
    assert preprocess("Neural Networks", "", phrases={"neural_networks"})[1] == "neural_networks"


def test_bad_input():
    with pytest.raises(TypeError):
        preprocess(None or 3, "x")
    with pytest.raises(ValueError):
        preprocess("t", "a", max_tokens=3)
