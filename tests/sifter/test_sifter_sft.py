"""Snippet rows, the supervised cold start (resumable) and serving a trained proxy directory."""

from __future__ import annotations

import json

import numpy as np
import pytest

from memkit.backends.sifter.prefilter import Unit
from memkit.backends.sifter.prompt import PromptConfig
from memkit.errors import ConfigError, InvalidInput, NotFound
from memkit.sifterlab.data import SifterExample
from memkit.sifterlab.snippets import SnippetSettings, snippet_rows, split_by_conversation


class WordEmbedder:
    """Bag-of-words vectors over a fixed vocabulary (unit-normalised): cosine = word overlap."""

    name = "words"

    def __init__(self, vocab):
        self.vocab = {w: i for i, w in enumerate(vocab)}
        self.dim = len(vocab)

    def embed(self, texts, progress=False, desc=""):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for r, t in enumerate(texts):
            for w in t.lower().replace(":", " ").split():
                if w in self.vocab:
                    out[r, self.vocab[w]] += 1.0
            n = np.linalg.norm(out[r])
            out[r] /= n if n else 1.0
        return out

    def embed_queries(self, texts):
        return self.embed(texts)


VOCAB = "ann bob oslo paris cat dog moved adopted likes tea coffee rain".split()


def _example(sample: int, gold: list[int], question: str = "where ann moved") -> SifterExample:
    sessions = [
        "Ann: I like tea\nBob: coffee for me\nAnn: rain again",
        "Bob: I adopted a dog\nAnn: a cat for me",
        "Ann: I moved to Oslo\nBob: Paris is nice\nAnn: tea in Oslo",
        "Bob: rain rain\nAnn: coffee",
    ]
    units = [Unit(uid=f"c{sample}:S{i + 1}", text=t, date=f"day {i + 1}", order=float(i + 1))
             for i, t in enumerate(sessions)]
    return SifterExample(qid=f"q{sample}:{question}", question=question, answers=["Oslo"],
                         units=units, gold=gold, source="locomo", category=1,
                         meta={"sample": sample})


def test_snippet_rows_best_turns_candidates_and_target():
    emb = WordEmbedder(VOCAB)
    settings = SnippetSettings(candidates=2, turns=1, turn_chars=12, top_n=2)
    [row] = snippet_rows([_example(0, [2])], emb, settings)
    # scores (max over turns): S3 "ann moved oslo" 2 words of 3 -> best; S1/S2/S4 share "ann"
    assert row["all_ranking"][0] == 2 and sorted(row["all_ranking"]) == [0, 1, 2, 3]
    # the 2 best sessions in chronological order; S3 shown as its best turn, cut to 12 chars
    assert row["candidate_sessions"] == sorted(row["all_ranking"][:2])
    j = row["candidate_sessions"].index(2)
    assert row["units"][j]["text"] == "Ann: I moved"
    assert row["gold"] == [j]
    assert row["target"].startswith(f"<think></think><ranking>{j},")
    assert "<session1>" in row["prompt"][-1]["content"] and "<date>day" in \
        row["prompt"][-1]["content"]


def test_snippet_rows_keep_gold_only_for_training():
    emb = WordEmbedder(VOCAB)
    settings = SnippetSettings(candidates=2, turns=1, top_n=2)
    # gold S4 ("rain rain / coffee") shares no word with the question: never in the top 2
    [held] = snippet_rows([_example(0, [3])], emb, settings, keep_gold=False)
    [train] = snippet_rows([_example(0, [3])], emb, settings, keep_gold=True)
    assert 3 not in held["candidate_sessions"] and held["gold"] == []
    assert 3 in train["candidate_sessions"] and len(train["candidate_sessions"]) == 2
    assert train["candidate_sessions"][train["gold"][0]] == 3
    assert train["candidate_sessions"] == sorted(train["candidate_sessions"])
    assert held["all_gold"] == train["all_gold"] == [3]


def test_snippet_rows_in_score_order_put_the_prefilter_ranking_in_the_prompt():
    emb = WordEmbedder(VOCAB)
    chrono = SnippetSettings(candidates=3, turns=1, top_n=3)
    by_score = SnippetSettings(candidates=3, turns=1, top_n=3, order="score")
    [a] = snippet_rows([_example(0, [2])], emb, chrono)
    [b] = snippet_rows([_example(0, [2])], emb, by_score)
    assert b["candidate_sessions"] == a["all_ranking"][:3] == b["all_ranking"][:3]
    assert b["prefilter_ranking"] == [0, 1, 2] and b["gold"] == [0]
    assert sorted(a["candidate_sessions"]) == sorted(b["candidate_sessions"])
    with pytest.raises(InvalidInput, match="order"):
        SnippetSettings(order="random")


def test_split_by_conversation_is_disjoint():
    exs = [_example(s, [2], f"q{i}") for s in (0, 1, 2) for i in range(2)]
    train, test = split_by_conversation(exs, [1])
    assert {e.meta["sample"] for e in test} == {1} and len(test) == 2
    assert {e.meta["sample"] for e in train} == {0, 2}
    bad = SifterExample("x", "q", [], [], [], "locomo")
    with pytest.raises(InvalidInput, match="meta"):
        split_by_conversation([bad], [1])
    with pytest.raises(InvalidInput):
        SnippetSettings(candidates=0)


# ----- SFT on a tiny random-initialised policy ------------------------------------------------

def _tiny(tmp_path, rows, save=("norm",)):
    torch = pytest.importorskip("torch")
    pytest.importorskip("peft")
    from memkit.backends.sifter.trained import load_base_model
    from memkit.llm.transformers_llm import TransformersLLM
    from memkit.sifterlab.sft import SFTSettings, attach_proxy_lora
    from memkit.sifterlab.tiny import build_tiny_policy

    torch.set_num_threads(1)
    base = build_tiny_policy(rows, tmp_path / "tiny", hidden=32, layers=1, heads=2, seed=0)
    model, tok = load_base_model(str(base))
    # a random policy's embeddings (std 0.02) are tied to its frozen LM head, so with LoRA
    # alone its logits stay near uniform (measured: reply loss 4.07 -> 3.33 at best); larger
    # embeddings and a trainable final norm give it a pretrained model's range of logits
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(5.0)
    model.save_pretrained(base)  # the base a saved proxy reloads
    model = attach_proxy_lora(model, SFTSettings(lora_r=8, lora_alpha=16, seed=0,
                                                 modules_to_save=save))
    return base, TransformersLLM(model, tokenizer=tok, model_name="tiny")


def _rows():
    emb = WordEmbedder(VOCAB)
    cfg = PromptConfig(system=None, task="Q : {query} top {k}", top_n=2)
    settings = SnippetSettings(candidates=3, turns=1, top_n=2)
    exs = [_example(0, [2], "where ann moved"), _example(1, [1], "bob adopted dog")]
    return snippet_rows(exs, emb, settings, keep_gold=True, config=cfg)


def test_sft_learns_the_reply_and_evaluation_counts_it(tmp_path):
    from memkit.sifterlab.sft import SFTSettings, encode_row, evaluate_proxy, train_sft

    rows = _rows()
    _, llm = _tiny(tmp_path, rows)
    ids, n_reply = encode_row(llm, rows[0])
    reply = llm.tokenizer.decode(ids[-n_reply:])
    assert reply.replace(" ", "").startswith(rows[0]["target"].replace(" ", ""))
    before = evaluate_proxy(llm, rows, progress=False)
    settings = SFTSettings(lr=1e-2, epochs=200, grad_accum=2, lora_r=8, lora_alpha=16,
                           warmup_steps=2, checkpoint_every=1000)
    log = train_sft(llm, rows, settings, tmp_path / "run", progress=False)
    losses = [e["loss"] for e in log if "loss" in e]
    assert len(losses) == 200 and losses[-1] < 0.1 * losses[0]
    after = evaluate_proxy(llm, rows, progress=False)
    assert before["well_formed_rate"] == 0.0 and after["well_formed_rate"] == 1.0
    # the proxy puts each row's gold session first: NDCG@1 over all sessions is 1
    assert after["proxy"]["ndcg@1"] == 1.0
    assert [r["ranked"][0] for r in after["replies"]] == [r["gold"][0] for r in rows]
    assert set(after["by_category"]) == {"1"} and after["n"] == 2


def test_sft_resumes_from_its_checkpoint_to_the_same_weights(tmp_path):
    from memkit.sifterlab.sft import SFTSettings, train_sft

    rows = _rows()
    settings = SFTSettings(lr=1e-2, epochs=3, grad_accum=1, lora_r=8, lora_alpha=16,
                           checkpoint_every=2)
    _, full = _tiny(tmp_path / "a", rows)
    train_sft(full, rows, settings, tmp_path / "full", progress=False)

    class Crash(Exception):
        pass

    def crash_at_3(step):
        if step == 3:
            raise Crash
        return {}

    _, first = _tiny(tmp_path / "b", rows)
    with pytest.raises(Crash):
        train_sft(first, rows, settings, tmp_path / "resumed", evaluate=crash_at_3,
                  eval_every=3, progress=False)
    saved = json.loads((tmp_path / "resumed" / "checkpoint" / "log.json").read_text())
    assert max(e["step"] for e in saved["log"]) == 2
    _, second = _tiny(tmp_path / "c", rows)  # a fresh process: fresh adapter, same seed
    log = train_sft(second, rows, settings, tmp_path / "resumed", progress=False)
    assert [e["step"] for e in log if "loss" in e] == [1, 2, 3, 4, 5, 6]
    a = {n: p for n, p in full.hf_model.named_parameters() if "lora" in n}
    b = {n: p for n, p in second.hf_model.named_parameters() if "lora" in n}
    assert a.keys() == b.keys() and all(np.allclose(a[n].detach(), b[n].detach(), atol=1e-6)
                                        for n in a)
    other = SFTSettings(lr=5e-3, epochs=3, grad_accum=1, lora_r=8, lora_alpha=16)
    with pytest.raises(ConfigError, match="other settings"):
        train_sft(second, rows, other, tmp_path / "resumed", progress=False)


# ----- serving --------------------------------------------------------------------------------

def _memory_row(mem, query, cfg):
    """A training row whose prompt is exactly the one ``rerank="sifter"`` builds for ``query``
    over ``mem``'s items (so a tiny policy that memorised it must answer it at serving)."""
    from memkit.backends.sifter.prompt import build_messages
    from memkit.backends.sifter.rerank import SifterReranker
    from memkit.llm.fake import ScriptedLLM

    hits = mem.read(query, k=3).hits
    rr = SifterReranker(mem, llm=ScriptedLLM({}))
    units = sorted((rr._unit(h) for h in hits), key=lambda u: (u.order, str(u.uid)))
    g = next(i for i, u in enumerate(units) if "Oslo" in u.text)
    other = next(i for i in range(len(units)) if i != g)
    return {"prompt": build_messages(query, units, cfg), "qid": "mem", "question": query,
            "answers": ["Oslo"], "n_candidates": len(units), "top_n": 2, "gold": [g],
            "target": f"<think></think><ranking>{g},{other}</ranking>",
            "candidate_sessions": list(range(len(units))),
            "all_ranking": list(range(len(units))), "all_gold": [g]}, units[g].uid


def test_trained_proxy_directory_serves_memory_reads(tmp_path, mem):
    from memkit.backends.sifter.trained import load_proxy, write_proxy_dir
    from memkit.sifterlab.sft import SFTSettings, train_sft

    for text in ("Ann: I like tea", "Ann: I moved to Oslo", "Bob: coffee for me"):
        mem.write(text)
    cfg = PromptConfig(system=None, task="Q : {query} top {k}", top_n=2)
    mem_row, oslo = _memory_row(mem, "where ann moved", cfg)
    rows = [mem_row, *_rows()]
    base, llm = _tiny(tmp_path, rows)
    settings = SFTSettings(lr=1e-2, epochs=200, grad_accum=3, lora_r=8, lora_alpha=16,
                           warmup_steps=2, checkpoint_every=1000)
    log = train_sft(llm, rows, settings, tmp_path / "run", progress=False)
    assert log[-1]["loss"] < 0.1 * log[0]["loss"]
    proxy_dir = write_proxy_dir(tmp_path / "proxy", llm.hf_model, base=str(base), config=cfg,
                                trained_on="test rows")
    proxy = load_proxy(proxy_dir)
    assert proxy.config == PromptConfig(None, "Q : {query} top {k}", 2, None)
    assert load_proxy(proxy_dir) is proxy  # memoised
    prompts = []
    real = proxy.llm._complete

    def spy(messages, params):  # the real model, its prompts recorded
        prompts.append(messages[-1]["content"])
        return real(messages, params)

    proxy.llm._complete = spy
    res = mem.read("where ann moved", k=2, rerank="sifter", rerank_model=str(proxy_dir),
                   trace=True)
    assert len(res.hits) == 2 and res.cost.llm_calls == 1
    # the prompt is the one it was trained with (wording and top_n from proxy.json)
    assert prompts == [mem_row["prompt"][-1]["content"]]
    trace = res.traces["rerank"]
    assert trace["reply"].replace(" ", "") == mem_row["target"], trace["reply"]
    assert trace["parsed"] == [int(t) for t in mem_row["target"].split(">")[3].split("<")[0]
                               .split(",")]
    assert res.hits[0].id == oslo and res.hits[0].evidence["sifter_rank"] == 1
    # a proxy trained on candidates best-first is served them best-first
    import shutil

    scored = tmp_path / "proxy-score"
    shutil.copytree(proxy_dir, scored)
    manifest = json.loads((scored / "proxy.json").read_text())
    (scored / "proxy.json").write_text(json.dumps({**manifest, "snippets": {"order": "score"}}))
    load_proxy(scored).llm._complete = spy
    plain = [h.text for h in mem.read("where ann moved", k=3).hits]
    mem.read("where ann moved", k=2, rerank="sifter", rerank_model=str(scored))
    shown = [line for line in prompts[-1].splitlines() if line.startswith(("Ann:", "Bob:"))]
    assert shown == plain and plain != ["Ann: I like tea", "Ann: I moved to Oslo",
                                        "Bob: coffee for me"]  # not the chronological order
    with pytest.raises(InvalidInput, match="rerank_model needs"):
        mem.read("x", rerank_model=str(proxy_dir))
    with pytest.raises(NotFound, match="not a trained proxy"):
        mem.read("x", rerank="sifter", rerank_model=str(tmp_path))
    with pytest.raises(ConfigError, match="not both"):
        mem.read("x", rerank="sifter", rerank_model=str(proxy_dir),
                 rerank_options={"llm": llm})


def test_score_replies_falls_back_to_the_prefilter_order():
    from memkit.sifterlab.sft import score_replies

    rows = _rows()
    res = score_replies(rows, ["no ranking at all", "<think></think><ranking>9</ranking>"])
    assert res["well_formed_rate"] == 0.0 and [r["ranked"] for r in res["replies"]] == [[], []]
    assert res["proxy"] == res["prefilter"]  # unranked candidates follow in prefilter order
    g = rows[0]["gold"][0]
    other = next(j for j in range(rows[0]["n_candidates"]) if j != g)
    good = score_replies(rows[:1], [f"<think></think><ranking>{g},{other}</ranking>"])
    assert good["well_formed_rate"] == 1.0 and good["proxy"]["ndcg@1"] == 1.0
    with pytest.raises(InvalidInput, match="2 rows but 1 replies"):
        score_replies(rows, ["x"])
