"""Moved to :mod:`memkit.decomposition` (shared with hipporag's decomposed reads); these
names stay importable from here."""

from memkit.decomposition import (
    PLACEHOLDER,
    Decomposition,
    DecompositionModel,
    SubQuestion,
    SubQuestionModel,
    decompose_llm,
    decomposition_prompt,
    from_musique,
    musique_subquestion,
    single_hop,
    validate,
)

__all__ = ["PLACEHOLDER", "Decomposition", "DecompositionModel", "SubQuestion",
           "SubQuestionModel", "decompose_llm", "decomposition_prompt", "from_musique",
           "musique_subquestion", "single_hop", "validate"]
