"""Benchmark metrics as pure functions.

Retrieval is scored on evidence *keys*: a ranked list gives, per retrieved item, the set of
keys it covers (one, or several for merged duplicates).

>>> recall_at_k([["a"], ["x"], ["b"]], {"a", "b"}, 2)
0.5
>>> exact_match("The Eiffel Tower!", ["eiffel tower"])
1.0
>>> round(token_f1("Paris, France", ["Paris"]), 3)
0.667
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def _covered(ranked: Sequence[Iterable[str]], gold: set[str], k: int) -> set[str]:
    found: set[str] = set()
    for keys in ranked[:k]:
        found.update(key for key in keys if key in gold)
    return found


def recall_at_k(ranked: Sequence[Iterable[str]], gold: Iterable[str], k: int) -> float | None:
    """Fraction of gold keys covered by the top ``k`` items; None when there is no gold."""
    gold_set = set(gold)
    if not gold_set:
        return None
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    return len(_covered(ranked, gold_set, k)) / len(gold_set)


def hit_at_k(ranked: Sequence[Iterable[str]], gold: Iterable[str], k: int) -> float | None:
    """1.0 if any gold key is in the top ``k`` (None when there is no gold)."""
    gold_set = set(gold)
    if not gold_set:
        return None
    return 1.0 if _covered(ranked, gold_set, k) else 0.0


def ndcg_at_k(ranked: Sequence[Iterable[str]], gold: Iterable[str], k: int) -> float | None:
    """Binary-relevance NDCG@k: an item's gain is the number of gold keys it covers that no
    higher-ranked item covered (1 for ordinary items; more only for merged duplicates); the
    ideal ranking puts min(|gold|, k) relevant items first; the result is capped at 1."""
    gold_set = set(gold)
    if not gold_set:
        return None
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    seen: set[str] = set()
    dcg = 0.0
    for rank, keys in enumerate(ranked[:k], start=1):
        new = {key for key in keys if key in gold_set} - seen
        if new:
            dcg += len(new) / math.log2(rank + 1)
            seen |= new
    ideal = sum(1.0 / math.log2(r + 1) for r in range(1, min(len(gold_set), k) + 1))
    return min(1.0, dcg / ideal)


# ---- answers (SQuAD v1.1 evaluation script normalisation) -------------------------------------
def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation, drop articles (a/an/the), collapse whitespace.

    >>> normalize_answer("  The  Cat's   hat! ")
    'cats hat'
    """
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _em(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def _f1(prediction: str, gold: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:  # SQuAD v2: two empty answers agree
        return float(pred_tokens == gold_tokens)
    common = Counter(pred_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, golds: str | Sequence[str]) -> float:
    """Max over gold answers (aliases; one string is one answer) of normalised exact match;
    0 with no gold."""
    if isinstance(golds, str):
        golds = [golds]
    return max((_em(prediction, g) for g in golds), default=0.0)


def token_f1(prediction: str, golds: str | Sequence[str]) -> float:
    """Max over gold answers (aliases; one string is one answer) of SQuAD token F1; 0 with
    no gold. The one F1 of memkit: eval and the MemSifter reward both use it.

    >>> token_f1("The cat sat", "a cat sat down"), token_f1("the", ["the"])
    (0.8, 1.0)
    """
    if isinstance(golds, str):
        golds = [golds]
    return max((_f1(prediction, g) for g in golds), default=0.0)


def abstention_scores(predicted: Sequence[bool],
                      expected: Sequence[bool]) -> dict[str, float | None]:
    """Precision and recall of abstaining: precision = share of the model's abstentions that
    were right; recall = share of should-abstain questions where it abstained (None when the
    denominator is zero)."""
    if len(predicted) != len(expected):
        raise ValueError("predicted and expected differ in length")
    tp = sum(1 for p, e in zip(predicted, expected, strict=True) if p and e)
    n_pred = sum(1 for p in predicted if p)
    n_exp = sum(1 for e in expected if e)
    precision = tp / n_pred if n_pred else None
    recall = tp / n_exp if n_exp else None
    f1 = None
    if precision is not None and recall is not None and precision + recall > 0:
        f1 = 2 * precision * recall / (precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1,
            "predicted": float(n_pred), "expected": float(n_exp)}


# ---- aggregation ------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) with linear interpolation between order statistics
    (numpy's default); None for no values.

    >>> percentile([1, 2, 3, 4], 50), percentile([10, 20], 95)
    (2.5, 19.5)
    """
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in [0, 100], got {q}")
    ordered = sorted(float(v) for v in values)
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def mean(values: Iterable[float | None]) -> float | None:
    """Mean of the non-None values (None if there are none)."""
    vals = [float(v) for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None
