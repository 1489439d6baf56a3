"""The package is a stack: each floor imports only the floors below it (minilplr/__init__.py).

Read from the source with ``ast`` (nothing is imported), so the rule holds for
imports inside functions too.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "minilplr"

#: what each floor may import, besides itself and the standard library / third-party packages
ALLOWED = {
    "backend": {"testing"},
    "testing": {"backend"},
    "validate": {"backend"},
    "store": set(),
    "data": {"backend", "validate", "store"},
    "nn": {"backend", "validate"},
    "train": {"backend", "validate", "store", "nn"},
    "theory": {"backend", "validate", "store", "nn", "train"},
    "sweep": {"backend", "validate", "store"},
    "experiments": {"backend", "validate", "store", "data", "nn", "train", "theory", "sweep"},
}


def _floor(module: str) -> str:
    """``minilplr.nn.conv`` -> ``nn``; ``minilplr.backend`` -> ``backend``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _module_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, source: str | None = None):
    """Absolute names of every minilplr module ``path`` imports (relative imports resolved)."""
    mod = _module_of(path)
    pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text() if source is None else source)):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("minilplr"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("minilplr"):
                target = node.module
            else:
                continue
            if node.module is None:  # from . import a, b: the names are modules of the package
                yield from (f"{target}.{a.name}" for a in node.names)
            else:
                yield target


FILES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


def test_every_floor_has_a_rule():
    floors = {_floor(_module_of(p)) for p in FILES}
    assert floors <= set(ALLOWED), f"floors without an import rule: {floors - set(ALLOWED)}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_go_down_the_stack(path):
    floor = _floor(_module_of(path))
    wrong = sorted({t for t in _imports(path) if _floor(t) not in ALLOWED[floor] | {floor, ""}})
    assert not wrong, f"{path.relative_to(PACKAGE)} ({floor}) imports {wrong}: not below it in the stack"


def test_the_rule_catches_an_upward_import():
    """The checker itself can fail: an engine module importing the theory is reported."""
    names = list(_imports(PACKAGE / "nn" / "layers.py", "from ..theory import ntk\nimport minilplr.experiments\n"))
    assert names == ["minilplr.theory", "minilplr.experiments"]
    assert not {_floor(n) for n in names} & ALLOWED["nn"]


def test_the_readme_layout_table_matches_the_tree():
    """Every path in README's layout table exists, and every module of the package is in it."""
    import re

    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Layout"):readme.index("Shape letters used")]
    named = set(re.findall(r"`((?:minilplr|scripts|benchmarks|tests|docs|data)/[\w./]*)`", table))
    missing = sorted(p for p in named if not (PACKAGE.parent / p).exists())
    assert not missing, f"README names paths that do not exist: {missing}"
    unlisted = []
    for path in FILES:
        rel = str(path.relative_to(PACKAGE.parent))
        folder = str(path.parent.relative_to(PACKAGE.parent)) + "/"
        if path.name != "__init__.py" and rel not in named and folder not in named:
            unlisted.append(rel)
    assert not unlisted, f"modules missing from README's layout table: {unlisted}"
