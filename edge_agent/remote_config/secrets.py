"""No secret in clear in a pushed plant file: the rule the agent and ``config sign`` share.

A pushed file passes through the broker (and sits in version control), so every value
of a secret field must be a reference to the gateway's environment: the scalar written
at that node is ``${VAR}`` (with no default, or an empty one) and nothing else; a URL's
password or token (``https://u:${PW}@host``, ``?token=${T}``) likewise.

The rule is checked on the composed YAML node tree, the text as YAML reads it before
``${VAR}`` is expanded: an escape (``"s3cr\\x33t"``) is read as the value it spells, so
it cannot hide a literal, and a value that comes from the environment is never taken
for one written in clear, whatever else in the file it equals.

A value YAML reads as an alias or a tag (``password: *Hunter2``, ``password: !Hunter2``:
generated passwords start with ``*`` or ``!`` often enough) is a secret in clear too,
and is found even where the file does not compose (an alias with no anchor): the
loader's message about it would quote it. The agent runs this rule before validation
(docs/REMOTE_CONFIG.md), so such a file is refused for the secret, at its line, and its
value is never quoted in a report or the log.

A secret field is one :mod:`edge_agent.redaction` treats as secret: named like one
(``password``, ``token``, ``secret``, ``api_key``...) or declared ``Field(repr=False)``
on a model of the plant file (``password_hash``, a write command's ``key``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from typing import Any, get_args

import yaml
from pydantic import BaseModel

from edge_agent.config.reading import YAML_LOADER
from edge_agent.redaction import is_secret_key, url_secrets

#: ``${VAR}`` or ``${VAR:-}``: nothing of the value is written in the file.
_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::-)?\}")


@cache
def _secret_fields() -> frozenset[str]:
    """Names of the secret fields of the models of the plant file (user-chosen keys, a
    tag's name, are never taken for one)."""
    from edge_agent.config import PlantConfig  # lazy: the whole config package

    names: set[str] = set()
    seen: set[type[BaseModel]] = set()
    pending: list[Any] = [PlantConfig]
    while pending:
        item = pending.pop()
        if isinstance(item, type) and issubclass(item, BaseModel):
            if item in seen:
                continue
            seen.add(item)
            for name, info in item.model_fields.items():
                if not info.repr or is_secret_key(name):
                    names.add(info.alias or name)
                pending.append(info.annotation)
        else:
            pending.extend(get_args(item))
    return frozenset(names)


def is_secret_field(name: str) -> bool:
    return name in _secret_fields()


def secrets_in_clear(text: str, file: str) -> list[str]:
    """``file:line: key: ...`` for every secret written in clear in the YAML ``text``
    (empty: none). Text that is not YAML has none (the loader reports it)."""
    try:
        root = yaml.compose(text, Loader=YAML_LOADER)
    except yaml.YAMLError:
        return _marked_in_clear(text, file)
    problems: list[str] = []
    for key, node in _scalars(root):
        value = node.value
        if is_secret_field(key):
            # A tag of its own (``!Hunter2``) is written text too: YAML's are harmless.
            tagged = not node.tag.startswith("tag:yaml.org,2002:")
            clear = tagged or (bool(value) and not _REFERENCE.fullmatch(value))
        else:
            clear = any(not _REFERENCE.fullmatch(s) for s in url_secrets(value))
        if clear:
            problems.append(_problem(file, node.start_mark.line, key))
    return sorted(problems, key=lambda p: int(p.removeprefix(file + ":").split(":", 1)[0]))


def _problem(file: str, line: int, key: str) -> str:
    return (
        f"{file}:{line + 1}: {key}: a secret written in clear; "
        "write ${VAR} and set VAR on the gateway"
    )


_MARKS = (yaml.AliasToken, yaml.AnchorToken, yaml.TagToken)


def _marked_in_clear(text: str, file: str) -> list[str]:
    """For text that does not compose: every secret field whose value YAML reads as an
    alias, an anchor or a tag (the composer's message would quote its name)."""
    problems: list[str] = []
    key: str | None = None
    at_key = at_value = False
    try:
        for token in yaml.scan(text, Loader=YAML_LOADER):
            if isinstance(token, yaml.KeyToken):
                at_key, at_value, key = True, False, None
            elif at_key and isinstance(token, yaml.ScalarToken):
                at_key, key = False, str(token.value)
            elif isinstance(token, yaml.ValueToken):
                at_value = True
            else:
                if at_value and isinstance(token, _MARKS) and key and is_secret_field(key):
                    problems.append(_problem(file, token.start_mark.line, key))
                at_value = at_value and isinstance(token, _MARKS)
    except yaml.YAMLError:
        pass  # what was scanned so far is looked at; the loader reports the rest
    return problems


def _scalars(root: yaml.Node | None) -> Iterator[tuple[str, yaml.ScalarNode]]:
    """Every scalar value under a mapping key, with that key: an aliased scalar under
    each key it is used at, an aliased list or mapping walked once."""
    seen: set[int] = set()
    pending: list[tuple[str, yaml.Node]] = [] if root is None else [("", root)]
    while pending:
        key, node = pending.pop()
        if isinstance(node, yaml.ScalarNode):
            if isinstance(node.value, str):
                yield key, node
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            pending.extend((key, child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                name = key_node.value if isinstance(key_node, yaml.ScalarNode) else ""
                pending.append((str(name), value_node))
