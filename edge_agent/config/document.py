"""A plant (or template) file's YAML as plain data, in one pass over libyaml's events.

Each event is measured (:class:`~edge_agent.config.reading.ShapeScan`: limits,
anchors, aliases, lists as keys) and then built (:class:`~edge_agent.config.builder.
Builder`), so a file is parsed once and no node tree is ever made. A limit or alias
fault still stops the pass at its event, before the data grows past it. For a
100,000-tag plant this is 1.9 s and 60 MB where the scan, ``yaml.compose`` and a
builder over the node tree took 4.1 s and 490 MB.

Aliases and merges that build values again (``<<: *list``) may build no more than the
file holds so far plus :data:`_AGAIN`: past that, the rest of the file is only
measured, and built in a second pass once it is known to be within the limits. A
file of a few hundred bytes that stands for millions of values (a "merge bomb") is
so refused after one pass and little building, as the scan alone refused it before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from edge_agent.config.builder import Builder, Overbuilt
from edge_agent.config.checks.common import Loc
from edge_agent.config.reading import (
    DEFAULT_LIMITS,
    YAML_LOADER,
    LoadLimits,
    ShapeScan,
    yaml_problem,
)
from edge_agent.config.source_map import SourceMap
from edge_agent.errors import ConfigError

#: Events that aliases and merges may build again beyond what the file holds so far,
#: before the rest of the file is measured first (a second pass then builds it).
_AGAIN = 10_000


@dataclass
class Document:
    """What one YAML document holds, and what was found wrong in it without stopping."""

    #: The plain data: dicts, lists, scalars (None for an empty file, see ``empty``).
    data: Any
    source: SourceMap
    #: (line, ``path: message``): lists as keys first (the scan), then what the
    #: builder found (unreadable values, unset variables, duplicate keys, merge keys).
    problems: list[tuple[int, str]] = field(default_factory=list)
    #: Paths (as written) whose problem is already among ``problems``.
    reported: set[Loc] = field(default_factory=set)
    #: Path -> how a boolean not written true/false was written (``off``).
    bool_words: dict[Loc, str] = field(default_factory=dict)
    #: Values in the file, aliases counted in full (see :class:`LoadLimits`).
    values: int = 0
    #: The file holds no document at all (nothing but comments and blank lines).
    empty: bool = False


def read_document(
    text: str,
    file: str,
    env: Mapping[str, str] | None,
    limits: LoadLimits = DEFAULT_LIMITS,
) -> Document:
    """``text`` as a :class:`Document`; :class:`ConfigError` for a YAML syntax error or
    a limit or alias fault (the first one). ``env`` None: environment references are
    problems (a template file)."""
    scan = ShapeScan(file, limits)
    source = SourceMap(file)
    builder = Builder(source, env, lambda: _AGAIN + scan.total - scan.aliased)
    feed_scan, feed_builder = scan.feed, builder.feed
    scan_scalar, build_scalar = scan.scalar, builder.scalar
    scalar_event = yaml.ScalarEvent
    events = yaml.parse(text, Loader=YAML_LOADER)
    try:
        try:
            for event in events:
                if type(event) is scalar_event and event.anchor is None:
                    scan_scalar(event)
                    build_scalar(event)
                else:
                    feed_scan(event)
                    feed_builder(event)
        except Overbuilt:
            del builder, feed_builder, build_scalar  # what it built so far goes
            for event in events:  # the rest is measured first
                feed_scan(event)
            source = SourceMap(file)
            builder = Builder(source, env)
            for event in yaml.parse(text, Loader=YAML_LOADER):
                builder.feed(event)
    except yaml.YAMLError as exc:
        raise ConfigError([yaml_problem(exc, file, text)]) from None
    return Document(
        builder.data,
        source,
        scan.problems + builder.problems,
        builder.reported,
        builder.bool_words,
        scan.total,
        empty=scan.documents == 0,
    )
