"""One YAML scalar as a Python value: what PyYAML's safe loader would make of it, the
text of a boolean not written true/false, and ``${VAR}`` / ``${VAR:-default}``
expanded from the environment.

What cannot be read (``!!int abc``, an unknown tag) or expanded (an unset variable) is
a problem, reported as (line, ``path: message``) with the path; the value's path is
then remembered in :attr:`Scalars.reported`, so that a validation error at the same
place does not repeat it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import Any

import yaml

from edge_agent.config.checks.common import Loc, format_path, short_repr

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
MERGE_TAG = "tag:yaml.org,2002:merge"
_YAML_TAG = "tag:yaml.org,2002:"
_STR_TAG = _YAML_TAG + "str"
_PLAIN_TYPES = {_YAML_TAG + name for name in ("bool", "int", "float")}
#: Constructors of the scalars a plant file is made of besides strings; each reads
#: only its node, so they can be called directly.
_PLAIN_CONSTRUCTORS = {
    tag: yaml.SafeLoader.yaml_constructors[tag] for tag in (*_PLAIN_TYPES, _YAML_TAG + "null")
}
#: Marks a key or value that could not be read (already reported).
UNREADABLE = object()
#: Marks a scalar :meth:`Scalars.plain` leaves to the full reading.
SLOW = object()
_NUMBERS = {_YAML_TAG + name for name in ("int", "float", "null")}
#: Plain scalars whose tag is remembered: a plant file repeats a few hundred words
#: (holding, float32, 1s) a hundred thousand times.
_RESOLVED_CACHE = 4096


class Scalars:
    """Reads scalars for one document; collects its problems and boolean words."""

    def __init__(self, env: Mapping[str, str] | None) -> None:
        """``env`` None: the document reads no environment (a template), and says so."""
        self.env = env
        self.problems: list[tuple[int, str]] = []
        #: Paths (as written, see :meth:`SourceMap.written_at`) of values whose problem
        #: is already reported (an unset variable, an unreadable scalar): a validation
        #: error there would only repeat it.
        self.reported: set[Loc] = set()
        #: Path -> the text of a value YAML read as a boolean though not written
        #: true/false (``off``, ``yes``): where a string was meant, the error says to quote it.
        self.bool_words: dict[Loc, str] = {}
        self._constructor = yaml.SafeLoader("")
        self._tags: dict[str, str] = {}
        #: Plain numbers already read (addresses, scales), by their text.
        self._numbers: dict[str, Any] = {}

    def tag(self, event: yaml.ScalarEvent) -> str:
        """The scalar's tag: as written, else as YAML resolves it."""
        tag = event.tag
        if tag is not None and tag != "!":
            return tag
        text = event.value
        if event.implicit[0]:  # plain: resolved by its text; remembered
            known = self._tags.get(text)
            if known is not None:
                return known
        # types-PyYAML leaves resolve() unannotated.
        tag = self._constructor.resolve(yaml.ScalarNode, text, event.implicit)  # type: ignore[no-untyped-call]
        if event.implicit[0] and len(self._tags) < _RESOLVED_CACHE:
            self._tags[text] = tag
        return str(tag)

    def plain(self, event: yaml.ScalarEvent) -> Any:
        """What :meth:`value` gives for an untagged string or number without ``${``,
        the everyday scalar of a plant file, without a path; :data:`SLOW` for any other."""
        if event.tag is not None:
            return SLOW
        text = event.value
        if not event.implicit[0]:  # quoted, or a block: a string
            return SLOW if "${" in text else sys.intern(text)
        tag = self._tags.get(text) or self.tag(event)
        if tag == _STR_TAG:
            return SLOW if "${" in text else sys.intern(text)
        if tag in _NUMBERS:
            number = self._numbers.get(text, SLOW)
            if number is not SLOW:
                return number
            try:
                number = _PLAIN_CONSTRUCTORS[tag](self._constructor, yaml.ScalarNode(tag, text))
            except ValueError:
                return SLOW
            if len(self._numbers) < _RESOLVED_CACHE:
                self._numbers[text] = number
            return number
        return SLOW  # a boolean (its word is remembered), a timestamp...

    def plain_key(self, event: yaml.ScalarEvent) -> Any:
        """:meth:`plain` for a key: a string key; :data:`SLOW` for any other."""
        if event.tag is not None:
            return SLOW
        text = event.value
        if event.implicit[0] and (self._tags.get(text) or self.tag(event)) != _STR_TAG:
            return SLOW
        return sys.intern(text)

    def value(self, event: yaml.ScalarEvent, line: int, path: Loc) -> Any:
        """The value of a scalar written as a value (not a key) at ``path``."""
        text = event.value
        value = self.key(text, self.tag(event), line, path)
        if value is UNREADABLE:
            self.reported.add(path)
            return None
        if type(value) is bool and text.lower() not in ("true", "false"):
            self.bool_words[path] = text
        if isinstance(value, str) and "${" in value:
            expanded = self._expand(value, line, path)
            if not event.style and _ENV_REF.fullmatch(value):  # plain: None, or '' (libyaml)
                # A plain `qos: ${QOS:-1}` means what `qos: 1` would: resolve the type
                # the way YAML resolves a plain scalar. Quote it to keep a string.
                return self._plain_scalar(expanded)
            return expanded
        return value

    def key(self, text: str, tag: str, line: int, path: Loc) -> Any:
        """The value of scalar ``text`` tagged ``tag``; :data:`UNREADABLE` (reported)
        when it cannot be read. Strings are interned: tag names, types and tables
        repeat thousands of times."""
        if tag == _STR_TAG:  # most of a plant file: no constructor needed
            return sys.intern(text)
        plain = _PLAIN_CONSTRUCTORS.get(tag)
        node = yaml.ScalarNode(tag, text)
        try:
            if plain is not None:  # int, float, bool, null: they read only their node
                return plain(self._constructor, node)
            value = self._construct(node)
        except yaml.constructor.ConstructorError as exc:
            self._unreadable(tag, line, path, exc.problem or "cannot be read")
            return UNREADABLE
        except (ValueError, AttributeError):
            # ValueError: int() of `!!int abc`, or of a number past Python's 4,300 digits.
            # AttributeError: PyYAML's timestamp constructor on a `!!timestamp` that is
            # not a date (it uses the failed match).
            self._unreadable(tag, line, path, f"{short_repr(text)} cannot be read as {_tag(tag)}")
            return UNREADABLE
        if type(value) is str:
            value = sys.intern(value)
        return value

    def _construct(self, node: yaml.ScalarNode) -> Any:
        """What PyYAML makes of ``node`` (a timestamp, !!binary bytes...), forgetting it."""
        constructor = self._constructor
        try:
            return constructor.construct_object(node, deep=True)
        finally:
            constructor.constructed_objects.clear()
            constructor.recursive_objects.clear()  # left behind by a constructor that raised

    def _unreadable(self, tag: str, line: int, path: Loc, problem: str) -> None:
        if problem.startswith("could not determine a constructor for the tag"):
            problem = f"unknown tag {_tag(tag)!r}"
        self.problems.append((line, f"{format_path(path)}: {problem}"))

    def _plain_scalar(self, text: str) -> Any:
        """``"1"`` -> 1, ``"true"`` -> True, ``"1.5"`` -> 1.5; anything else stays the string.

        Resolved as YAML resolves a plain scalar, without parsing ``text`` as YAML (it
        comes from the environment and may hold anything).
        """
        stripped = text.strip()
        # types-PyYAML leaves resolve() unannotated.
        tag = self._constructor.resolve(yaml.ScalarNode, stripped, (True, False))  # type: ignore[no-untyped-call]
        if not stripped or tag not in _PLAIN_TYPES:
            return text
        try:
            return _PLAIN_CONSTRUCTORS[tag](self._constructor, yaml.ScalarNode(tag, stripped))
        except ValueError:  # a number past Python's 4,300 digits: the string it is
            return text

    def _expand(self, text: str, line: int, path: Loc) -> str:
        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if self.env is None:
                self.reported.add(path)
                self.problems.append(
                    (
                        line,
                        f"{format_path(path)}: a template does not read environment variables "
                        f"(${{{name}}}); write the value itself, the same for every device",
                    )
                )
                return ""
            value = self.env.get(name)
            if value is None or (value == "" and default is not None):
                if default is not None:
                    return default
                self.reported.add(path)
                self.problems.append(
                    (
                        line,
                        f"{format_path(path)}: environment variable {name} is not set "
                        f"(write ${{{name}:-default}} to give a default)",
                    )
                )
                return ""
            return value

        return _ENV_REF.sub(substitute, text)


def _tag(tag: str) -> str:
    """``tag:yaml.org,2002:int`` -> ``int``; a local tag stays as written (``!thing``)."""
    return tag[len(_YAML_TAG) :] if tag.startswith(_YAML_TAG) else tag
