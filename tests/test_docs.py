"""The chapters in ``docs/`` are executable: every ``>>>`` example runs here.

Each chapter is a Markdown file whose code examples are doctests; a chapter
that drifts from the code (a renamed function, a changed result) fails this
test.  Option: ``NORMALIZE_WHITESPACE`` only.  No ``ELLIPSIS``: an example
shows the number it exists to show, rounded so that it does not depend on
the BLAS (``tests/test_docs_hygiene.py`` also rejects ``...`` in outputs).

The examples run on the backend under test (``MINILPLR_BACKEND``, ``strict``
by default, see ``conftest.py``), so they also prove that the docs move data
across the host/device wall only through ``to_device`` / ``to_host``.

Two more checks keep the chapters honest without running them:

* every dotted name ``minilplr.x.y`` a chapter mentions resolves (the "where
  it lives" sections name modules and functions, never line numbers);
* ``docs/README.md`` links every chapter, in reading order.
"""
from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
CHAPTERS = sorted(p for p in DOCS.glob("[0-9][0-9]-*.md"))
SOLUTIONS = sorted(DOCS.glob("solutions/*.md"))  # worked solutions to the chapters' exercises: run like chapters
FLAGS = doctest.NORMALIZE_WHITESPACE


def test_chapters_exist():
    assert len(CHAPTERS) >= 8, f"expected the eight chapters in {DOCS}, found {[p.name for p in CHAPTERS]}"


@pytest.mark.parametrize("path", CHAPTERS + SOLUTIONS + [DOCS / "README.md"],
                         ids=lambda p: p.relative_to(DOCS).as_posix())
def test_chapter_examples(path):
    """Run the chapter's ``>>>`` examples as one doctest (fresh globals per chapter)."""
    text = path.read_text(encoding="utf-8")
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text, {"__name__": f"docs.{path.stem}"}, path.name, str(path), 0)
    if path.name != "README.md":
        assert test.examples, f"{path.name}: a chapter must carry at least one runnable example"
    out = []
    runner = doctest.DocTestRunner(optionflags=FLAGS, verbose=False)
    runner.run(test, out=out.append)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{path.name}: {result.failed} of {result.attempted} examples failed\n" + "".join(out)


_DOTTED = re.compile(r"\bminilplr(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


def _resolve(dotted: str):
    """Import the longest module prefix of ``dotted`` and getattr the rest."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            obj = getattr(obj, name)  # AttributeError: the chapter names something that is gone
        return obj
    raise ImportError(dotted)


@pytest.mark.parametrize("path", CHAPTERS + [DOCS / "README.md"], ids=lambda p: p.name)
def test_named_code_exists(path):
    """Every ``minilplr.module.function`` a chapter points to exists."""
    text = path.read_text(encoding="utf-8")
    missing = []
    for dotted in sorted(set(_DOTTED.findall(text))):
        try:
            _resolve(dotted)
        except (ImportError, AttributeError) as exc:
            missing.append(f"{dotted} ({type(exc).__name__}: {exc})")
    assert not missing, f"{path.name} names code that does not exist: " + "; ".join(missing)


def test_index_lists_chapters_in_order():
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    positions = []
    for p in CHAPTERS:
        pos = index.find(f"]({p.name})")
        assert pos >= 0, f"docs/README.md does not link {p.name}"
        positions.append(pos)
    assert positions == sorted(positions), "docs/README.md lists the chapters out of reading order"
