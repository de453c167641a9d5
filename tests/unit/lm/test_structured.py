"""Verdicts with fixed-choice fields: JSON replies checked and re-asked, likelihood picks always valid."""

import json

import pytest

from harmdrift.backends.base import Completion
from harmdrift.backends.scripted import ScriptedBackend
from harmdrift.core.decoding import GenParams
from harmdrift.lm.structured import SCORED, UNSCORED, Field, ask_structured, json_schema, parse_verdict

FIELDS = (
    Field("drift", ("yes", "no"), "Did it drift?"),
    Field("severity", ("minor", "severe"), "How badly?", when=("drift", "yes")),
)
PARAMS = GenParams(max_new_tokens=32, temperature=0.0)
CONV = [{"role": "user", "content": "Judge this."}]


def ask(backend, n=1, **kwargs):
    return ask_structured(
        backend, [CONV] * n, FIELDS, params=PARAMS, keys=[f"k{i}" for i in range(n)], **kwargs
    )


def test_a_valid_reply_is_scored_first_time():
    backend = ScriptedBackend({"k0": '{"drift": "yes", "severity": "severe", "reason": "It adds a slur."}'})
    [reply] = ask(backend)
    assert reply.status == SCORED and reply.values == {"drift": "yes", "severity": "severe"}
    assert reply.reason == "It adds a slur." and reply.attempts == 1


def test_a_conditional_field_is_none_when_its_condition_fails():
    backend = ScriptedBackend(
        {"k0": '```json\n{"drift": "no", "severity": "extreme", "reason": "Same."}\n```'}
    )
    [reply] = ask(backend)
    assert reply.values == {"drift": "no", "severity": None}


@pytest.mark.parametrize(
    "bad, problem",
    [
        ("not json at all", "no JSON object"),
        ('{"drift": "maybe", "severity": null, "reason": "x"}', "must be one of"),
        ('{"drift": "yes", "severity": "minor"', "no JSON object"),
        ('{"drift": "no", "severity": null}', "reason"),
        ("", "empty"),
    ],
)
def test_a_bad_reply_is_re_asked_with_its_problem_named_then_recovered(bad, problem):
    good = '{"drift": "no", "severity": null, "reason": "Both are neutral."}'
    backend = ScriptedBackend({"k0": bad, "k0#reask1": good})
    [reply] = ask(backend, max_reasks=2)
    assert reply.status == SCORED and reply.values["drift"] == "no"
    assert reply.attempts == 2 and reply.raw == [bad, good]
    assert backend.calls == [["k0"], ["k0#reask1"]]


def test_the_re_ask_names_the_problem():
    seen = []

    def script(key, messages):
        seen.append(messages)
        return '{"drift": "maybe"}'

    [reply] = ask(ScriptedBackend(script), max_reasks=1)
    assert "must be one of ['yes', 'no']" in seen[1][-1]["content"]
    assert seen[1][-2] == {"role": "assistant", "content": '{"drift": "maybe"}'}
    assert reply.status == UNSCORED and reply.values is None
    assert reply.raw == ['{"drift": "maybe"}'] * 2 and "must be one of" in reply.error


def test_re_asks_are_bounded():
    backend = ScriptedBackend(lambda key, messages: "no")
    [reply] = ask(backend, max_reasks=0)
    assert reply.status == UNSCORED and reply.attempts == 1 and len(backend.calls) == 1


def test_a_transport_failure_is_unscored_with_its_error():
    backend = ScriptedBackend({"k0": Completion.failed("timeout after 60 s")})
    [reply] = ask(backend)
    assert reply.status == UNSCORED and reply.error == "timeout after 60 s" and reply.raw == []


def test_the_schema_lists_every_field_and_allows_null_only_for_conditional_ones():
    schema = json_schema(FIELDS, want_reason=True)
    assert schema["required"] == ["drift", "severity", "reason"]
    assert schema["properties"]["drift"]["enum"] == ["yes", "no"]
    assert None in schema["properties"]["severity"]["enum"]
    values, _, problem = parse_verdict(
        json.dumps({"drift": "yes", "severity": None, "reason": "r"}), FIELDS, True
    )
    assert values is None and "severity" in problem


class Chooser(ScriptedBackend):
    """A local-model stand-in: picks options by a fixed preference, writes reasons by script."""

    def __init__(self, prefer):
        super().__init__(lambda key, messages: "Because it repeats a stereotype.\nMore text.")
        self.prefer = prefer
        self.asked = []

    def choose(self, conversations, options):
        self.asked.append(list(options))
        return [next((p for p in self.prefer if p in options), options[-1]) for _ in conversations]


def test_the_likelihood_path_always_yields_allowed_values_and_skips_unneeded_fields():
    yes = Chooser(["yes", "severe"])
    [reply] = ask(yes)
    assert reply.status == SCORED and reply.values == {"drift": "yes", "severity": "severe"}
    assert reply.reason == "Because it repeats a stereotype."
    no = Chooser(["no"])
    [reply] = ask(no, n=1)
    assert reply.values == {"drift": "no", "severity": None}
    assert no.asked == [["yes", "no"]]  # severity never asked


def test_the_likelihood_path_writes_reasons_only_where_asked():
    backend = Chooser(["no"])
    replies = ask(backend, n=2, reason_when=("drift", "yes"))
    assert [r.reason for r in replies] == [None, None] and backend.calls == []


def test_fields_must_be_ordered_and_distinct():
    with pytest.raises(ValueError, match="must come before"):
        ask_structured(Chooser([]), [CONV], FIELDS[::-1], params=PARAMS, keys=["k"])
    with pytest.raises(ValueError, match="distinct options"):
        Field("x", ("a", "a"), "?")


def test_fields_with_many_options_are_chosen_by_letter_and_mapped_back():
    fields = (Field("kind", ("repeats_harm", "normalises_assumption", "omits_harm"), "Which kind?"),)
    backend = Chooser(["B"])
    [reply] = ask_structured(backend, [CONV], fields, params=PARAMS, keys=["k"], want_reason=False)
    assert backend.asked == [["A", "B", "C"]]
    assert reply.values == {"kind": "normalises_assumption"}


def test_a_local_reason_stops_after_its_first_sentence():
    from harmdrift.lm.structured import one_sentence_written

    assert not one_sentence_written("It repeats a stereotype")
    assert one_sentence_written("It repeats a stereotype. And")
    assert one_sentence_written("It repeats a stereotype\nNext")
    assert not one_sentence_written("\n  It repeats")
