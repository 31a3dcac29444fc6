from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from memkit import Memory
from memkit.ingest import chunk_text, ingest_paths
from memkit.ingest.chunk import word_count


@settings(max_examples=60, deadline=None)
@given(words=st.lists(st.sampled_from(["alpha", "beta.", "gamma", "delta!", "eps?", "z"]),
                      min_size=0, max_size=120),
       max_tokens=st.integers(3, 30), overlap=st.integers(0, 2))
def test_chunks_cover_the_text_within_the_budget(words: list[str], max_tokens: int,
                                                 overlap: int) -> None:
    text = " ".join(words)
    chunks = chunk_text(text, max_tokens=max_tokens, overlap=overlap)
    for c in chunks:
        assert word_count(c.text) <= max_tokens
        assert text[c.start:c.end] == c.text
    # every word of the text is in some chunk, in order, and chunks advance
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
    assert all(a.start < b.start for a, b in zip(chunks, chunks[1:], strict=False))


def test_overlap_repeats_whole_sentences() -> None:
    text = "A b c. D e f. G h i. J k l."
    plain = [c.text for c in chunk_text(text, max_tokens=6, overlap=0)]
    over = [c.text for c in chunk_text(text, max_tokens=6, overlap=3)]
    assert plain == ["A b c. D e f.", "G h i. J k l."]
    assert over == ["A b c. D e f.", "D e f. G h i.", "G h i. J k l."]


def _corpus(root: Path) -> Path:
    docs = root / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.md").write_text("# Apollo\n\n" + " ".join(
        f"Mission {i} of the Apollo programme flew in {1961 + i}." for i in range(8)))
    (docs / "sub" / "b.txt").write_text("Bananas are rich in potassium.")
    (docs / "c.jsonl").write_text(
        json.dumps({"text": "Cobalt is a metal.", "title": "Cobalt", "lang": "en"}) + "\n"
        + "{not json\n" + json.dumps({"body": "no text field"}) + "\n")
    (docs / "latin1.txt").write_bytes("café crème".encode("latin-1"))
    (docs / "blob.txt").write_bytes(b"\x00\x01\x02binary")
    (docs / "page.html").write_text("<html><title>Dune</title><body><script>x=1</script>"
                                    "<p>Arrakis is a desert planet.</p></body></html>")
    (docs / ".hidden.txt").write_text("never ingested")
    (docs / "broken.txt").symlink_to(docs / "does-not-exist")
    return docs


def test_ingest_reports_bad_files_and_continues(mem: Memory, tmp_path: Path) -> None:
    docs = _corpus(tmp_path)
    report = ingest_paths(mem, [docs, tmp_path / "nope"], progress=False, max_tokens=12,
                          overlap=2)
    rejected = {Path(what).name: reason for what, reason in report.rejected}
    assert "not UTF-8" in rejected["latin1.txt"]
    assert "binary" in rejected["blob.txt"]
    assert "cannot read" in rejected["broken.txt"]
    assert "no such file" in rejected["nope"]
    assert "property name" in rejected["c.jsonl:2"]  # file and line named
    assert "'text' missing" in rejected["c.jsonl:3"]
    assert len(report.rejected) == 6
    texts = [it.text for it in mem.store.iter_items()]
    assert "Cobalt\nCobalt is a metal." in texts
    assert any(t.startswith("Dune\n") and "x=1" not in t for t in texts)
    assert not any("never ingested" in t for t in texts)
    apollo = [it for it in mem.store.iter_items() if it.metadata.get("title") == "Apollo"]
    assert len(apollo) > 1 and all(it.text.startswith("Apollo\n") for it in apollo)
    assert apollo[0].source.endswith("a.md#0") and apollo[0].metadata["chunks"] == len(apollo)
    assert not any("# Apollo" in it.text for it in apollo)  # the heading became the title
    cobalt = next(it for it in mem.store.iter_items() if "Cobalt" in it.text)
    assert cobalt.metadata["lang"] == "en" and cobalt.source.endswith("c.jsonl:1")
    # rerunning adds nothing and reports everything as a duplicate
    again = ingest_paths(mem, [docs], progress=False, max_tokens=12, overlap=2)
    assert again.added == [] and again.skipped_duplicates == len(report.added)
