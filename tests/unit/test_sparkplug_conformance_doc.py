"""docs/SPARKPLUG.md lists every assertion the conformance module checks (and no other)."""

from __future__ import annotations

import re

from tests.plant import ROOT
from tests.sparkplug_assertions import ASSERTIONS


def test_the_conformance_table_lists_every_checked_assertion() -> None:
    text = (ROOT / "docs" / "SPARKPLUG.md").read_text()
    section = text[text.index("## Conformance") :]
    listed = set(re.findall(r"`(tck-id-[A-Za-z0-9-]+)`", section))
    listed |= {
        f"tck-id-{short}" for short in re.findall(r"`((?:payloads|topics)-[a-z0-9-]+)`", section)
    }
    checked = {a.id for a in ASSERTIONS}
    assert checked - listed == set(), "checked but not in docs/SPARKPLUG.md"
    assert len({a.id for a in ASSERTIONS}) == len(ASSERTIONS), "an id listed twice"
