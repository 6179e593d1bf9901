from __future__ import annotations

from pathlib import Path

from edge_agent.cli import render_schema

SCHEMA_FILE = Path(__file__).parent.parent.parent / "configs" / "schema.json"


def test_committed_schema_is_current() -> None:
    """configs/schema.json must match the models; regenerate with `edge-agent schema`."""
    assert SCHEMA_FILE.read_text() == render_schema(), (
        "configs/schema.json is stale: run `edge-agent schema > configs/schema.json`"
    )
