"""Memory of loading a large plant file: ``python -m bench.bench_config [--devices 20 --tags 500]``.

Generates the scale scenario's plant file (bench/plant.py, metrics section included)
and loads it with ``load_config`` in a fresh process, printing the process's RSS after
the imports, RSS after the load (what stays for the agent's life) and the peak
(``VmHWM``, what the ``peak RSS`` target counts). Loading is done once, at start and on
reload, so its cost is memory, not CPU per value.
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.plant import PlantSpec, agent_document, dump
from bench.stages import metrics_section


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _load(path: str) -> None:
    import drivers.modbus  # noqa: F401  (what the agent has imported before it loads)
    import edge_agent.service.agent  # noqa: F401
    from edge_agent.config.loader import load_config

    imports = _status_mb("VmRSS")
    started = time.perf_counter()
    config = load_config(path)
    seconds = time.perf_counter() - started
    gc.collect()
    tags = sum(len(g.tags) for d in config.devices for g in d.poll_groups)
    print(
        f"{tags:,} tags: load {seconds:.2f} s; RSS after imports {imports:.0f} MB, "
        f"after load {_status_mb('VmRSS'):.0f} MB, peak {_status_mb('VmHWM'):.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--tags", type=int, default=500)
    parser.add_argument("--load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        _load(args.load)
        return
    spec = PlantSpec(args.devices, args.tags, 1.0)
    ports = {spec.device_name(i): 10_000 + i for i in range(spec.devices)}
    sinks = [{"name": "mqtt", "type": "mqtt", "host": "127.0.0.1", "topic": "b/{device}"}]
    with tempfile.TemporaryDirectory(prefix="bench-config-") as tmp:
        path = Path(tmp) / "plant.yaml"
        document = agent_document(
            spec,
            ports,
            plant="bench",
            state_dir=tmp,
            sinks=sinks,
            extra={"metrics": metrics_section(spec)},
        )
        path.write_text(dump(document))
        subprocess.run(
            [sys.executable, "-m", "bench.bench_config", "--load", str(path)], check=True
        )


if __name__ == "__main__":
    main()
