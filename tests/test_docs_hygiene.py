"""The course's Markdown is clean text, its examples print whole outputs, and its pictures exist.

Over ``docs/*.md`` and ``docs/solutions/*.md``:

* **No control characters.** Nothing below U+0020 except the newline, and no
  DEL (U+007F): a tab, a carriage return or a form feed is always an
  accident here (one chapter once carried ``\\f`` and ``\\t`` where Python had
  eaten the backslash of ``\\frac`` and ``\\theta``; Markdown indents with
  spaces).
* **No elided outputs.** ``tests/test_docs.py`` runs the examples with
  ``ELLIPSIS``, so an expected output containing ``...`` matches anything in
  its place; a reader cannot reproduce a number that the chapter hides.
  Every expected output is printed in full (rounded where the digits depend
  on the BLAS).
* **Every picture a page links exists**, and pictures stay small.
* **Maths is LaTeX, in the syntax the rendered site expects.** Outside code:
  display maths opens and closes with ``$$`` on lines of their own, inline
  maths is ``$...$`` (an even number of ``$`` per line), no LaTeX command
  stands outside maths, and no formula hides in a code span as Unicode
  (a code span holding ``λ_min(Θ)``): a code span is for code, which never
  needs ``λ`` or ``‖``.

Each failure names the file, the line and what was found.
"""
from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(DOCS.glob("*.md")) + sorted(DOCS.glob("solutions/*.md"))
MAX_IMAGE_BYTES = 80_000  # the pictures are teaching sketches at 100 dpi: a few tens of KB each

_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)|<img\s[^>]*src=\"([^\"]+)\"")


def _ids(p: Path) -> str:
    return p.relative_to(DOCS).as_posix()


def control_characters(text: str) -> list[str]:
    """``line:col U+XXXX`` for each control character other than the newline."""
    found = []
    for n, line in enumerate(text.split("\n"), start=1):
        for col, ch in enumerate(line, start=1):
            if (ord(ch) < 0x20 or ord(ch) == 0x7F) and ch != "\n":
                found.append(f"line {n}:{col} U+{ord(ch):04X} ({ch!r}) in {line.strip()[:60]!r}")
    return found


def elided_outputs(text: str, name: str) -> list[str]:
    """``line N: want`` for each doctest expected output that contains ``...``."""
    found = []
    for ex in doctest.DocTestParser().get_examples(text, name):
        for k, want_line in enumerate(ex.want.splitlines()):
            if "..." in want_line:
                # ex.lineno: 0-based line of the '>>>'; the output starts after the source's lines
                n = ex.lineno + ex.source.count("\n") + k + 1
                found.append(f"line {n}: {want_line.strip()!r} (after >>> {ex.source.splitlines()[0][:50]!r})")
    return found


def linked_images(text: str) -> list[str]:
    """Local image paths a page links (``![alt](path)`` or ``<img src="path">``), in order."""
    paths = [a or b for a, b in _IMAGE.findall(text)]
    return [p for p in paths if not re.match(r"^[a-z]+://", p)]


_MATH_UNICODE = set("²³ᵀ∂‖√≤≥λμθΘεδηκσΣφπρτωγβαΔ∇⊙⊗≈∈⪰≠∞½ℝ⁻⁰¹⁴⁵⁶⁷⁸⁹⁽⁾ˡ₀₁₂₃₄₅₆₇₈₉")


def maths_syntax(text: str) -> list[str]:
    """``line N: problem`` for each break of the maths contract, outside fenced code blocks."""
    found = []
    in_code = in_display = False
    for n, line in enumerate(text.split("\n"), start=1):
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            continue
        if line.strip() == "$$":
            in_display = not in_display
            continue
        if in_display:
            if "$" in line:
                found.append(f"line {n}: a $ inside a display: {line.strip()[:60]!r}")
            continue
        if "$$" in line:
            found.append(f"line {n}: $$ must stand on a line of its own: {line.strip()[:60]!r}")
            continue
        spans = re.findall(r"`([^`]*)`", line)
        prose = re.sub(r"`[^`]*`", "", line)
        if prose.count("$") % 2:
            found.append(f"line {n}: an odd number of $ (unclosed inline maths): {line.strip()[:60]!r}")
        elif re.search(r"\\[A-Za-z]+", re.sub(r"\$[^$]*\$", "", prose)):
            found.append(f"line {n}: a LaTeX command outside $...$: {line.strip()[:60]!r}")
        for span in spans:
            if any(ch in _MATH_UNICODE for ch in span):
                found.append(f"line {n}: Unicode maths in a code span (write it as $...$): `{span}`")
    if in_display:
        found.append("end of file: a $$ display is never closed")
    return found


def test_pages_found():
    assert any(p.name == "03-jacobian-and-ntk.md" for p in PAGES), PAGES


@pytest.mark.parametrize("path", PAGES, ids=_ids)
def test_no_control_characters(path):
    found = control_characters(path.read_text(encoding="utf-8"))
    assert not found, f"{_ids(path)}: control characters (use spaces; escape backslashes):\n" + "\n".join(found)


@pytest.mark.parametrize("path", PAGES, ids=_ids)
def test_no_elided_example_outputs(path):
    found = elided_outputs(path.read_text(encoding="utf-8"), path.name)
    assert not found, (f"{_ids(path)}: expected outputs elided with '...' (print them in full, rounded):\n"
                       + "\n".join(found))


@pytest.mark.parametrize("path", PAGES, ids=_ids)
def test_maths_is_latex_in_the_agreed_syntax(path):
    found = maths_syntax(path.read_text(encoding="utf-8"))
    assert not found, f"{_ids(path)}: maths outside the LaTeX contract:\n" + "\n".join(found)


@pytest.mark.parametrize("path", PAGES, ids=_ids)
def test_linked_images_exist_and_are_small(path):
    problems = []
    for link in linked_images(path.read_text(encoding="utf-8")):
        target = (path.parent / link.split("#")[0]).resolve()
        if not target.is_file():
            problems.append(f"{link}: no such file ({target})")
        elif target.stat().st_size > MAX_IMAGE_BYTES:
            problems.append(f"{link}: {target.stat().st_size} bytes > {MAX_IMAGE_BYTES} "
                            "(redraw smaller with scripts/make_pictures.py)")
    assert not problems, f"{_ids(path)}: " + "; ".join(problems)


def test_the_checks_catch_what_they_guard_against():
    """Each check on a planted example: a tab, a form feed, an elided output, a missing picture."""
    assert len(control_characters("a\tb\n$\\frac{1}{2}$ and \f\n")) == 2
    assert control_characters("plain text\nwith newlines only\n") == []
    page = "```python\n>>> print(list(range(20)))\n[0, 1, ..., 19]\n>>> 1 + 1\n2\n\n```\n"
    (hit,) = elided_outputs(page, "planted")
    assert hit.startswith("line 3:"), hit
    assert elided_outputs(">>> for i in range(2):\n...     print(i)\n0\n1\n", "continuation") == []
    assert linked_images("![J](img/j_layout.png) and ![web](https://x.org/a.png) <img src=\"img/b.png\">") == [
        "img/j_layout.png", "img/b.png"]
    good = "Inline $\\lambda_{\\min}$ and `code_name`.\n\n$$\n\\frac{a}{b}\n$$\n```python\n>>> x = 1  # λ in code is fine\n```\n"
    assert maths_syntax(good) == []
    planted = {
        "$$ \\frac{a}{b} $$\n": "own",                  # display delimiters on the formula's line
        "the rate $1 - \\eta\\mu per step\n": "odd",    # unclosed inline maths
        "the rate \\eta\\mu per step\n": "LaTeX command",  # LaTeX outside maths
        "the PL constant `μ = λ_min/N`\n": "Unicode",   # Unicode maths in a code span
        "$$\n\\frac{a}{b}\n": "never closed",          # an unclosed display
    }
    for text, what in planted.items():
        (hit,) = maths_syntax(text)
        assert what in hit, (text, hit)
