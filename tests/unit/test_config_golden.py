"""Config errors as golden cases: tests/golden/config/<case>/plant.yaml in, expected.err out.

Regenerate after an intended change of wording with
``UPDATE_GOLDEN=1 pytest tests/unit/test_config_golden.py``
and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge_agent.config.loader import load_report
from edge_agent.errors import ConfigError

GOLDEN = Path(__file__).parent.parent / "golden" / "config"
CASES = sorted(p.name for p in GOLDEN.iterdir() if p.is_dir())


def _render(case: Path) -> str:
    """Problems and warnings in line order; a valid file ends with VALID."""
    try:
        report = load_report(case / "plant.yaml", env={})
    except ConfigError as exc:
        lines = exc.report
    else:
        lines = [*report.warnings, "VALID"]
    text = "\n".join(lines).replace(str(case / "plant.yaml"), "plant.yaml")
    # A case's own templates (templates_dir) are named relative to the case.
    return text.replace(str(case) + os.sep, "") + "\n"


@pytest.mark.parametrize("case", CASES)
def test_config_error_golden(case: str) -> None:
    folder = GOLDEN / case
    actual = _render(folder)
    expected_file = folder / "expected.err"
    if os.environ.get("UPDATE_GOLDEN"):
        expected_file.write_text(actual)
    assert actual == expected_file.read_text()


def test_every_error_names_file_and_line() -> None:
    for case in CASES:
        for line in _render(GOLDEN / case).splitlines():
            if line == "VALID":
                continue
            file, number, rest = line.split(":", 2)
            assert file == "plant.yaml" or file.startswith("templates/")
            assert int(number) >= 1
            assert rest.startswith(" ")


def test_a_plain_env_reference_takes_the_type_yaml_would_give_it() -> None:
    from edge_agent.config.loader import parse_config

    text = (GOLDEN / "typo_in_type" / "plant.yaml").read_text().replace("flaot32", "float32")
    text += (
        "sinks:\n"
        "  - name: broker\n"
        "    type: mqtt\n"
        "    host: ${MQTT_HOST:-127.0.0.1}\n"
        "    qos: ${MQTT_QOS:-1}\n"
        "    client_id: '${CLIENT_ID:-007}'\n"
    )
    sink = parse_config(text, env={"MQTT_QOS": "0"}).sinks[0]
    assert sink.qos == 0
    assert sink.host == "127.0.0.1"
    assert sink.client_id == "007", "a quoted reference stays a string"
