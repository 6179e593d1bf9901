"""OPC UA node address grammar, and OPC UA devices in `edge-agent check`."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.config.loader import parse_config
from edge_agent.config.opcua import BrowsePathRef, NodeIdRef, parse_node_address
from edge_agent.summary import render_summary


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("i=2258", NodeIdRef("i", 2258)),
        ("ns=2;s=Line1.Press.Power", NodeIdRef("s", "Line1.Press.Power", 2)),
        ("ns=2;s=a;b=c", NodeIdRef("s", "a;b=c", 2)),  # everything after s= is the name
        (
            "ns=1;g=09087e75-8e5e-499b-954f-f2a9603db28a",
            NodeIdRef("g", uuid.UUID("09087e75-8e5e-499b-954f-f2a9603db28a"), 1),
        ),
        ("ns=3;b=AQL/", NodeIdRef("b", b"\x01\x02\xff", 3)),
        ("nsu=urn:acme:press;s=Power", NodeIdRef("s", "Power", 0, "urn:acme:press")),
        ("nsu=http://x.org/UA/;i=5", NodeIdRef("i", 5, 0, "http://x.org/UA/")),
        (
            "/Objects/2:Machine/2:SpindlePower",
            BrowsePathRef(((0, "Objects"), (2, "Machine"), (2, "SpindlePower"))),
        ),
        ("/Objects/3:A&/B/3:x&:y&&z", BrowsePathRef(((0, "Objects"), (3, "A/B"), (3, "x:y&z")))),
    ],
)
def test_node_addresses_parse(text: str, want: object) -> None:
    assert parse_node_address(text) == want


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        (" ns=2;s=x", "spaces"),
        ("ns=2;i=x", "i= takes a number"),
        ("i=4294967296", "i= takes a number"),
        ("ns=70000;i=1", "above 65535"),
        ("ns=x;i=1", "ns= takes a namespace index"),
        ("ns=2;s=", "s= needs a string"),
        ("ns=2;g=123", "g= takes a GUID"),
        ("ns=2;b=***", "b= takes base64"),
        ("nsu=urn:x", "nsu= needs a namespace URI and ';'"),
        ("Machine.Power", "is not a node address"),
        ("/Objects//2:M", "empty element"),
        ("/Objects/2:", "no browse name"),
        ("/Objects/a&b", "'&' escapes only"),
    ],
)
def test_bad_node_addresses_say_why(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_node_address(text)


# Any text (names with "/", ":" or "&" get escaped), but not padded with spaces: a
# padded node address is taken for a copy-paste slip and refused.
_names = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12
).filter(lambda s: s == s.strip())


@given(st.lists(st.tuples(st.integers(0, 65535), _names), min_size=1, max_size=5))
def test_browse_paths_survive_their_text_form(elements: list[tuple[int, str]]) -> None:
    path = BrowsePathRef(tuple(elements))
    assert parse_node_address(path.text()) == path


@given(st.integers(0, 65535), _names)
def test_string_node_ids_survive_their_text_form(ns: int, name: str) -> None:
    ref = NodeIdRef("s", name, ns)
    assert parse_node_address(ref.text()) == ref


def test_check_summarises_an_opcua_device(tmp_path: Path) -> None:
    config = parse_config(
        f"""
plant: {{name: hall-2}}
state_dir: {tmp_path}
devices:
  - name: cnc-7
    driver: opcua
    endpoint: opc.tcp://10.0.0.7:4840
    security: {{policy: Basic256Sha256, mode: SignAndEncrypt}}
    identity: {{type: username, username: edge, password: "${{PW}}"}}
    poll_groups:
      - name: fast
        interval: 1s
        tags: [{{name: power, node: "ns=2;s=Power"}}]
      - name: events
        mode: subscribe
        interval: 500ms
        sampling_interval: 100ms
        queue_size: 10
        deadband: {{type: absolute, value: 0.5}}
        tags:
          - {{name: state, node: "nsu=urn:acme;s=State"}}
          - {{name: alarm, node: "/Objects/2:M/2:A"}}
""",
        env={"PW": "x"},
    )
    summary = render_summary(config, "plant.yaml")
    assert (
        "device cnc-7: opcua opc.tcp://10.0.0.7:4840 (Basic256Sha256/SignAndEncrypt, username), "
        "3 tags, timeout 5s, source timestamps"
    ) in summary
    assert "  group fast: bulk read every 1s, 1 tag" in summary
    assert (
        "  group events: subscription, publishing every 0.5s, sampling 0.1s, queue 10, 2 tags"
        in summary
    )
    assert "total: 1 device, 3 tags, 1 reads/s" in summary
    assert "password" not in repr(config.devices[0])


def test_check_warns_about_arrays_allowed_to_flood_a_read(tmp_path: Path) -> None:
    tags = "\n".join(
        f"          - {{name: s{k}, node: 'ns=2;s=Spectrum{k}', max_array_length: 51200}}"
        for k in range(12)
    )
    config = parse_config(
        f"""
plant: {{name: hall-2}}
state_dir: {tmp_path}
devices:
  - name: vib-1
    driver: opcua
    endpoint: opc.tcp://10.0.0.9:4840
    poll_groups:
      - name: spectra
        interval: 10s
        tags:
{tags}
      - name: phases
        interval: 1s
        tags: [{{name: volts, node: "ns=2;s=Volts"}}]
""",
        env={},
    )
    summary = render_summary(config, "plant.yaml")
    assert "arrays up to 1000 elements" in summary
    warnings = [line for line in summary.splitlines() if "warning" in line]
    assert warnings == [
        "  warning: group spectra: max_array_length lets 12 tags (s0, s1, s2, ...) carry up "
        "to 614,400 samples per read, every one in the sinks' messages and the outbox"
    ]
