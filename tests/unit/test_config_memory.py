"""What the config models hold per tag, and that sharing their field-name sets changes nothing.

The memory figures are tracemalloc byte counts of validating the same input, which
do not depend on the machine's speed or load: a budget, not a benchmark.
"""

from __future__ import annotations

import copy
import gc
import json
import pickle
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import edge_agent.config.base as base
from edge_agent.config import ModbusDeviceConfig, ModbusTag, PlantConfig, TagCatalog
from edge_agent.config.base import FROM_YAML, SharedFieldNames
from edge_agent.config.loader import load_config
from tests.plant import CONFIG_FILE

ROOT = Path(__file__).resolve().parents[2]
PLANT_FILES = [CONFIG_FILE, ROOT / "configs" / "opcua-example.yaml"]


def _tags(count: int) -> list[dict[str, Any]]:
    """Tags as a plant file gives them: five keys each, the common case of a scaled value."""
    return [
        {"name": f"t{i:05d}", "table": "holding", "address": i, "type": "int16", "scale": 0.1}
        for i in range(count)
    ]


def _device(tags: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": "press",
        "driver": "modbus",
        "connection": {"transport": "tcp", "host": "127.0.0.1"},
        "poll_groups": [{"name": "fast", "interval": "1s", "tags": tags}],
    }


def _traced_bytes_per_tag(count: int) -> float:
    data = _device(_tags(count))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        device = ModbusDeviceConfig.model_validate(data, context=FROM_YAML)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(device.poll_groups[0].tags) == count
    return (after - before) / count


def test_a_modbus_tag_model_holds_under_700_bytes() -> None:
    # A tag model is an object and its __dict__ (14 fields, ~545 bytes) plus what is not
    # shared (the address as an int). Each used to keep its own set of the five names
    # it was given, 728 bytes more: ~1,300 bytes a tag, 130 MB at 100,000 tags.
    assert _traced_bytes_per_tag(2000) < 700


def test_tags_given_the_same_keys_share_one_read_only_set() -> None:
    device = ModbusDeviceConfig.model_validate(_device(_tags(3)), context=FROM_YAML)
    first, second, third = device.poll_groups[0].tags
    assert first.model_fields_set is second.model_fields_set is third.model_fields_set
    assert first.model_fields_set == {"name", "table", "address", "type", "scale"}
    plain = ModbusTag(name="x", address=1)
    assert plain.model_fields_set == {"name", "address"}
    assert plain.model_fields_set is not first.model_fields_set
    with pytest.raises(TypeError, match="shared by many config models"):
        first.model_fields_set.add("unit")
    with pytest.raises(TypeError, match="shared by many config models"):
        first.model_fields_set |= {"unit"}
    assert second.model_fields_set == {"name", "table", "address", "type", "scale"}


def test_copies_get_a_set_of_their_own() -> None:
    device = ModbusDeviceConfig.model_validate(_device(_tags(2)), context=FROM_YAML)
    tag, other = device.poll_groups[0].tags
    changed = tag.model_copy(update={"unit": "kW"})
    assert changed.unit == "kW"
    assert changed.model_fields_set == {"name", "table", "address", "type", "scale", "unit"}
    assert tag.model_fields_set == other.model_fields_set == changed.model_fields_set - {"unit"}
    assert changed.model_dump(exclude_unset=True)["unit"] == "kW"
    for twin in (
        tag.model_copy(),
        tag.model_copy(deep=True),
        copy.copy(tag),
        copy.deepcopy(tag),
        pickle.loads(pickle.dumps(tag)),
    ):
        assert twin == tag
        assert twin.model_fields_set == tag.model_fields_set
        assert type(twin.model_fields_set) is set
        assert twin.model_dump(exclude_unset=True) == tag.model_dump(exclude_unset=True)


def _every_model(value: object) -> Iterator[BaseModel]:
    if isinstance(value, BaseModel):
        yield value
        for name in type(value).model_fields:
            yield from _every_model(getattr(value, name))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _every_model(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _every_model(item)


@pytest.mark.parametrize("path", PLANT_FILES, ids=lambda p: p.name)
def test_the_plant_files_load_as_they_did_without_sharing(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"OPCUA_PASSWORD": "secret"}
    shared = load_config(path, env)
    monkeypatch.setattr(base, "share_field_names", lambda names: names)
    own = load_config(path, env)
    assert type(own.devices[0].model_fields_set) is set
    assert shared == own
    for mode in ("python", "json"):
        assert shared.model_dump(mode=mode) == own.model_dump(mode=mode)
        assert shared.model_dump(mode=mode, exclude_unset=True) == own.model_dump(
            mode=mode, exclude_unset=True
        )
    pairs = list(zip(_every_model(shared), _every_model(own), strict=True))
    assert len(pairs) > 20
    for one, other in pairs:
        assert one.model_fields_set == other.model_fields_set
    # Every model validated from the file shares; a default pydantic deep-copies into a
    # model (a section the file leaves out) has a plain set of its own, as before.
    validated = [m for m in _every_model(shared) if m.model_fields_set]
    assert all(isinstance(m.model_fields_set, SharedFieldNames) for m in validated)
    # A reload compares the running config with the file's: an unchanged file is equal.
    assert load_config(path, env) == shared


def test_a_constructed_model_shares_too() -> None:
    plant = PlantConfig.model_validate(
        {"plant": {"name": "p"}, "devices": [_device(_tags(1))]}, context=FROM_YAML
    )
    constructed = type(plant.plant).model_construct(name="p")
    assert constructed.model_fields_set == {"name"}
    assert constructed.model_fields_set is plant.plant.model_fields_set


def test_the_catalog_holds_under_260_bytes_a_modbus_tag() -> None:
    # A TagInfo (128 bytes) and its place in the device's dict by name; its address used
    # to be a dict of two or three keys (200 bytes), now a mapping of three slots.
    count = 2000
    device = ModbusDeviceConfig.model_validate(_device(_tags(count)), context=FROM_YAML)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        catalog = TagCatalog.of([device])
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(catalog.devices["press"].tags) == count
    assert (after - before) / count < 260


def test_a_register_address_reads_as_the_dict_it_replaces() -> None:
    bit = ModbusTag(name="door", table="holding", address=7, type="bool", bit=3).where()
    word = ModbusTag(name="power", table="input", address=40, type="float32").where()
    assert bit == {"table": "holding", "address": 7, "bit": 3}
    assert {"table": "input", "address": 40} == word  # noqa: SIM300 - dict on the left on purpose
    assert word != {"table": "input", "address": 40, "bit": 0}
    assert dict(bit) == {"table": "holding", "address": 7, "bit": 3}
    assert list(word) == ["table", "address"]
    assert (len(bit), len(word), word.get("bit"), "bit" in word) == (3, 2, None, False)
    assert json.dumps(dict(bit)) == '{"table": "holding", "address": 7, "bit": 3}'
    assert repr(word) == "{'table': 'input', 'address': 40}"
    with pytest.raises(KeyError):
        word["bit"]


def test_the_meta_message_carries_the_address_as_before() -> None:
    from edge_agent.sinks.meta import encode_meta

    device = ModbusDeviceConfig.model_validate(
        _device([{"name": "door", "table": "holding", "address": 7, "type": "bool", "bit": 3}]),
        context=FROM_YAML,
    )
    plant = PlantConfig.model_validate(
        {"plant": {"name": "p"}, "devices": [_device(_tags(1))]}, context=FROM_YAML
    )
    payload = encode_meta(device.describe(), plant.plant)
    assert b'"address":{"table":"holding","address":7,"bit":3}' in payload


def test_a_device_is_described_once_and_its_description_goes_with_it() -> None:
    from edge_agent.config import catalog

    data = _device(_tags(3))
    device = ModbusDeviceConfig.model_validate(data, context=FROM_YAML)
    first = TagCatalog.of([device]).devices["press"]
    assert device.describe() is first  # the checks, sinks, metrics, writes share it
    twin = ModbusDeviceConfig.model_validate(data, context=FROM_YAML)
    assert twin == device
    assert twin.describe() is not first
    assert twin.describe() == first
    key = id(device)
    assert key in catalog._DESCRIBED
    del device, first
    gc.collect()
    assert key not in catalog._DESCRIBED
