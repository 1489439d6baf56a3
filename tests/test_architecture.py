"""The package is a stack: each floor imports only the floors below it (minilplr/__init__.py).

Read from the source with ``ast`` (nothing is imported), so the rule holds for
imports inside functions too.
"""
import ast
import re
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


def _from_target(node: ast.ImportFrom, pkg: str | None) -> str | None:
    """The minilplr module a ``from ... import`` reads from (relative levels resolved against ``pkg``), else ``None``."""
    if node.level:
        if pkg is None:
            return None  # a test's relative import: the tests' own helpers
        base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))
    if node.module and node.module.startswith("minilplr"):
        return node.module
    return None


def _imports(path: Path, source: str | None = None):
    """Absolute names of every minilplr module ``path`` imports (relative imports resolved)."""
    mod = _module_of(path)
    pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text() if source is None else source)):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("minilplr"))
        elif isinstance(node, ast.ImportFrom):
            target = _from_target(node, pkg)
            if target is None:
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


#: One topic per module (issue 22): a module over this many lines has more than one job; split it by topic.
MAX_LINES = 500


def too_long(paths, limit: int = MAX_LINES, root: Path = PACKAGE.parent) -> list[str]:
    """``"path: n lines"`` (relative to ``root``) for every file of ``paths`` longer than ``limit`` lines."""
    out = []
    for path in paths:
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > limit:
            out.append(f"{path.relative_to(root)}: {n} lines")
    return out


def test_no_module_is_over_the_line_limit():
    wrong = too_long(PACKAGE.rglob("*.py"))
    assert not wrong, f"modules over {MAX_LINES} lines (split them by topic):\n" + "\n".join(wrong)


def test_the_line_limit_catches_a_long_module(tmp_path):
    """The checker itself can fail: a planted 501-line module is reported, a 500-line one is not."""
    long, ok = tmp_path / "long.py", tmp_path / "ok.py"
    long.write_text("x = 1\n" * (MAX_LINES + 1), encoding="utf-8")
    ok.write_text("x = 1\n" * MAX_LINES, encoding="utf-8")
    assert too_long([long, ok], root=tmp_path) == [f"long.py: {MAX_LINES + 1} lines"]


# --------------------------------------------------------------------------- no machine timings in docstrings
#
# STYLE.md: "Timings belong to the benchmarks' output and the README, not to docstrings, where they go stale."
# A docstring line is flagged when it states a duration (a number and a unit of time) together with a word
# that says it was measured on a machine.  A duration that is a rule (a deadline, a timeout, an example of a
# log line) names no measurement and passes.

_DURATION = re.compile(r"\d(?:[\d.,]*\d)?(?:\s*[-–]\s*\d+(?:\.\d+)?)?\s?(?:ms|µs|s|sec|seconds?|min|minutes?|hours?|h)\b")
_MEASURED = re.compile(r"\b(?:took|takes about|measured|under load|faster|slower|speed-?up|wall|on (?:a|this|one|the) "
                        r"(?:shared |quiet |idle )?(?:\d-core|CPU|GPU|machine|laptop|core))\b", re.IGNORECASE)
#: Known timings left to the helper who owns the file (path, text of the line); drop an entry when its line goes.
TIMING_LEFT: set = set()


def docstring_timings(path: Path, source: str | None = None) -> list[tuple[int, str]]:
    """``(line, text)`` of every docstring line of ``path`` that quotes a measured duration (read with ``ast``)."""
    tree = ast.parse(path.read_text(encoding="utf-8") if source is None else source)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        body = getattr(node, "body", [])
        docs = [b for b in body if isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant)
                and isinstance(b.value.value, str)]  # the docstring, and attribute docstrings below assignments
        for d in docs:
            for i, line in enumerate(d.value.value.splitlines()):
                if _DURATION.search(line) and _MEASURED.search(line):
                    found.append((d.lineno + i, line.strip()))
    return found


def test_no_docstring_quotes_a_machine_timing():
    wrong = []
    for path in FILES + sorted((ROOT / "scripts").glob("*.py")):
        rel = str(path.relative_to(ROOT))
        wrong += [f"{rel}:{n}: {text}" for n, text in docstring_timings(path)
                  if not any(rel == f and t in text for f, t in TIMING_LEFT)]
    assert not wrong, ("docstrings quoting machine timings (move the number to the benchmark that measures it or to "
                       "README's 'Time and memory'; keep the reason):\n" + "\n".join(wrong))


def test_the_timing_check_catches_a_timing_and_passes_a_rule():
    """The checker can fail: a measured time is reported; a deadline or a log-line example is not."""
    planted = ('"""Solvers.\n\nMeasured on a shared 2-core CPU: eigvalsh 5.5 s at n = 4000."""\n'
               'X = 1\n"""Dense up to here: 2× faster than Cholesky on this machine, 13 s."""\n'
               'def f():\n    """Gives up after a deadline of 60 s plus the size at 100 kB/s."""\n'
               'def g():\n    """Logs ``cell 3/12 done in 1.2 s on host/pid``."""\n')
    found = docstring_timings(PACKAGE / "theory" / "pl.py", planted)
    assert [n for n, _ in found] == [3, 5], found

# --------------------------------------------------------------------------- seams are public
#
# The rule (ARCHITECTURE.md, "Seams are public"):
#
# * In the package, scripts/ and benchmarks/, no module uses another module's private name: a name with one
#   leading underscore (``_x``; dunders are public) is never imported from another module
#   (``from .x import _name``, ``from minilplr.x import _name``) nor reached through one
#   (``ntk._tile_rows``, ``setattr(mod, "_name", ...)``).  A module's private alias of a public module
#   (``from ..theory import ntk as _ntk``) is the importer's own name: allowed.
# * A test file may reach the private names of the module it tests, and only those:
#   ``tests/<path>/test_<m>.py`` tests ``minilplr.<path>.<m>`` (a module, or a package and every module inside
#   it; ``tests/test_<m>.py`` tests ``minilplr.<m>``).  Shared test tools (helpers.py, strategies.py,
#   conftest.py, fixtures) test no module: public names only.

ROOT = PACKAGE.parent
#: Known reaches into another module's private name, each left to the helper who owns the module; an entry
#: that no longer matches a reach fails :func:`test_pending_reaches_are_still_there` (delete it then).
PENDING = {
}


def _is_module(dotted: str) -> bool:
    """``minilplr.a.b`` names a module or a package of the tree (nothing is imported)."""
    rel = Path(*dotted.split("."))
    return (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file()


def _importer_package(path: Path) -> str | None:
    """The package a relative import in ``path`` starts from (``None`` outside minilplr)."""
    try:
        mod = _module_of(path)
    except ValueError:
        return None
    return mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]


def _owner(dotted: str) -> str:
    """The module that defines ``dotted``'s last name: the longest module prefix."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        if _is_module(".".join(parts[:i])):
            return ".".join(parts[:i])
    return parts[0]


def private_reaches(path: Path, source: str | None = None) -> list[tuple[int, str]]:
    """``(line, "minilplr.x._name")`` for every private name of a minilplr module that ``path`` uses from outside it.

    Its own module's names (a package file and the package's ``__init__``) do not count: ``from . import
    _x`` inside ``minilplr/a/__init__.py`` is its own.  Read with ``ast``; nothing is imported.
    """
    tree = ast.parse(path.read_text(encoding="utf-8") if source is None else source)
    pkg = _importer_package(path) if PACKAGE in path.parents else None
    own = _module_of(path) if pkg is not None else None
    bound = {}  # local name -> the minilplr dotted name it is bound to
    found = []

    def private(name: str) -> bool:
        return name.startswith("_") and not name.startswith("__")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("minilplr"):
                    bound[a.asname or a.name.split(".")[0]] = a.name if a.asname else "minilplr"
        elif isinstance(node, ast.ImportFrom):
            target = _from_target(node, pkg)
            if target is None:
                continue
            for a in node.names:
                dotted = f"{target}.{a.name}"
                if private(a.name) and not _is_module(dotted) and _owner(dotted) != own:
                    found.append((node.lineno, dotted))
                bound[a.asname or a.name] = dotted
    for node in ast.walk(tree):
        chain, base = [], node
        if isinstance(node, ast.Attribute):
            while isinstance(base, ast.Attribute):
                chain.append(base.attr)
                base = base.value
            chain.reverse()
        elif (isinstance(node, ast.Call) and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
              and isinstance(node.args[1].value, str) and getattr(node.func, "attr", getattr(node.func, "id", ""))
              in ("setattr", "getattr", "delattr")):
            base, chain = node.args[0], [node.args[1].value]  # setattr(mod, "_name", ...), monkeypatch's too
        else:
            continue
        if not (isinstance(base, ast.Name) and base.id in bound):
            continue
        dotted = bound[base.id]
        for name in chain:
            if private(name):
                if _is_module(dotted) and _owner(dotted) != own:
                    found.append((node.lineno, f"{dotted}.{name}"))
                break
            dotted = f"{dotted}.{name}"
    return sorted(set(found))


SOURCES = FILES + sorted((ROOT / "scripts").glob("*.py")) + sorted((ROOT / "benchmarks").glob("*.py"))
TESTS = sorted((ROOT / "tests").rglob("*.py"))


def module_under_test(test_file: Path) -> str | None:
    """``tests/theory/test_ntk.py`` -> ``minilplr.theory.ntk``; ``None`` for a file that is no ``test_*.py``."""
    rel = test_file.relative_to(ROOT / "tests")
    if not rel.name.startswith("test_"):
        return None
    return ".".join(["minilplr", *rel.parts[:-1], rel.stem[len("test_"):]])


def test_tests_map_to_the_modules_they_test():
    assert module_under_test(ROOT / "tests" / "theory" / "test_ntk.py") == "minilplr.theory.ntk"
    assert module_under_test(ROOT / "tests" / "test_store.py") == "minilplr.store"
    assert module_under_test(ROOT / "tests" / "helpers.py") is None


def _pending(rel: str, reaches):
    return [(line, name) for line, name in reaches if (rel, name) not in PENDING]


def test_no_module_reaches_into_another_modules_private_names():
    wrong = []
    for path in SOURCES:
        rel = str(path.relative_to(ROOT))
        wrong += [f"{rel}:{line}: {name}" for line, name in _pending(rel, private_reaches(path))]
    assert not wrong, "private names used across modules (make them public where they live):\n" + "\n".join(wrong)


def test_tests_reach_only_the_private_names_of_the_module_they_test():
    wrong = []
    for path in TESTS:
        rel, mine = str(path.relative_to(ROOT)), module_under_test(path)
        for line, name in _pending(rel, private_reaches(path)):
            owner = _owner(name)
            if mine is None or not (owner == mine or owner.startswith(mine + ".")):
                wrong.append(f"{rel}:{line}: {name} (tests {mine or 'no module'})")
    assert not wrong, "tests reaching private names of modules they do not test (use the public API):\n" + \
        "\n".join(wrong)


def test_pending_reaches_are_still_there():
    gone = [f"{rel}: {name}" for rel, name in PENDING if name not in {n for _, n in private_reaches(ROOT / rel)}]
    assert not gone, "fixed: delete these entries from PENDING:\n" + "\n".join(gone)


def test_the_rule_catches_private_reaches():
    """The checker itself can fail: each planted reach is reported; a module's own private names are not."""
    layers = PACKAGE / "theory" / "ntk_shares.py"
    assert private_reaches(layers, "from .ntk import _seed, forward_outputs\n") == [(1, "minilplr.theory.ntk._seed")]
    assert private_reaches(layers, "from minilplr.theory.ntk import _seed\n") == [(1, "minilplr.theory.ntk._seed")]
    assert private_reaches(layers, "from . import ntk\nntk._seed(1, 0)\n") == [(2, "minilplr.theory.ntk._seed")]
    assert private_reaches(layers, "from . import ntk as _ntk\n_ntk.output_seed(1, 0)\n") == []  # own alias
    assert private_reaches(PACKAGE / "theory" / "ntk.py", "def _seed():\n    pass\n_seed()\n") == []
    test = ROOT / "tests" / "experiments" / "test_fig5_width_ablation.py"
    planted = "import minilplr.theory.ntk_tiles as T\nfrom minilplr.experiments import mnist_gd\n" \
              "T._mirror_upper(1, 2)\nmonkeypatch.setattr(mnist_gd, '_spectrum', 1)\n"
    assert private_reaches(test, planted) == [(3, "minilplr.theory.ntk_tiles._mirror_upper"),
                                              (4, "minilplr.experiments.mnist_gd._spectrum")]
    assert module_under_test(test) == "minilplr.experiments.fig5_width_ablation"  # neither is its own: both wrong
