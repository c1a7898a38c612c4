"""arXiv id parsing: new/old style, versions, URLs, and helpful errors for everything else."""
import pytest

from recommender.ids import InvalidArxivId, looks_like_id, parse_arxiv_id


@pytest.mark.parametrize("text,expected,version", [
    ("2501.01234", "2501.01234", None),
    ("2501.01234v3", "2501.01234", 3),
    ("hep-th/9901002", "hep-th/9901002", None),
    ("math.GT/0309136v2", "math.GT/0309136", 2),
    ("0704.0001", "0704.0001", None),
    ("https://arxiv.org/abs/2501.01234v2", "2501.01234", 2),
    ("http://arxiv.org/pdf/2501.01234v1.pdf", "2501.01234", 1),
    ("https://arxiv.org/pdf/2501.01234", "2501.01234", None),
    ("arxiv.org/abs/hep-th/9901002", "hep-th/9901002", None),
    ("arXiv:2501.01234", "2501.01234", None),
    ("  2501.01234  ", "2501.01234", None),
    ("https://export.arxiv.org/abs/2501.01234?context=cs", "2501.01234", None),
])
def test_valid_ids(text: str, expected: str, version: int | None) -> None:
    parsed = parse_arxiv_id(text)
    assert parsed.id == expected
    assert parsed.version == version


@pytest.mark.parametrize("text", [
    "banana", "2501.1234567", "", "2513.01234", "0808.05394", "1501.1234", "2501.01234v", "hep-th/99010",
    "https://example.com/abs/2501.01234", "x" * 10_000, "2501.01234; DROP TABLE papers",
])
def test_invalid_ids_have_helpful_messages(text: str) -> None:
    with pytest.raises(InvalidArxivId) as err:
        parse_arxiv_id(text)
    message = str(err.value)
    assert "arXiv id" in message
    assert len(message) < 300  # a 10,000-character argument is not echoed whole


@pytest.mark.parametrize("text", [
    "2501.01234", "2501.01234v2", "hep-th/9901002", "https://arxiv.org/abs/2501.01234v2", "arXiv:2501.01234",
    "  2501.01234 ", "arxiv.org/pdf/2501.01234.pdf",
    "2513.00001", "0808.05394", "2501.1",  # malformed, but meant as ids: parsing them gives the reason
])
def test_text_meant_as_an_id(text: str) -> None:
    assert looks_like_id(text)


@pytest.mark.parametrize("text", ["banana", "graph neural networks", "2501.01234 and more", "abc123", "", "12"])
def test_free_text_is_not_an_id(text: str) -> None:
    assert not looks_like_id(text)
