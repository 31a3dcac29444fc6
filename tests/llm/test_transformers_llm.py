"""TransformersLLM on a tiny random-initialised GPT-2 and a character tokenizer built here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from memkit.errors import NotFound  # noqa: E402
from memkit.llm import TransformersLLM, load_llm  # noqa: E402
from memkit.llm.base import PLAIN_STOPS, apply_stop, render_plain  # noqa: E402

CHARS = "abcdefghijklmnopqrstuvwxyz:\n .?"
TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


def build_tokenizer() -> Any:
    vocab = {"<eos>": 0, "<pad>": 1}
    for ch in CHARS:
        vocab[ch] = len(vocab)
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab=vocab, unk_token="<pad>"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Split("", "isolated")
    tok.decoder = tokenizers.decoders.Fuse()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>"
    )


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=len(CHARS) + 2,
        n_positions=256,
        n_embd=16,
        n_layer=1,
        n_head=2,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=1,
    )
    model = transformers.GPT2LMHeadModel(config)
    path = tmp_path_factory.mktemp("tiny-gpt2")
    model.save_pretrained(path)
    build_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def llm(model_dir: Path, torch_device: str) -> TransformersLLM:
    return TransformersLLM(model_dir, device=torch_device)


def reference_greedy(llm: TransformersLLM, prompt: str, max_new: int) -> tuple[list[int], str]:
    """Greedy decoding straight through model.generate, for comparison."""
    ids = llm.tokenizer(prompt, return_tensors="pt")["input_ids"].to(llm.hf_model.device)
    config = transformers.GenerationConfig(
        max_new_tokens=max_new, do_sample=False, pad_token_id=1, eos_token_id=0
    )
    with torch.inference_mode():
        out = llm.hf_model.generate(input_ids=ids, generation_config=config)
    new = out[0, ids.shape[1] :].tolist()
    return new, llm.tokenizer.decode(new, skip_special_tokens=True)


def test_greedy_matches_model_generate(llm: TransformersLLM) -> None:
    messages = [{"role": "user", "content": "what is up?"}]
    prompt = render_plain(messages)
    new_ids, text = reference_greedy(llm, prompt, 12)
    out = llm.complete(messages, max_tokens=12)
    assert out.text == apply_stop(text, PLAIN_STOPS)
    assert out.prompt_tokens == len(prompt)  # one token per character
    assert out.completion_tokens == len(new_ids)
    assert out.model == str(llm.model) and llm.usage.calls >= 1
    assert llm.complete(messages, max_tokens=12).text == out.text  # deterministic


def test_stop_sequences_cut_the_reply(llm: TransformersLLM) -> None:
    _, text = reference_greedy(llm, render_plain([{"role": "user", "content": "hi"}]), 16)
    text = apply_stop(text, PLAIN_STOPS)
    if len(text) < 3:
        pytest.skip("the random model stopped too early to test a stop string")
    stop = text[2:4]
    out = llm.complete("hi", max_tokens=16, stop=[stop])
    assert out.text == text[: text.find(stop)]
    assert out.finish_reason == "stop"


def test_seeded_sampling_is_reproducible_and_leaves_global_rng(llm: TransformersLLM) -> None:
    state = torch.get_rng_state()
    a = llm.complete("hi", temperature=1.5, max_tokens=6, seed=7)
    b = llm.complete("hi", temperature=1.5, max_tokens=6, seed=7)
    assert a.text == b.text
    assert torch.equal(torch.get_rng_state(), state)
    texts = {llm.complete("hi", temperature=1.5, max_tokens=6, seed=s).text for s in range(5)}
    assert len(texts) > 1  # the seed matters


def test_chat_template_is_used_when_present(model_dir: Path) -> None:
    tok = build_tokenizer()
    tok.chat_template = TEMPLATE
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
    llm = TransformersLLM(model, tokenizer=tok, model_name="tiny-chat")
    messages = [{"role": "system", "content": "be nice"}, {"role": "user", "content": "hi"}]
    assert llm.render(messages) == "<system>be nice\n<user>hi\n<assistant>"
    out = llm.complete(messages, max_tokens=4)
    assert out.model == "tiny-chat"
    assert out.prompt_tokens == len(tok(llm.render(messages))["input_ids"])


def test_load_llm_hf_spec_and_missing_path(model_dir: Path, tmp_path: Path) -> None:
    llm = load_llm(f"hf:{model_dir}")
    assert isinstance(llm, TransformersLLM) and llm.model == str(model_dir)
    with pytest.raises(NotFound):
        TransformersLLM(tmp_path / "nope")
    with pytest.raises(TypeError):
        TransformersLLM(llm.hf_model)  # a model object needs its tokenizer
