"""parse_json_lenient: known repairs, round trips of valid JSON, and garbage rejected."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memkit.errors import LLMOutputError
from memkit.llm.jsonrepair import parse_json_lenient

CASES = [
    # (model output, expected value)
    ('{"a": 1}', {"a": 1}),
    ('```json\n{"a": 1}\n```', {"a": 1}),
    ("```\n[1, 2]\n```", [1, 2]),
    ('```JSON {"a": 1} ```', {"a": 1}),
    ('Here you go:\n```json\n{"a": [1, 2]}\n```\nLet me know!', {"a": [1, 2]}),
    ('Sure! The answer is {"city": "Paris"}. Hope this helps.', {"city": "Paris"}),
    ('Note [1]: see below. {"ok": true} (done)', {"ok": True}),
    ('{"a": [1, 2, ], "b": {"c": 3,},}', {"a": [1, 2], "b": {"c": 3}}),
    ("[1, 2,\n  ]", [1, 2]),
    ("{'name': 'Ann', 'tags': ['x', 'y']}", {"name": "Ann", "tags": ["x", "y"]}),
    ("{'quote': 'she said \"hi\"'}", {"quote": 'she said "hi"'}),
    ("{'it\\'s': 1}", {"it's": 1}),
    ('{"text": "it\'s fine"}', {"text": "it's fine"}),
    ('{"ok": True, "no": False, "nothing": None}', {"ok": True, "no": False, "nothing": None}),
    ('{"s": "True stays a string"}', {"s": "True stays a string"}),
    ('{"a": "line one\nline two"}', {"a": "line one\nline two"}),
    # truncated output (max_tokens reached)
    ('{"named_entities": ["Alice", "Bob", "Par', {"named_entities": ["Alice", "Bob", "Par"]}),
    ('{"named_entities": ["Alice", "Bob"', {"named_entities": ["Alice", "Bob"]}),
    ('{"named_entities": ["Alice", "Bob",', {"named_entities": ["Alice", "Bob"]}),
    ('{"a": 1, "b', {"a": 1}),
    ('{"a": 1, "b":', {"a": 1}),
    ('{"a": 1, "b": tr', {"a": 1}),
    ("[1, 2, 3", [1, 2, 3]),
    ("[1, 2, 3.", [1, 2]),
    ('{"a": {"b', {"a": {}}),
    ('{"a": "ends with escape \\', {"a": "ends with escape "}),
    (
        '{"triples": [["Alice", "lives in", "Paris"], ["Bob", "works at", "Ac',
        {"triples": [["Alice", "lives in", "Paris"], ["Bob", "works at", "Ac"]]},
    ),
    (
        '```json\n{"triples": [["A", "r", "B"], ["C", "s"',
        {"triples": [["A", "r", "B"], ["C", "s"]]},
    ),
    # nesting and unicode
    ('{"a": {"b": {"c": [1, {"d": [2, 3,]},]}}}', {"a": {"b": {"c": [1, {"d": [2, 3]}]}}}),
    (
        '{"名前": "東京", "emoji": "🙂", "esc": "\\u00e9"}',
        {"名前": "東京", "emoji": "🙂", "esc": "é"},
    ),
    ('Réponse : {"ville": "Zürich", "pays": "Suisse"} ✓', {"ville": "Zürich", "pays": "Suisse"}),
    ('["Ελλάδα", "Ἀθῆναι', ["Ελλάδα", "Ἀθῆναι"]),
    # scalars are accepted when the whole reply is one
    ("42", 42),
    ('"just a string"', "just a string"),
    ('```json\n"fenced"\n```', "fenced"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_known_repairs(text: str, expected: object) -> None:
    assert parse_json_lenient(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "   ", "hello world", "{garbage", "I cannot answer", "{{{", "[}", "``` ```", "[", '{"a'],
)
def test_garbage_raises_with_raw(text: str) -> None:
    with pytest.raises(LLMOutputError) as info:
        parse_json_lenient(text)
    assert info.value.raw == text


def test_first_parseable_candidate_wins() -> None:
    # the first fenced block is not JSON; the second is
    text = "```python\nprint('x')\n```\nand\n```json\n{\"v\": 2}\n```"
    assert parse_json_lenient(text) == {"v": 2}


def test_no_evaluation_of_code() -> None:
    with pytest.raises(LLMOutputError):
        parse_json_lenient("__import__('os').system('echo pwned')")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_valid_json_round_trips(value: object) -> None:
    text = json.dumps(value, ensure_ascii=False)
    assert parse_json_lenient(text) == value
    assert parse_json_lenient(f"```json\n{text}\n```") == value
    if isinstance(value, (dict, list)):
        assert parse_json_lenient(f"Here it is: {text} Done.") == value


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(alphabet="abcxyz é", max_size=6), min_size=1, max_size=6))
def test_truncated_list_keeps_a_prefix(items: list[str]) -> None:
    text = json.dumps({"items": items}, ensure_ascii=False)
    for cut in range(len('{"items": ['), len(text)):
        got = parse_json_lenient(text[:cut])
        assert list(got) == ["items"]
        recovered = got["items"]
        # every fully recovered item is an original item, in order; the last may be a prefix
        assert len(recovered) <= len(items)
        for i, item in enumerate(recovered):
            if i < len(recovered) - 1:
                assert item == items[i]
            else:
                assert items[i].startswith(item)
