"""The persisted bdSeq: stored before it is used, never repeated after a restart or a
kill -9, 0..255 wrapping
[tck-id-message-flow-edge-node-birth-publish-will-message-payload-bdSeq]."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.sinks.sparkplug.bdseq import BdSeqStore, bdseq_path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_the_first_session_is_0_and_each_next_one_the_next(tmp_path: Path) -> None:
    store = BdSeqStore(bdseq_path(tmp_path, "scada"))
    assert [store.advance() for _ in range(3)] == [0, 1, 2]
    assert store.current == 2


def test_the_value_is_on_disk_when_advance_returns(tmp_path: Path) -> None:
    path = bdseq_path(tmp_path / "state", "scada")  # the directory is made
    value = BdSeqStore(path).advance()
    assert json.loads(path.read_text()) == {"bdSeq": value}


def test_a_new_store_continues_after_the_stored_value(tmp_path: Path) -> None:
    path = bdseq_path(tmp_path, "scada")
    first = BdSeqStore(path)
    first.advance()
    first.advance()
    assert BdSeqStore(path).advance() == 2


def test_255_wraps_to_0(tmp_path: Path) -> None:
    path = bdseq_path(tmp_path, "scada")
    path.write_text('{"bdSeq": 254}')
    store = BdSeqStore(path)
    assert [store.advance(), store.advance(), store.advance()] == [255, 0, 1]


@pytest.mark.parametrize("text", ["", "{", '{"bdSeq": "7"}', '{"bdSeq": 300}', "[]"])
def test_an_unreadable_file_starts_again_at_0(tmp_path: Path, text: str) -> None:
    path = bdseq_path(tmp_path, "scada")
    path.write_text(text)
    assert BdSeqStore(path).advance() == 0


def test_a_file_that_cannot_be_written_fails_before_any_connect(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(NotADirectoryError):
        BdSeqStore(bdseq_path(blocker, "scada")).advance()


def test_a_process_killed_with_sigkill_never_has_its_value_handed_out_again(
    tmp_path: Path,
) -> None:
    path = bdseq_path(tmp_path, "scada")
    path.write_text('{"bdSeq": 41}')
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from edge_agent.sinks.sparkplug.bdseq import BdSeqStore\n"
        f"print(BdSeqStore(Path({str(path)!r})).advance(), flush=True)\n"
        "time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    try:
        assert child.stdout is not None
        used = int(child.stdout.readline())
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert used == 42
    assert BdSeqStore(path).advance() == 43
