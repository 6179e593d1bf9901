"""The console's browser files, checked without a browser.

Three promises the pages make and a browser test would only catch on the page it happens to
open: every label has an English and a Chinese text (and every key the code asks for exists);
the pages run under the console's Content-Security-Policy (no inline script or style, no
``on*=`` handlers, no eval) and never parse text as HTML (device names, tag names, reasons and
the config come from the plant file and the devices); the vendored chart library is the one
the docs name, with its licence, and nothing is fetched from elsewhere.
"""

from __future__ import annotations

import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[2] / "edge_agent" / "console" / "static"
SCRIPTS = sorted(STATIC.glob("*.js"))
PAGES = sorted(STATIC.glob("*.html"))

# Labels built from a value at run time (`state.${state}`): the values the contract allows.
ENUMERATED = {
    "state": ["online", "degraded", "offline", "connecting"],
    "quality": ["good", "uncertain", "bad", "unknown"],
    "machine": ["run", "idle", "off", "fault", "unknown"],
    "sink": ["connected", "failing", "disconnected"],
    "level": ["warning", "error"],
    "event": ["state", "error"],
    "table": ["holding", "input", "coil", "discrete_input"],
    "note": [  # the energy document's notes (edge_agent/console/energy.py)
        "metrics_off",
        "started_today",
        "blocks_unpublished",
        "no_shifts",
        "shift_windows_off",
        "timeline_truncated",
    ],
}


def dictionaries() -> dict[str, dict[str, str]]:
    """The en and zh dictionaries of i18n.js: `const en = { "key": "text", ... };`."""
    source = (STATIC / "i18n.js").read_text(encoding="utf-8")
    found: dict[str, dict[str, str]] = {}
    for lang in ("en", "zh"):
        block = re.search(rf"^const {lang} = \{{\n(.*?)^\}};", source, re.S | re.M)
        assert block, f"i18n.js has no `const {lang} = {{ ... }};` dictionary"
        entries = re.findall(r'^  "([^"]+)": "((?:[^"\\]|\\.)*)",$', block.group(1), re.M)
        lines = [line for line in block.group(1).splitlines() if line.strip()]
        assert len(entries) == len(lines), f'{lang}: a line is not `  "key": "text",`'
        keys = [key for key, _ in entries]
        duplicates = sorted({key for key in keys if keys.count(key) > 1})
        assert not duplicates, f"{lang}: keys given twice: {duplicates}"
        found[lang] = dict(entries)
    return found


def keys_used() -> set[str]:
    """Every label key the pages ask for, as written in the code and the HTML."""
    used: set[str] = set()
    known_prefixes = {key.split(".")[0] for key in dictionaries()["en"]}
    literal = re.compile(r'"([a-z][a-z0-9_]*\.[a-z0-9_.]+)"')
    for script in SCRIPTS:
        text = script.read_text(encoding="utf-8")
        if script.name == "i18n.js":  # past the dictionaries, whose keys are not uses
            text = text.split("export const dictionaries")[1]
        for key in literal.findall(text):
            if key.split(".")[0] in known_prefixes and not key.endswith((".js", ".css", ".html")):
                used.add(key)
    for page in PAGES:
        html = page.read_text(encoding="utf-8")
        used.update(re.findall(r'data-i18n(?:-[a-z-]+)?="([^"]+)"', html))
    for prefix, values in ENUMERATED.items():
        used.update(f"{prefix}.{value}" for value in values)
    return used


def test_both_languages_have_the_same_keys() -> None:
    found = dictionaries()
    assert sorted(set(found["en"]) - set(found["zh"])) == [], "keys with no Chinese text"
    assert sorted(set(found["zh"]) - set(found["en"])) == [], "keys with no English text"


def test_every_label_the_pages_use_has_a_text() -> None:
    missing = sorted(keys_used() - set(dictionaries()["en"]))
    assert missing == []


def test_chinese_texts_are_translated() -> None:
    """A Chinese text equal to the English one is a forgotten translation, unless it is a
    unit, a code or a pattern of numbers (kWh, {n}/s)."""
    found = dictionaries()
    same = [
        key
        for key, text in found["zh"].items()
        if text == found["en"][key]
        and re.search(r"[A-Za-z]{2,}", re.sub(r"\{\w+\}", "", text))
        and key not in ("col.rank",)
    ]
    assert same == []


def test_parameters_match_between_languages() -> None:
    found = dictionaries()
    names = re.compile(r"\{(\w+)\}")
    for key, text in found["en"].items():
        assert set(names.findall(text)) == set(names.findall(found["zh"][key])), key


class _Markup(HTMLParser):
    """Collects what the CSP would refuse, and the files a page loads."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.assets: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        for name, _ in attrs:
            if name == "style" or name.startswith("on"):
                self.problems.append(f"<{tag} {name}=...>")
        if tag == "style":
            self.problems.append("<style> element")
        if tag == "script":
            if not named.get("src"):
                self.problems.append("inline <script>")
            else:
                self.assets.append(str(named["src"]))
            self._in_script = True
        if tag == "link" and named.get("rel") == "stylesheet":
            self.assets.append(str(named.get("href")))
        for name in ("src", "href"):
            value = named.get(name) or ""
            if re.match(r"(https?:)?//", value):
                self.problems.append(f"<{tag} {name}={value}> loads from another host")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append("inline script text")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_pages_run_under_the_content_security_policy(page: Path) -> None:
    markup = _Markup()
    markup.feed(page.read_text(encoding="utf-8"))
    assert markup.problems == []
    for asset in markup.assets:
        assert asset.startswith("/console/static/"), asset
        assert (STATIC / asset.removeprefix("/console/static/")).is_file(), asset


FORBIDDEN = {
    r"\.innerHTML\b|\.outerHTML\b|insertAdjacentHTML|document\.write": "parses text as HTML",
    r"\beval\(|new Function\b|setTimeout\(\s*['\"`]|setInterval\(\s*['\"`]": "runs text as code",
    r"setAttribute\(\s*['\"]style['\"]|\.cssText\b|createElement\(\s*['\"]style['\"]": (
        "inline style (blocked by style-src 'self')"
    ),
    r"https?://": "an address outside the agent",
}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_never_parse_text_as_html_nor_run_it(script: Path) -> None:
    text = script.read_text(encoding="utf-8")
    code = re.sub(r"^\s*//.*$", "", text, flags=re.M)  # comments may name what is avoided
    code = code.replace('"http://www.w3.org/2000/svg"', "")  # the SVG namespace is a name
    found = [
        f"{why}: {match.group(0)!r}"
        for pattern, why in FORBIDDEN.items()
        for match in re.finditer(pattern, code)
    ]
    assert found == []


def test_modules_import_only_their_neighbours() -> None:
    for script in SCRIPTS:
        text = script.read_text(encoding="utf-8")
        for target in re.findall(r'\bfrom "([^"]+)";$', text, re.M):
            assert target.startswith("./"), f"{script.name} imports {target}"
            assert (STATIC / target[2:]).is_file(), f"{script.name} imports {target}: no such file"


# sha256 of the files in the npm package uplot@1.6.32 (vendor/uplot/README.md says how).
UPLOT = {
    "uPlot.iife.min.js": "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f",
    "uPlot.min.css": "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04",
    "LICENSE": "8f989229699b4fe2f1a0432d0e9edc338a8a911e250e2d1b01ecd770a5f5b1bd",
}


def test_uplot_is_vendored_unchanged_with_its_licence() -> None:
    vendor = STATIC / "vendor" / "uplot"
    for name, digest in UPLOT.items():
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name
    assert "MIT License" in (vendor / "LICENSE").read_text(encoding="utf-8")
    assert "(v1.6.32)" in (vendor / "uPlot.iife.min.js").read_text(encoding="utf-8")[:80]
