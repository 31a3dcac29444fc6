"""Unicode phrase normalisation and sentence splitting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memkit.errors import MissingDependency
from memkit.nlp import alnum_count, load_spacy, normalise_phrase, split_sentences


@pytest.mark.parametrize(("raw", "norm"), [
    ("The  Beatles", "the beatles"),
    ("Zoë Saldaña", "zoë saldaña"),
    ("ΑΘΗΝΑ", "αθηνα"),
    ("Санкт-Петербург", "санкт петербург"),
    ("北京市", "北京市"),
    ("हिन्दी", "हिन्दी"),  # combining marks (Mn/Mc) are part of the word
    ("Straße", "strasse"),  # casefold, not lower
    ("ﬁle", "file"),  # NFKC ligature
    ("O'Brien", "obrien"),
    ("U.S.", "us"),
    ("1,000,000", "1 000 000"),
    ("\t\n", ""),
])
def test_normalise_phrase(raw: str, norm: str) -> None:
    assert normalise_phrase(raw) == norm


@given(st.text(max_size=40))
def test_normalise_is_idempotent_and_clean(text: str) -> None:
    once = normalise_phrase(text)
    assert normalise_phrase(once) == once
    assert once == once.strip() and "  " not in once
    assert alnum_count(once) == alnum_count(once.replace(" ", ""))


def test_non_latin_words_survive() -> None:
    # the reference normaliser maps these to spaces; we keep one token per word
    assert normalise_phrase("Лев Толстой").split() == ["лев", "толстой"]


@pytest.mark.parametrize(("text", "expected"), [
    ("One. Two.", ["One.", "Two."]),
    ("J. R. R. Tolkien wrote it. Then he died.", ["J. R. R. Tolkien wrote it.", "Then he died."]),
    ("It costs 3.5 dollars. Fine.", ["It costs 3.5 dollars.", "Fine."]),
    ("He met Dr. Who in St. Ives. Cool!", ["He met Dr. Who in St. Ives.", "Cool!"]),
    ("“Stop.” She left.", ["“Stop.”", "She left."]),
    ("Was it? yes it was.", ["Was it?", "yes it was."]),
    ("the U.S. army came.", ["the U.S. army came."]),
    ("no final punctuation", ["no final punctuation"]),
    ("", []),
    ("彼は来た。彼女も来た！", ["彼は来た。", "彼女も来た！"]),
])
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


@given(st.text(max_size=200))
def test_split_keeps_every_character(text: str) -> None:
    joined = "".join(split_sentences(text))
    assert "".join(joined.split()) == "".join(text.split())


def test_missing_spacy_model_names_the_extra() -> None:
    with pytest.raises(MissingDependency) as info:
        load_spacy("no_such_spacy_model_xyz")
    assert info.value.extra == "nlp"
