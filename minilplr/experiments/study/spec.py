r"""A study's spec file (TOML), read and checked before anything runs.

A spec is data: which *cell kind* runs (:mod:`.kinds`), its fixed settings,
the grid of cells, the steps, the presets, the diagnostics to record
(:mod:`.diagnostics`), the claims to judge (:mod:`.claims`) and the panels to
draw (:mod:`.panels`).  :func:`read_spec` parses it with :mod:`tomllib` and
checks every key; a problem is one line naming the file and the key path::

    studies/x.toml: grid.width: expected a non-empty list of positive integers, got []

The format (``docs/09-your-own-study.md`` has a worked example)::

    [study]    name, kind, title (optional), data (optional: a .npz with X (N, D), y (N,) or (N, K))
    [model]    fixed cell settings, any key the kind knows (width, depth, n, init, seed, ...)
    [grid]     axes: key = [values]; the cells are their product.  [[grid]]: a union of products
    [run]      steps, diag_every (the NTK checkpoint cadence)
    [presets.quick], [presets.paper]   overrides of model / run (key by key) and grid (replaced)
    [[diagnostics]]  name (from the registry), or name + key (a dotted path into the cell's result)
    [[claims]]       kind (power_law | extrapolate | held_out | closing_width | threshold) and its fields
    [[panels]]       kind (lines | heatmap) and its fields

The step size is ``eta`` (a number) or ``c_beta0`` (``η = c/β_0``, ``β_0`` the
Hessian's top eigenvalue at initialisation, measured by a pilot per model).
"""
from __future__ import annotations

import math
import tomllib
from pathlib import Path

__all__ = ["SpecError", "read_spec", "parse_spec", "resolve_preset", "preset_cells", "check_cells", "SECTIONS",
           "PRESETS"]

#: The top-level tables a spec may have.
SECTIONS = ("study", "model", "grid", "run", "presets", "diagnostics", "claims", "panels")
#: The presets a spec may override.
PRESETS = ("quick", "paper")
#: The keys of [run]; every other cell key belongs in [model] or [grid].
RUN_KEYS = ("steps", "diag_every")
#: Folder names a study may not take: the experiments' run cache lives beside the studies' folders
#: (``<out>/<configuration>/runs/``); the experiments' own names are refused by ``scripts/run_all.py``.
RESERVED_NAMES = ("runs",)
#: The step-size keys: exactly one of them, in [model] or [grid].
STEP_KEYS = ("eta", "c_beta0")


class SpecError(ValueError):
    """A bad spec: one line, ``"<file>: <key path>: expected …, got …"``."""


def _show(v) -> str:
    return repr(v) if not isinstance(v, str) else repr(v)


class _Checker:
    """Raises :class:`SpecError` with the file's name in front."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, key: str, expected: str, got) -> None:
        raise SpecError(f"{self.where}: {key}: expected {expected}, got {_show(got)}")

    def line(self, message: str) -> None:
        """A check's own one-line message (``"<key>: expected …"``), with the file's name in front."""
        raise SpecError(f"{self.where}: {message}")

    def table(self, key, v, allowed=None, required=()):
        if not isinstance(v, dict):
            self.fail(key, "a table", v)
        if allowed is not None:
            for k in v:
                if k not in allowed:
                    self.fail(f"{key}.{k}" if key else k, f"one of the keys {', '.join(allowed)}", "an unknown key")
        for k in required:
            if k not in v:
                self.fail(f"{key}.{k}" if key else k, "a value (required)", "nothing")
        return v

    def string(self, key, v, choices=None):
        if not isinstance(v, str) or not v:
            self.fail(key, "a non-empty string", v)
        if choices is not None and v not in choices:
            self.fail(key, f"one of {', '.join(choices)}", v)
        return v


# --------------------------------------------------------------------------- value types

def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(float(v))


#: A value type: (what it expects, in words; its test).
TYPES = {
    "pos_int": ("a positive integer", lambda v: _is_int(v) and v > 0),
    "nonneg_int": ("a non-negative integer", lambda v: _is_int(v) and v >= 0),
    "pos_real": ("a positive finite number", lambda v: _is_real(v) and v > 0),
    "real": ("a finite number", _is_real),
    "str": ("a non-empty string", lambda v: isinstance(v, str) and bool(v)),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "int_list": ("a list of non-negative integers", lambda v: isinstance(v, list) and len(v) >= 1
                 and all(_is_int(x) and x >= 0 for x in v)),
}


def check_value(chk: _Checker, key: str, v, typ: str, choices=None):
    """One cell setting against its type (``choices``: the strings it may be)."""
    what, ok = TYPES[typ]
    if choices is not None:
        if v not in choices:
            chk.fail(key, f"one of {', '.join(map(str, choices))}", v)
        return v
    if not ok(v):
        chk.fail(key, what, v)
    return float(v) if typ in ("pos_real", "real") else v


def check_axis(chk: _Checker, key: str, values, typ: str, choices=None) -> list:
    """A grid axis: a non-empty list of distinct values of the setting's type."""
    what = TYPES[typ][0] if choices is None else f"one of {', '.join(map(str, choices))}"
    plural = {"a positive integer": "positive integers", "a non-negative integer": "non-negative integers",
              "a positive finite number": "positive finite numbers", "a finite number": "finite numbers"}.get(what)
    expected = f"a non-empty list of {plural or 'values, each ' + what}"
    if not isinstance(values, list) or not values:
        chk.fail(key, expected, values)
    out = []
    for i, v in enumerate(values):
        if choices is not None:
            if v not in choices:
                chk.fail(f"{key}[{i}]", what, v)
            out.append(v)
            continue
        if not TYPES[typ][1](v):
            chk.fail(key if len(values) == 1 else f"{key}[{i}]", expected if len(values) == 1 else what,
                     values if len(values) == 1 else v)
        out.append(float(v) if typ in ("pos_real", "real") else v)
    if len({repr(v) for v in out}) != len(out):
        chk.fail(key, "distinct values", values)
    return out


# --------------------------------------------------------------------------- the spec

def read_spec(path) -> dict:
    """The checked spec of the TOML file ``path`` (:func:`parse_spec`); :class:`SpecError` on any problem."""
    p = Path(path)
    where = str(path)
    if not p.is_file():
        raise SpecError(f"{where}: expected a study spec file (TOML), got {'a folder' if p.exists() else 'no such file'}")
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"{where}: expected a TOML file, got {str(exc).splitlines()[0]}") from None
    return parse_spec(raw, where, base=p.parent)


def parse_spec(raw: dict, where: str = "<spec>", base=None) -> dict:
    """Check a parsed spec ``raw`` (a dict as :mod:`tomllib` gives it); returns the checked spec.

    The checked spec is ``{"study", "model", "grid" (a list of products), "run",
    "presets" ({name: overrides}), "diagnostics", "claims", "panels"}``, every
    preset resolved and checked too (:func:`resolve_preset`), so a preset's
    mistake is found before any preset runs.  ``base``: the folder a relative
    ``data`` path is read from (the spec's own folder).
    """
    from . import claims as _claims, diagnostics as _diag, kinds as _kinds, panels as _panels

    chk = _Checker(where)
    chk.table("", raw, SECTIONS, required=("study", "grid"))
    study = chk.table("study", raw["study"], ("name", "kind", "title", "data"), required=("name", "kind"))
    name = chk.string("study.name", study["name"])
    if not all(c.isalnum() or c in "_-" for c in name) or not name[0].isalnum():
        chk.fail("study.name", "a folder name of letters, digits, _ and -", name)
    if name.lower() in RESERVED_NAMES:
        chk.fail("study.name", f"a name other than {', '.join(RESERVED_NAMES)} (a folder the experiments share beside "
                 "the studies' folders: the run cache)", name)
    kind = _kinds.get_kind(study["kind"], chk, "study.kind")
    spec = {"study": {"name": name, "kind": study["kind"], "title": str(study.get("title", ""))}}
    if "title" in study:
        chk.string("study.title", study["title"])
    if "data" in study:
        if "data" not in kind.keys:
            chk.fail("study.data", f"no data file (the kind {study['kind']!r} makes its own data)", study["data"])
        from .data import check_npz

        path = Path(chk.string("study.data", study["data"]))
        if not path.is_absolute() and base is not None:
            path = Path(base) / path
        check_npz(path, chk, "study.data")
        spec["study"]["data"] = str(path)
    spec["model"] = _settings(chk, "model", raw.get("model", {}), kind, run=False)
    spec["run"] = _settings(chk, "run", raw.get("run", {}), kind, run=True)
    spec["grid"] = _grid(chk, "grid", raw["grid"], kind)
    presets = chk.table("presets", raw.get("presets", {}), PRESETS)
    spec["presets"] = {}
    for p, over in presets.items():
        chk.table(f"presets.{p}", over, ("model", "run", "grid"))
        spec["presets"][p] = {
            "model": _settings(chk, f"presets.{p}.model", over.get("model", {}), kind, run=False),
            "run": _settings(chk, f"presets.{p}.run", over.get("run", {}), kind, run=True),
        }
        if "grid" in over:
            spec["presets"][p]["grid"] = _grid(chk, f"presets.{p}.grid", over["grid"], kind)
    diags = raw.get("diagnostics", [])
    if not isinstance(diags, list):
        chk.fail("diagnostics", "an array of tables ([[diagnostics]])", diags)
    spec["diagnostics"] = [_diag.check_diagnostic(chk, f"diagnostics[{i}]", d, kind) for i, d in enumerate(diags)]
    names = [d["name"] for d in spec["diagnostics"]]
    for key, mod in (("claims", _claims), ("panels", _panels)):
        items = raw.get(key, [])
        if not isinstance(items, list):
            chk.fail(key, f"an array of tables ([[{key}]])", items)
        spec[key] = [mod.check(chk, f"{key}[{i}]", c, names, kind) for i, c in enumerate(items)]
    for p in (None, "quick", "paper"):  # the spec as written, then each preset
        grids = resolve_preset(spec, p, where)["grid"]
        for key in ("claims", "panels"):
            for i, c in enumerate(spec[key]):
                for g in ("grid", "width_grid"):
                    if c.get(g) is not None and c[g] >= len(grids):
                        chk.fail(f"{key}[{i}].{g}", f"the index of one of the {len(grids)} [[grid]] products"
                                 + (f" (preset {p})" if p else ""), c[g])  # every preset checked now: one line before anything runs
    check_cells(spec, where, kind)
    return spec


def preset_cells(spec: dict, preset: str, where: str = "<spec>") -> list:
    """The cells ``preset`` runs, as the runner computes them (:func:`minilplr.experiments.study.run.expand`):
    ``[(name, settings, grids)]``, before their pilots (the step still ``eta`` or ``c_beta0``)."""
    from .run import expand

    r = resolve_preset(spec, preset, where)
    config = dict(kind=spec["study"]["kind"], model=r["model"], run=r["run"], grid=r["grid"],
                  data=spec["study"].get("data"), data_sha256=None)
    return [(name, {k: v for k, v in s.items() if k != "backend"}, grids)
            for name, s, grids in expand(config, backend="numpy")]


def _selection(c: dict) -> list:
    """``[(grid, x)]``: the products a claim or panel reads (``None``: all) and the setting that must vary there."""
    if c["kind"] == "closing_width":
        return [(c["width_grid"], c["x"]), (c["grid"], c["per"])]
    if c["kind"] == "heatmap":
        return [(c.get("grid"), c["x"]), (c.get("grid"), c["y"])]
    return [(c.get("grid"), c.get("x"))]


def check_cells(spec: dict, where: str, kind) -> None:
    """What needs each preset's cells, before anything runs (one line, :class:`SpecError`).

    * every cell of every preset passes the kind's own check (:attr:`CellKind.check`: e.g. its model fits in
      memory, a residual network's depth is even, an SGD batch is at most ``n``);
    * every claim's and panel's ``where`` matches a cell of some preset (in its ``grid``), and its ``x`` (a
      heat map's ``x`` and ``y``, a closing-width's ``x`` on ``width_grid`` and ``per`` on ``grid``) takes at
      least two values among those cells in some preset.  A preset whose cells cannot decide a claim the other
      preset can (a quick grid too small to fit) still runs: its row says *untestable*.
    """
    check = kind.function("check") if kind.check else None
    tables = {}
    for p in PRESETS:
        cells = preset_cells(spec, p, where)
        over = spec["presets"].get(p, {})
        gkey = f"presets.{p}.grid" if "grid" in over else "grid"
        ngrid = len(over.get("grid", spec["grid"]))
        if check is not None:
            for name, s, grids in cells:
                g = gkey if ngrid == 1 else f"{gkey}[{grids[0]}]"
                check(dict(s), _Checker(f"{where}: {g}, cell {name} (preset {p})"))
        tables[p] = [dict(settings=s, grids=grids) for _, s, grids in cells]
    chk = _Checker(where)
    for key in ("claims", "panels"):
        for i, c in enumerate(spec[key]):
            for grid, x in _selection(c):
                shown = f" in grid {grid}" if grid is not None else ""
                matched = {p: [r for r in t if all(r["settings"].get(k) == v for k, v in c["where"].items())
                               and (grid is None or grid in r["grids"])] for p, t in tables.items()}
                if not any(matched.values()):
                    chk.fail(f"{key}[{i}].where", f"settings that match a cell{shown} of the preset quick or paper",
                             c["where"])
                if x is None:
                    continue
                counts = {p: len({repr(r["settings"].get(x)) for r in rows if x in r["settings"]})
                          for p, rows in matched.items()}
                if max(counts.values()) < 2:
                    field = "per" if (c["kind"] == "closing_width" and x == c["per"]) else \
                        ("y" if c["kind"] == "heatmap" and x == c["y"] and x != c["x"] else "x")
                    chk.fail(f"{key}[{i}].{field}", f"a setting the selected cells{shown} vary (an axis of the "
                             "grid), in preset quick or paper", f"{x} (one value: "
                             + ", ".join(f"{p} {counts[p] and matched[p][0]['settings'].get(x)!r}" for p in PRESETS)
                             + ")")


def _settings(chk: _Checker, key: str, table, kind, run: bool) -> dict:
    """[model] or [run]: fixed settings the kind knows, each of its type."""
    chk.table(key, table)
    out = {}
    for k, v in table.items():
        if run != (k in RUN_KEYS) or k not in kind.keys:
            allowed = [x for x in kind.keys if (x in RUN_KEYS) == run and x != "data"]
            chk.fail(f"{key}.{k}", f"one of the keys {', '.join(allowed)}", "an unknown key")
        typ, choices = kind.keys[k]
        out[k] = check_value(chk, f"{key}.{k}", v, typ, choices)
    return out


def _grid(chk: _Checker, key: str, grid, kind) -> list:
    """[grid] (one product) or [[grid]] (a union of products): each ``{axis: [values]}``."""
    products = grid if isinstance(grid, list) else [grid]
    if not products:
        chk.fail(key, "a table of axes, or a non-empty array of them", grid)
    out = []
    for i, g in enumerate(products):
        k = key if not isinstance(grid, list) else f"{key}[{i}]"
        chk.table(k, g)
        axes = {}
        for a, values in g.items():
            if a not in kind.keys or a == "data":
                chk.fail(f"{k}.{a}", f"an axis among the kind's keys {', '.join(x for x in kind.keys if x != 'data')}",
                         "an unknown key")
            typ, choices = kind.keys[a]
            axes[a] = check_axis(chk, f"{k}.{a}", values, typ, choices)
        out.append(axes)
    return out


#: Training images per digit 0-9 in MNIST's train set (what ``data_source = "download"`` draws from).
MNIST_TRAIN_PER_DIGIT = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
#: Per digit in the offline subset shipped with the package (:func:`minilplr.data.offline.load_offline_mnist`).
OFFLINE_PER_DIGIT = 500


def _check_task(chk: _Checker, gkey: str, model: dict, axes: dict, kind, model_key) -> None:
    """The binary-MNIST settings a cell would only reject once running: ``digits`` two distinct digits 0-9,
    ``n`` even (``n/2`` per digit) and no larger than the pool the ``data_source`` draws from (``auto`` may fall
    back to the offline subset, so it is held to that).  Skipped for a kind without these keys or with a user's data.
    ``model_key(key)``: the key path a [model] setting is named by (the preset's override or the spec's [model])."""
    if "digits" not in kind.keys or "n" not in kind.keys:
        return

    def values(key):
        if key in axes:
            return [(f"{gkey}.{key}" if len(axes[key]) == 1 else f"{gkey}.{key}[{j}]", v)
                    for j, v in enumerate(axes[key])]
        if key in model:
            return [(model_key(key), model[key])]
        return [(f"model.{key}", kind.defaults.get(key))]

    digit_sets = []
    for key, d in values("digits"):
        if d is None:
            continue
        if not (isinstance(d, list) and len(d) == 2 and all(isinstance(x, int) and 0 <= x <= 9 for x in d)
                and d[0] != d[1]):
            chk.fail(key, "two distinct digits 0-9, e.g. [0, 1] (the binary MNIST task)", d)
        digit_sets.append(d)
    sources = [v for _, v in values("data_source")]
    for key, n in values("n"):
        if n is None:
            continue
        if n % 2:
            chk.fail(key, "an even number of samples (n/2 per digit)", n)
        for src in sources:
            for d in digit_sets or [[0, 1]]:
                if src == "download":
                    cap = 2 * min(MNIST_TRAIN_PER_DIGIT[d[0]], MNIST_TRAIN_PER_DIGIT[d[1]])
                    what = f"MNIST's train set has {cap // 2} of the rarer of digits {d[0]}, {d[1]}"
                else:
                    cap = 2 * OFFLINE_PER_DIGIT
                    what = (f"data_source {src or 'auto'!r} draws from {'or may fall back to ' if src != 'offline' else ''}"
                            f"the offline subset, {OFFLINE_PER_DIGIT} per digit"
                            + ("; data_source = \"download\" allows more" if src != "offline" else ""))
                if n > cap:
                    chk.fail(key, f"at most {cap} samples ({what})", n)


def resolve_preset(spec: dict, preset: str, where: str = "<spec>") -> dict:
    """The preset's complete study: ``{"model", "run", "grid"}`` with the preset's overrides applied, checked.

    ``preset=None``: the spec as written, without overrides.

    Checks what needs the whole picture: exactly one step size (``eta`` or
    ``c_beta0``) in [model] or on an axis, the kind's required keys present.
    An axis overrides a [model] or [run] setting of the same key in its own
    product (the setting is the default of the products that do not vary it).
    """
    from . import kinds as _kinds

    chk = _Checker(where)
    if preset is not None and preset not in PRESETS:
        chk.fail("preset", f"one of {', '.join(PRESETS)}", preset)
    over = spec["presets"].get(preset, {}) if preset is not None else {}
    model = dict(spec["model"], **over.get("model", {}))
    run = dict(spec["run"], **over.get("run", {}))
    grid = over.get("grid", spec["grid"])
    kind = _kinds.get_kind(spec["study"]["kind"], chk, "study.kind")
    gkey = f"presets.{preset}.grid" if "grid" in over else "grid"
    for i, axes in enumerate(grid):
        k = gkey if len(grid) == 1 else f"{gkey}[{i}]"
        fixed = set(model) | set(run) | set(axes)
        steps = [s for s in STEP_KEYS if s in fixed]
        if kind.step_size and len(steps) != 1:
            chk.fail(f"{k}", "exactly one step size: eta or c_beta0 (in [model] or as an axis)",
                     " and ".join(steps) or "none")
        if not spec["study"].get("data"):
            _check_task(chk, k, model, axes, kind, lambda key: (f"presets.{preset}.model.{key}"
                                                                 if key in over.get("model", {}) else f"model.{key}"))
        missing = [r for r in kind.required if r not in fixed]
        if missing:
            chk.fail(f"{k}.{missing[0]}", f"a value in [model], [run] or the grid (the kind {kind.name!r} needs it)",
                     "nothing")
    return {"model": model, "run": run, "grid": grid}
