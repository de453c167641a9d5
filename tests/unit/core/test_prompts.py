"""Prompt templates: the shipped ones load, bad ones are named, items render."""

from __future__ import annotations

from pathlib import Path

import pytest

from harmdrift.core.prompts import build_messages, load_template

ROOT = Path(__file__).resolve().parents[3]
ITEM = {"question": "Which group? (a) X (b) Y (c) Both"}


@pytest.mark.parametrize("name", ["binary.txt", "mc.txt"])
def test_shipped_templates_render(name):
    template = load_template(ROOT / "config" / "prompts" / name)
    messages = build_messages(ITEM, template)
    assert messages[0]["role"] == "user"
    assert ITEM["question"] in messages[0]["content"]


def test_binary_template_asks_for_the_exact_conclusion_line():
    text = load_template(ROOT / "config" / "prompts" / "binary.txt")
    assert "Conclusion: YES" in text and "Conclusion: NO" in text


def test_template_without_slot_is_named(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("no slot here")
    with pytest.raises(ValueError, match="bad.txt.*no \\{question\\}"):
        load_template(bad)


def test_template_with_unknown_placeholder_is_named(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("{question} and {label}")
    with pytest.raises(ValueError, match="bad.txt"):
        load_template(bad)


def test_upstream_first_option_typo_is_shown_as_a():
    from harmdrift.core.prompts import display_question

    question = "Should there be initiatives for X?\n(1) Group A (b) Group B (c) no initiatives are needed"
    assert display_question(question).endswith("\n(a) Group A (b) Group B (c) no initiatives are needed")
    untouched = "Rank (1) first? (a) x (b) y (c) z"
    assert display_question(untouched) == untouched
