"""The GRPO reward wrapper, the tiny policy, format warm-up and checkpoint averaging."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from memkit.backends.sifter.prefilter import Unit
from memkit.sifterlab.working import SimulatedWorkingLLM, WorkingAgent

os.environ.setdefault("HF_HUB_OFFLINE", "1")

UNITS = [Unit(f"u{i}", f"memory number {i} about topic {i}", date=f"day {i}") for i in range(4)]
QUESTION = "What about topic 0 and topic 3?"


def row(gold, top_n=3):
    return {"units": [{"uid": u.uid, "text": u.text, "date": u.date, "order": float(i)}
                      for i, u in enumerate(UNITS)],
            "gold": gold, "question": QUESTION, "answers": ["the answer"],
            "n_candidates": 4, "top_n": top_n}


def reward_fn(start=1.0):
    from memkit.sifterlab.train import SifterReward

    sim = SimulatedWorkingLLM([(QUESTION, "the answer", [UNITS[0].text, UNITS[3].text])])
    return SifterReward(WorkingAgent(sim), retrieval_weight_start=start, top_n=3), sim


def columns(rows):
    return {k: [r[k] for r in rows] for k in rows[0]}


def test_sifter_reward_mixes_answer_and_retrieval_by_epoch():
    fn, sim = reward_fn()
    rows = [row([0, 3]), row([0, 3]), row([0, 3])]
    completions = [
        [{"role": "assistant", "content": "<think>t</think><ranking>0,1,2</ranking>"}],
        [{"role": "assistant", "content": "<think>t</think><ranking>1,2,3</ranking>"}],
        [{"role": "assistant", "content": "<ranking>0,0,1</ranking>"}],       # malformed
    ]
    logged = {}
    out = fn(prompts=[None] * 3, completions=completions,
             trainer_state=SimpleNamespace(epoch=0.75), log_metric=logged.__setitem__,
             **columns(rows))
    # 1st: answer R = 1 (gold at k=1); retrieval = (1/log2 2 + 0) / 2 = 0.5; weight 0.25
    # 2nd: gold 3 at position 3 -> answer R = 1/log2(4) = 0.5; retrieval = (1/log2 4)/2 = 0.25
    assert out == pytest.approx([0.75 * 1 + 0.25 * 0.5, 0.75 * 0.5 + 0.25 * 0.25, 0.0])
    assert logged["sifter/format_ok"] == pytest.approx(2 / 3)
    assert logged["sifter/ndcg@1"] == pytest.approx(1 / 3)
    assert logged["sifter/retrieval_weight"] == pytest.approx(0.25)
    # cut-offs {0,1,2,3} for two completions = 8 requests; only s0 ([]) is shared -> 7 calls
    assert sim.usage.calls == 7


def test_sifter_reward_after_anneal_is_pure_answer_reward():
    fn, _ = reward_fn()
    out = fn(prompts=[None], completions=["<think></think><ranking>1,3,2</ranking>"],
             trainer_state=SimpleNamespace(epoch=1.5), **columns([row([0, 3])]))
    assert out == pytest.approx([1 / __import__("math").log2(3)])


class CharTokenizer:
    """Decodes one id to one piece: enough for ranking_span_mask."""

    def __init__(self, pieces):
        self.pieces = pieces

    def decode(self, ids, skip_special_tokens=False):
        return "".join(self.pieces[i] for i in ids)


PIECES = ["<think>", "hmm", "</think>", "<rank", "ing>", "3", ",", " 1", "</ranking>", "[EOS]",
          "[PAD]", "< ranking >"]


@pytest.mark.parametrize(("seq", "valid", "ok", "want"), [
    # the tag split over two tokens opens the span at the token after "ing>"
    ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 10, True, [0, 0, 0, 0, 0, 1, 1, 1, 1, 0]),
    # padding after the completion stays 0; a spaced tag counts
    ([0, 2, 11, 5, 8, 9, 10, 10], 6, True, [0, 0, 0, 1, 1, 0, 0, 0]),
    # never closed: the span runs to the end
    ([0, 2, 3, 4, 5, 6], 6, True, [0, 0, 0, 0, 1, 1]),
    # no <ranking>: the whole completion (malformed replies are pushed down as a whole)
    ([0, 1, 2, 5, 9], 5, True, [1, 1, 1, 1, 1]),
    # marked malformed by the format gate: the whole completion too
    ([0, 2, 3, 4, 5, 8, 9, 10], 7, False, [1, 1, 1, 1, 1, 1, 1, 0]),
])
def test_ranking_span_mask_covers_only_the_ranking(seq, valid, ok, want):
    torch = pytest.importorskip("torch")
    from memkit.sifterlab.train import ranking_span_mask

    ids = torch.tensor([seq])
    mask = torch.tensor([[1] * valid + [0] * (len(seq) - valid)])
    got = ranking_span_mask(ids, CharTokenizer(PIECES), mask, [ok])
    assert got.tolist() == [want] and got.dtype == mask.dtype


def test_loss_tokens_must_be_known():
    from memkit.errors import InvalidInput
    from memkit.sifterlab.train import _trainer_class

    trl = SimpleNamespace(GRPOTrainer=object, __version__="0.1")
    assert _trainer_class(trl, "all", 10) is object
    with pytest.raises(InvalidInput, match="loss_tokens"):
        _trainer_class(trl, "ids", 10)

    class OldTrainer:  # a GRPOTrainer whose loss knows nothing of a token mask
        def _compute_loss(self, model, inputs):
            return inputs["completion_mask"]

    from memkit.errors import ConfigError

    with pytest.raises(ConfigError, match="tool_mask.*0.1"):
        _trainer_class(SimpleNamespace(GRPOTrainer=OldTrainer, __version__="0.1"), "ranking", 1)


def test_settings_round_trip(tmp_path):
    from memkit.sifterlab.train import TrainSettings

    s = TrainSettings(model="m", output_dir=str(tmp_path), learning_rate=1e-5, extra={"a": 1})
    s.save(tmp_path / "s.json")
    assert TrainSettings.load(tmp_path / "s.json") == s
    d = TrainSettings(model="m", output_dir="o")
    assert (d.num_generations, d.epsilon, d.epsilon_high, d.beta, d.learning_rate) == \
        (6, 0.2, 0.28, 0.0, 1e-6)


@pytest.mark.slow  # importing transformers' modelling code alone takes ~25 s on the shared box
def test_tiny_policy_tokenizer_round_trips_tags_and_warmup_lowers_loss(tmp_path):
    pytest.importorskip("transformers")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from memkit.backends.sifter.prompt import PromptConfig
    from memkit.embed import HashEmbedder
    from memkit.errors import InvalidInput
    from memkit.sifterlab.data import build_rows, toy_examples
    from memkit.sifterlab.train import build_tiny_policy, format_warmup

    torch.set_num_threads(1)
    rows = build_rows(toy_examples(8, n_units=3), HashEmbedder(32), None,
                      config=PromptConfig(system=None, task="Q : {query} top {k}", top_n=2))
    path = build_tiny_policy(rows, tmp_path / "tiny", hidden=16, layers=1, heads=2)
    tok = AutoTokenizer.from_pretrained(path)
    text = "<think> </think> <ranking> 2 , 0 </ranking>"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == 7 and tok.unk_token_id not in ids
    assert tok.decode(ids) == text
    prompt = tok.apply_chat_template(rows[0]["prompt"], add_generation_prompt=True,
                                     tokenize=False)
    assert prompt.startswith("<|user|> <session0>\n") and prompt.endswith("<|assistant|>")
    assert tok.tokenize("<session12>") == ["<", "session", "1", "2", ">"]
    model = AutoModelForCausalLM.from_pretrained(path)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    losses = format_warmup(model, tok, rows, steps=30, batch_size=4, lr=1e-2, progress=False)
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5
    # the default warm-up trains embeddings and norms only, and leaves every weight trainable
    for n, p in model.named_parameters():
        frozen = "self_attn" in n or "mlp" in n
        assert torch.equal(p, before[n]) == frozen, n
        assert p.requires_grad and p.grad is None, n
    with pytest.raises(InvalidInput, match="freeze"):
        format_warmup(model, tok, rows, steps=1, freeze=[""], progress=False)
    losses = format_warmup(model, tok, rows, steps=3, batch_size=4, id_target="sample",
                           freeze=(), progress=False)
    assert not torch.equal(dict(model.named_parameters())["model.layers.0.mlp.up_proj.weight"],
                           before["model.layers.0.mlp.up_proj.weight"])


@pytest.mark.slow
def test_average_checkpoints_is_fp32_mean(tmp_path):
    pytest.importorskip("transformers")
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    from memkit.sifterlab.train import average_checkpoints

    cfg = LlamaConfig(vocab_size=11, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2)
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        m = LlamaForCausalLM(cfg)
        m.save_pretrained(tmp_path / f"c{seed}")
        models.append(m)
    avg = AutoModelForCausalLM.from_pretrained(
        average_checkpoints([tmp_path / f"c{i}" for i in range(3)], tmp_path / "avg"))
    for name, p in avg.named_parameters():
        want = sum(dict(m.named_parameters())[name].detach() for m in models) / 3
        assert torch.allclose(p, want, atol=1e-6), name


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning",
                            "ignore::DeprecationWarning")
@pytest.mark.parametrize("loss_tokens", ["all", "ranking"])
def test_grpo_smoke_two_steps(tmp_path, loss_tokens, monkeypatch, torch_device):
    pytest.importorskip("trl")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from memkit.backends.sifter.prompt import PromptConfig
    from memkit.embed import HashEmbedder
    from memkit.sifterlab.data import build_rows, toy_examples
    from memkit.sifterlab.train import TrainSettings, build_tiny_policy, train_grpo

    torch.set_num_threads(1)
    exs = toy_examples(8, n_units=3)
    rows = build_rows(exs, HashEmbedder(32), None,
                      config=PromptConfig(system=None, task="Q : {query} top {k}", top_n=2))
    path = build_tiny_policy(rows, tmp_path / "tiny", hidden=16, layers=1, heads=2)
    sim = SimulatedWorkingLLM.from_examples(exs)
    settings = TrainSettings(model=str(path), output_dir=str(tmp_path / "run"), max_steps=2,
                             prompts_per_step=2, num_generations=3, max_completion_length=10,
                             save_steps=1, use_cpu=torch_device == "cpu", learning_rate=1e-3,
                             loss_tokens=loss_tokens, bf16=torch_device != "cpu")
    import memkit.sifterlab.train as train_mod

    masks = []

    def spy(ids, tok, valid=None, well_formed=None):
        masks.append((ids.shape, list(well_formed)))
        return real_mask(ids, tok, valid, well_formed)

    real_mask = train_mod.ranking_span_mask
    monkeypatch.setattr(train_mod, "ranking_span_mask", spy)
    result = train_grpo(settings, rows, WorkingAgent(sim), eval_rows=rows[:2])
    # the ranking-span loss is applied to every generated batch, and only when asked for
    assert len(masks) == (2 if loss_tokens == "ranking" else 0)
    assert all(shape[0] == len(ok) == 6 for shape, ok in masks)
    assert result["steps"] == 2 and len(result["reward_history"]) == 2
    assert (tmp_path / "run" / "final" / "config.json").exists()
    assert (tmp_path / "run" / "sifter_train.json").exists()
    AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "final")
    AutoTokenizer.from_pretrained(tmp_path / "run" / "final")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning",
                            "ignore::DeprecationWarning")
def test_training_script_runs_resumes_and_takes_a_real_model_and_working_llm(tmp_path):
    """benchmarks/sifter_train.py end to end: the tiny CPU proof, resumed from its checkpoint,
    then the path for a real proxy (--model DIR) against a real working LLM (hf:DIR)."""
    pytest.importorskip("trl")
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "sifter_train.py"
    small = ["--n-train", "32", "--n-eval", "8", "--warmup-steps", "200", "--prompts-per-step",
             "2", "--generations", "3", "--eval-steps", "1", "--save-steps", "1"]

    def run(*args):
        proc = subprocess.run([sys.executable, str(script), *small, *args],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout

    tiny = tmp_path / "tiny"
    run("--steps", "1", "--out", str(tiny))
    assert (tiny / "grpo" / "checkpoint-1").exists()
    out = run("--steps", "2", "--out", str(tiny))  # same folder: resumes at step 1
    summary = json.loads((tiny / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["working_llm"].startswith("SIMULATED")
    assert "working LLM: SIMULATED" in out
    logged = [json.loads(x)["step"] for x in (tiny / "train_log.jsonl").read_text().splitlines()
              if "reward" in json.loads(x)]
    assert logged == [1, 2]  # step 1 was not trained again
    settings = json.loads((tiny / "grpo" / "sifter_train.json").read_text())
    assert settings["loss_tokens"] == "ranking"
    for name in ("args.json", "before.json", "eval_log.jsonl", "train_log.jsonl",
                 "training.png", "warmup_losses.json"):
        assert (tiny / name).exists(), name

    real = tmp_path / "real"
    policy = tiny / "init_policy"
    run("--steps", "1", "--model", str(policy), "--working-llm", f"hf:{policy}",
        "--loss-tokens", "auto", "--out", str(real))
    summary = json.loads((real / "summary.json").read_text())
    assert summary["working_llm"] == f"hf:{policy}" and summary["agent_calls"] > 0
    settings = json.loads((real / "grpo" / "sifter_train.json").read_text())
    assert settings["loss_tokens"] == "all" and settings["model"] == str(policy)
    assert not (real / "init_policy").exists()  # a given model is used as is

    sup = tmp_path / "sup"  # the learnability diagnostic, after the same warm-up
    run("--supervised-check", "1", "--supervised-after-warmup", "--toy", "choice",
        "--out", str(sup))
    check = json.loads((sup / "supervised_check.json").read_text())
    assert check["warmup"]["steps"] == 200 and check["warmup"]["freeze"] == ["self_attn", "mlp"]
    assert 0.0 <= check["warmup"]["sampled_format_ok"] <= 1.0
    assert [c["step"] for c in check["curve"]] == [0]
