"""Workspace validation: what is repaired (and recorded), what is rejected (with a reason)."""

from __future__ import annotations

import pytest

from memkit.backends.panini.gsw import RawWorkspace, WorkspaceRejected, normalize


def ws(entities: list, phrases: list) -> RawWorkspace:
    return RawWorkspace.model_validate({"entities": entities, "verb_phrases": phrases})


E = [{"id": "e1", "name": "Alice", "roles": [{"role": "person", "states": ["chemist"]}]},
     {"id": "e2", "name": "Paris", "roles": ["city"]}]


def test_well_formed_workspace_passes_unchanged() -> None:
    w, repairs = normalize(ws(E, [{"id": "v1", "phrase": "lives in", "questions": [
        {"text": "Where does Alice live?", "answers": ["e2"]},
        {"text": "Who lives in Paris?", "answers": ["e1"]}]}]), title="Alice")
    assert repairs == []
    assert w.qa_count() == 2
    assert w.entity("e1").search_text() == "Alice — roles: person: chemist"
    assert w.entity("e2").roles[0].role == "city"


def test_paper_key_names_and_literal_and_none_answers() -> None:
    raw = RawWorkspace.model_validate({
        "entity_nodes": E, "verb_phrase_nodes": [{"id": "v1", "phrase": "born", "questions": [
            {"text": "When was Alice born?", "answers": ["TEXT:1990"]},
            {"text": "Who was born in 1990 in Paris?", "answers": ["e1"]},
            {"text": "Where did Alice study?", "answers": ["None"]}]},
            {"id": "v2", "phrase": "in", "questions": [
                {"text": "Where was Alice born?", "answers": ["e2"]}]}]})
    w, repairs = normalize(raw)
    qs = w.verb_phrases[0].questions
    assert qs[0].answers[0].text == "1990" and qs[2].answers == []
    assert w.qa_count() == 3
    assert "phrase 'v1' has 3 question(s), expected 2" in repairs
    assert "phrase 'v2' has 1 question(s), expected 2" in repairs


def test_unknown_ids_dropped_names_mapped_unconnected_entities_dropped() -> None:
    raw = ws(E + [{"id": "e3", "name": "Bob"}], [{"id": "v1", "phrase": "lives in", "questions": [
        {"text": "Where does Alice live?", "answers": ["e2", "e9"]},
        {"text": "Who lives in Paris?", "answers": ["alice"]}]}])
    w, repairs = normalize(raw, title="Alice in Paris")
    assert [e.name for e in w.entities] == ["Alice", "Paris"]
    assert "unknown entity id 'e9' in 'Where does Alice live?' dropped" in repairs
    assert "answer 'alice' given by name, mapped to e1" in repairs
    assert "entity 'e3' ('Bob') is in no QA pair, dropped" in repairs
    assert "title 'Alice in Paris' is not among the entities" in repairs


def test_rejects_when_most_references_are_unknown() -> None:
    with pytest.raises(WorkspaceRejected, match="2 of 3 answer references"):
        normalize(ws(E, [{"phrase": "x", "questions": [
            {"text": "a?", "answers": ["e7"]}, {"text": "b?", "answers": ["e8"]},
            {"text": "c?", "answers": ["e1"]}]}]))


def test_rejects_ambiguous_ids_and_empty_workspaces() -> None:
    with pytest.raises(WorkspaceRejected, match="names both"):
        normalize(ws(E + [{"id": "e1", "name": "Carol"}], []))
    with pytest.raises(WorkspaceRejected, match="no answered question"):
        normalize(ws(E, [{"phrase": "x", "questions": [{"text": "a?", "answers": ["None"]}]}]))
    with pytest.raises(WorkspaceRejected, match="no answered question"):
        normalize(ws([], []))


def test_repeated_id_with_same_name_is_merged() -> None:
    raw = ws(E + [{"id": "e1", "name": "alice", "roles": [{"role": "author"}]}],
             [{"phrase": "p", "questions": [{"text": "Who?", "answers": ["e1"]},
                                            {"text": "Where?", "answers": ["e2"]}]}])
    w, repairs = normalize(raw)
    assert [r.role for r in w.entity("e1").roles] == ["person", "author"]
    assert "entity id 'e1' repeated, merged" in repairs
