"""Evidence rendering: the deduplicated QA pairs of the surviving chains, one line each.

>>> from memkit.backends.panini.retrieval import AnswerRef, QACandidate
>>> p = QACandidate(1, 7, "Who directed Heat?", (AnswerRef("michael mann", "Michael Mann",
...     "person: director"),), 0.9)
>>> render_pair(p)
'Q: Who directed Heat? A: Michael Mann {person: director}'
>>> render_pair(p, roles=False)
'Q: Who directed Heat? A: Michael Mann'
"""

from __future__ import annotations

from collections.abc import Sequence

from memkit.backends.panini.chains import Chain
from memkit.backends.panini.retrieval import QACandidate

NO_EVIDENCE = "No QA chain supports an answer."


def render_pair(pair: QACandidate, roles: bool = True) -> str:
    """``Q: question A: name {role: states}, name2 ...``"""
    parts = []
    for a in pair.answers:
        parts.append(f"{a.name} {{{a.rolestate}}}" if roles and a.rolestate else a.name)
    return f"Q: {pair.question} A: {', '.join(parts)}"


def evidence_pairs(chains: Sequence[Chain]) -> list[QACandidate]:
    """The QA pairs on the chains, best chain first, each pair once (by question+answers)."""
    seen: set[tuple[str, tuple[str, ...]]] = set()
    out = []
    for c in chains:
        for s in c.steps:
            key = (s.pair.question, s.pair.answer_names)
            if key not in seen:
                seen.add(key)
                out.append(s.pair)
    return out


def render_evidence(chains: Sequence[Chain], roles: bool = True) -> str:
    """The reader's context: one line per distinct QA pair on the surviving chains."""
    pairs = evidence_pairs(chains)
    if not pairs:
        return NO_EVIDENCE
    return "\n".join(render_pair(p, roles) for p in pairs)
