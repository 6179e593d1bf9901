"""YAML syntax errors name the line to fix and say how (edge_agent/config/syntax.py)."""

from __future__ import annotations

import pytest

from edge_agent.config.loader import parse_config
from edge_agent.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plant:\n\tname: x\n", "2: YAML syntax: a tab at column 1 indents this line"),
        ("devices:\n  - name: a\n\t  driver: m\n", "3: YAML syntax: a tab at column 1"),
        ("plant:\n  name: x\n site: y\n", "3: YAML syntax: check the indentation of line 3"),
        ("plant:\n  name: x\n    site: y\n", "3: YAML syntax: check the indentation of line 3"),
        (
            "devices:\n  - name: a\n    driver: m\n   unit_id: 2\n",
            "4: YAML syntax: check the indentation of line 4",
        ),
        # libyaml notices the missing colon on the next line (or later, past comments).
        (
            "plant:\n  name x\n  site: y\n",
            "2: YAML syntax: line 2 ('name x') has no ':' after its key",
        ),
        (
            "plant:\n  name x\n\n  # a comment\n  site: y\n",
            "2: YAML syntax: line 2 ('name x') has no ':' after its key",
        ),
        ("plant:\n  name: a: b\n", "2: YAML syntax: line 2 has a second ': ' in its value"),
        ('plant:\n  name: "x\n  site: y\n', "2: YAML syntax: the quote at line 2 column 9"),
        ("plant: {name: x\nsite: y\n", "1: YAML syntax: the { at line 1 column 8 is not closed"),
    ],
)
def test_syntax_errors_name_the_line_to_fix(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, env={})
    (problem,) = caught.value.problems
    assert problem.startswith(f"plant.yaml:{expected}"), problem


def test_a_tab_after_a_value_is_no_syntax_error() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("plant:\n  name: x\t\n", env={})
    assert "YAML syntax" not in caught.value.problems[0]
