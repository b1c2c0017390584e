"""The document record: its size in UTF-8 bytes, which every stage and the accounting read."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lemur_corpus.document import Document, utf8_len

TEXTS = st.text(st.characters(codec=None, exclude_categories=()), max_size=200)


@settings(max_examples=300, deadline=None)
@given(st.lists(TEXTS, min_size=1, max_size=6))
def test_utf8_len_is_the_encoded_length_whatever_came_before(texts: list[str]) -> None:
    """Non-ASCII texts are measured once per text object in a row: asked again, in turn, and for an
    equal text that is another object, the size is the encoding's (lone surrogates 3 bytes each)."""
    for text in [*texts, *texts[::-1], *(t for t in texts for _ in range(2))]:
        assert utf8_len(text) == len(text.encode("utf-8", "surrogatepass"))
        copy = "".join(list(text))  # equal, and (but for the empty or one-character text) another object
        assert utf8_len(copy) == len(text.encode("utf-8", "surrogatepass"))


def test_a_document_edited_in_place_of_another_reports_its_own_size() -> None:
    doc = Document(id="web/1", source="web", kind="text", text="café " * 10)
    assert doc.nbytes == 60
    edited = doc.replace(text="naïve")
    assert (doc.nbytes, edited.nbytes, doc.nbytes) == (60, 6, 60)
