"""The MemSifter training lab: what it takes to *train* the proxy reranker that
``memkit.backends.sifter`` serves (``Memory.read(..., rerank="sifter")``).

- :mod:`.reward` -- the pure reward functions (format gate, DCG, marginal utility, cut-offs)
- :mod:`.working` -- the working-LLM scorer (answer F1 from a ranking's top units)
- :mod:`.data` -- LoCoMo / MuSiQue training rows (evidence -> gold units)
- :mod:`.tiny` -- a random-initialised tiny policy and its format warm-up, for CPU proofs
- :mod:`.train` -- GRPO through TRL (``[train]`` extra), resumable, with checkpoint averaging

It lives apart from ``backends/`` so that serving a trained proxy never imports training code.
"""
