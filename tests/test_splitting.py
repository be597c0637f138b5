"""Splitting answers into Discord-sized messages with code fences intact."""

from __future__ import annotations

from bot.splitting import DISCORD_MESSAGE_LIMIT, close_open_fence, open_fence, split_message


def test_short_text_is_one_message() -> None:
    assert split_message("hello") == ["hello"]
    assert split_message("   \n ") == []


def test_long_prose_splits_at_paragraphs_within_the_limit() -> None:
    paragraphs = [f"Paragraph {i}. " + "words " * 60 for i in range(20)]
    text = "\n\n".join(paragraphs)
    pieces = split_message(text)
    assert len(pieces) > 1
    assert all(len(p) <= DISCORD_MESSAGE_LIMIT for p in pieces)
    assert all(p.startswith("Paragraph") for p in pieces), "each message starts at a paragraph"
    assert "\n\n".join(pieces).split() == text.split(), "no word lost or duplicated"


def test_a_code_block_across_messages_is_closed_and_reopened_with_its_language() -> None:
    code = "\n".join(f"value_{i} = compute({i})" for i in range(300))
    text = f"Here you go:\n\n```python\n{code}\n```\n\nThat's all."
    pieces = split_message(text)
    assert len(pieces) >= 3
    for piece in pieces:
        assert len(piece) <= DISCORD_MESSAGE_LIMIT
        assert open_fence(piece) is None, "every message renders with balanced fences"
    for piece in pieces[1:-1]:
        assert piece.startswith("```python\n")
    lines = [line for p in pieces for line in p.split("\n") if line.startswith("value_")]
    assert lines == code.split("\n")


def test_a_line_without_spaces_is_hard_cut() -> None:
    pieces = split_message("x" * 4500)
    assert [len(p) for p in pieces] == [1996, 1996, 508]


def test_unbalanced_fence_from_the_model_is_closed_before_a_note() -> None:
    assert open_fence("```js\nlet a") == "js"
    assert open_fence("```js\nlet a\n```") is None
    assert open_fence("inline ```code``` only") is None
    assert close_open_fence("```\nopen") == "```\nopen\n```"
    assert close_open_fence("done") == "done"
