"""`memkit demo`: what memkit does that a vector store alone does not, in under a minute.

1. **Multi-hop recall.** A two-hop question of the committed MuSiQue sample with its 20
   paragraphs (2 answer it, 18 are distractors): dense retrieval finds the passage that
   names the question's entity, the HippoRAG graph (phrases linked across passages, then
   Personalized PageRank) also finds the second hop.
2. **Versions.** An update supersedes a memory: a read now sees the new text, a read ``as_of``
   a time before the update still sees the old one.
3. **Deletes reach every index.** A deleted item is gone from the record, from the dense
   index and from the graph.
4. The command that runs the full benchmark.

Offline: the packaged MiniLM embeds, the graph is built by the LLM-free rule extractor (no
spaCy, no LLM), so the output is the same on every machine.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from memkit.errors import InvalidInput

#: the demo's question: MuSiQue answerable dev, "2hop__574419_270105" (committed sample)
QUESTION_ID = "2hop__574419_270105"
GRAPH = "hipporag"
SHOW = 3


def load_question(question_id: str = QUESTION_ID) -> dict[str, Any]:
    """The MuSiQue record ``question_id`` from the committed sample."""
    from memkit.eval.datasets import find_data_file

    path = find_data_file("musique-sample")
    with path.open(encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("id") == question_id:
                return rec  # type: ignore[no-any-return]
    raise InvalidInput(f"question {question_id} is not in {path}")


def run_demo(memory_dir: Path | None = None, embedder: str | None = None) -> None:
    """Build the demo memory in ``memory_dir`` (new or empty; default: a temporary folder,
    removed afterwards) and print the four steps."""
    if memory_dir is not None and memory_dir.exists() and any(memory_dir.iterdir()):
        raise InvalidInput(f"the demo builds a fresh memory: {memory_dir} is not empty "
                           "(give a new folder, or leave --memory out)")
    keep = memory_dir is not None
    directory = memory_dir or Path(tempfile.mkdtemp(prefix="memkit-demo-"))
    try:
        _run(directory, embedder)
    finally:
        if not keep:
            shutil.rmtree(directory, ignore_errors=True)


def _run(directory: Path, embedder: str | None) -> None:
    from memkit.embed.lazy import lazy_embedder
    from memkit.memory import Memory

    started = time.perf_counter()
    rec = load_question()
    emb = lazy_embedder(embedder)
    say = click.echo
    say(f"memkit demo: a memory at {directory}, embedder {emb.name}, two indexes over one "
        f"SQLite record: dense vectors and the {GRAPH} graph\n")
    with Memory.open(directory, embedder=emb, backends=[GRAPH, "dense"],
                     backend_options={GRAPH: {"extractor": "rules"}}) as mem:
        _multi_hop(mem, rec, say)
        _versions(mem, say)
        _delete(mem, say)
    say(f"\n4. The full benchmark (200 MuSiQue questions, 3,141 passages; data in "
        f"../shared/data or --data-dir):\n"
        f"   memkit eval musique --backend dense,{GRAPH}\n"
        f"   or, on the committed 30-question sample: memkit eval musique-sample "
        f"--backend dense,{GRAPH}")
    say(f"\n(demo took {time.perf_counter() - started:.0f} s)")


def _multi_hop(mem: Any, rec: dict[str, Any], say: Any) -> None:
    paragraphs = rec["paragraphs"]
    say(f"1. Multi-hop recall. MuSiQue question {rec['id']}, with its {len(paragraphs)} "
        f"paragraphs ({sum(p['is_supporting'] for p in paragraphs)} needed, the rest "
        "distractors). Indexing ...")
    t = time.perf_counter()
    mem.write_many([{"text": f"{p['title']}\n{p['paragraph_text']}", "scope": "musique",
                     "source": f"musique:{rec['id']}#{p['idx']}",
                     "metadata": {"supporting": bool(p["is_supporting"])}}
                    for p in paragraphs], batch_size=64)
    say(f"   indexed in {time.perf_counter() - t:.1f} s (loading the model included)\n")
    say(f"   Q: {rec['question']}   (answer: {rec['answer']})")
    found = {}
    for backend, label in (("dense", "dense vectors"),
                           (GRAPH, "graph: phrases linked across passages + PageRank")):
        hits = mem.read(rec["question"], k=SHOW, scope="musique", backend=backend).hits
        found[backend] = sum(bool(h.item.metadata.get("supporting")) for h in hits)
        say(f"   {label}, top {SHOW}:")
        for h in hits:
            mark = "needed " if h.item.metadata.get("supporting") else "       "
            title, _, body = h.item.text.partition("\n")
            say(f"     {h.rank}. {mark} {title}: {' '.join(body.split())[:70]}...")
    need = sum(p["is_supporting"] for p in paragraphs)
    say(f"   -> dense finds {found['dense']} of the {need} passages needed, the graph "
        f"{found[GRAPH]}" + (": it follows the hop from the township to its county's seat."
                             if found[GRAPH] > found["dense"] else "."))


def _versions(mem: Any, say: Any) -> None:
    scope = {"namespace": "demo", "user": "dana"}
    say("\n2. Versions. Dana's notes:")
    first = mem.write("Dana's team lead is Priya.", scope=scope, source="chat:1")
    say(f"   write  [{first}] Dana's team lead is Priya.")
    before = time.time()
    time.sleep(0.01)
    second = mem.update(first, "Dana's team lead is Marco.", reason="reorg")
    say(f"   update [{first}] -> [{second}] Dana's team lead is Marco.  (reason: reorg)")
    query = "Who is Dana's team lead?"
    now = mem.read(query, k=1, scope=scope).hits[0].item.text
    past = mem.read(query, k=1, scope=scope, as_of=before).hits[0].item.text
    say(f"   read   {query!r} now          -> {now}")
    say(f"   read   {query!r} as_of before -> {past}")


def _delete(mem: Any, say: Any) -> None:
    from memkit.errors import NotFound

    scope = {"namespace": "demo", "user": "dana"}
    text = "Dana's door code is 4417."
    iid = mem.write(text, scope=scope)
    say(f"\n3. Deletes reach every index. write [{iid}] {text}")

    def where() -> str:
        found = [name for name in mem.backends
                 if any(h.item.id == iid for h in
                        mem.read("Dana's door code", k=5, scope=scope, backend=name).hits)]
        return ", ".join(found) or "no index"

    def sizes() -> str:
        b = mem.stats()["backends"]
        return f"dense vectors {b['dense'].get('vectors')}, graph passages " \
               f"{b[GRAPH].get('passages')}"

    say(f"   before: found by {where()}; {sizes()}")
    mem.delete([iid], reason="user request")
    try:
        mem.get(iid)
        in_record = "still in the record"
    except NotFound:
        in_record = "gone from the record"
    last = mem.audit(iid, limit=1)[0]
    say(f"   delete [{iid}] (audit: {last['op']}, reason {last['reason']!r}); after: "
        f"{in_record}, found by {where()}; {sizes()}")
