#!/usr/bin/env python
"""Upgrade results written by an older minilplr to the current layout and hash, losing nothing.

Example::

    python scripts/upgrade_results.py --preset paper results/

An older minilplr wrote one folder per experiment directly under ``--out``
(``results/fig1_linear_convergence/``, ``results/runs/``), and its store
units (``minilplr-unit/1``) recorded the SHA-256 of the arrays file only.
The current one reads ``<out>/<configuration>/<experiment>/`` and its units
(:mod:`minilplr.store`, ``minilplr-unit/2``) are tied whole by hash, the
JSON's own numbers included; it refuses the older units (recomputing them).

For every file in the older folders (:func:`minilplr.experiments.output.older_layout`):

- a unit whose arrays file has the size and SHA-256 its JSON records is
  *verified*: it is re-sealed with the current scheme (the same arrays
  file, byte for byte; the JSON's tree unchanged, now with the hash of its
  content) and moved to the same place in the configuration folder that
  ``--preset``/``--seed``/``--data`` name (:func:`minilplr.experiments.runner.configuration`),
  which gets its ``configuration.json`` mark;
- a unit that fails verification (arrays missing, truncated or altered, JSON
  unreadable, a format we do not know) stays where it is, named in one line;
- any other file (figures, an old ``report.json``) is moved along with its
  folder; store temporaries and files moved aside as damaged stay.
- an experiment folder whose ``results.json`` records another configuration
  than the one asked (``--preset paper`` results upgraded as ``--preset
  quick``) stays where it is, named in one line: in the asked folder the next
  run would recompute it in place.  (The shared ``runs/`` cache is moved
  whatever its runs' configurations: its files are named by their runs' own
  hashes, never reused for another run, never overwritten.)

Nothing is deleted: a move is a hard link at the new place, then the old
name removed, so a kill at any moment leaves every file readable at its old
place or its new one, and running the script again finishes the job.  A
file whose new place is taken is left where it is, named in one line.

What cannot be verified: the older hash did not cover the JSON, so a number
in an older ``results.json`` edited since it was written cannot be detected
now.  Re-sealing certifies the numbers *as found*; the script says so once.

Exit status: 0 done (every unit verified and moved); 1 some units or files
were left where they are (each named above); 2 a usage error (one line),
or another run holds ``--out``.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

from minilplr.experiments import EXPERIMENTS  # noqa: E402
from minilplr.experiments.output import (OutputRefused, claim_configuration, configuration_folder,  # noqa: E402
                                         lock_output, older_layout, saved_configurations, LOCK_NAME)
from minilplr.experiments.runner import configuration, experiment_config, load_experiment  # noqa: E402
from scripts.cli import OneLineParser, seed_argument  # noqa: E402
from minilplr.store import (FORMAT, Damaged, atomic_write_bytes, config_hash, content_hash, is_temporary,  # noqa: E402
                            load_unit)

#: The older unit format this script re-seals: its JSON recorded the arrays file's hash, not its own.
OLD_FORMAT = "minilplr-unit/1"
#: Said once per run (the older hash could not have detected an edited JSON number).
UNVERIFIABLE = ("note: the numbers stored in the older JSON files themselves could not be verified (the older "
                "format's hash covered only the .npz arrays); they are re-sealed as found")


class Unverified(Exception):
    """An older unit whose arrays do not match its JSON's record (or that is not a unit we know)."""


def _arrays_keys(tree, keys):
    """Every ``{"__array__": key}`` reference in a unit's JSON tree, into the set ``keys``."""
    if isinstance(tree, dict):
        if set(tree) == {"__array__"}:
            keys.add(tree["__array__"])
        else:
            for v in tree.values():
                _arrays_keys(v, keys)
    elif isinstance(tree, list):
        for v in tree:
            _arrays_keys(v, keys)
    return keys


def resealed(js: Path) -> bytes:
    """The current-format JSON text for the older unit ``js`` (``<name>.json`` beside ``<name>.npz``).

    Verifies the older unit first: its format, the arrays file's size and
    SHA-256 against the JSON's record, and that the arrays file opens without
    pickles and holds every array the JSON refers to.

    Raises
    ------
    Unverified
        Any of these checks fails; the message says which.
    """
    try:
        head = json.loads(js.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise Unverified(f"not valid JSON ({exc})") from None
    if not isinstance(head, dict) or head.get("format") != OLD_FORMAT:
        fmt = head.get("format") if isinstance(head, dict) else None
        raise Unverified(f"not a {OLD_FORMAT} unit (format {fmt!r}): nothing to verify it against")
    want, data = head.get("arrays"), head.get("data")
    if not isinstance(want, dict) or data is None:
        raise Unverified("no record of its arrays file")
    npz = js.with_name(str(want.get("file")))
    if npz != js.with_suffix(".npz"):
        raise Unverified(f"its JSON names the arrays file {want.get('file')!r}, expected {js.with_suffix('.npz').name}")
    try:
        blob = npz.read_bytes()
    except OSError:
        raise Unverified(f"the arrays file {npz.name} is missing") from None
    if len(blob) != want.get("bytes") or hashlib.sha256(blob).hexdigest() != want.get("sha256"):
        raise Unverified(f"{npz.name}: {len(blob)} bytes whose SHA-256 differs from the one its JSON records "
                         "(truncated, altered, or written by another run)")
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            have = set(z.files)
    except Exception as exc:
        raise Unverified(f"{npz.name}: unreadable arrays ({exc})") from None
    missing = sorted(_arrays_keys(data, set()) - have)
    if missing:
        raise Unverified(f"{npz.name}: lacks the arrays {', '.join(missing[:3])} its JSON refers to")
    body = {"format": FORMAT, "arrays": want, "data": data}
    new = {"format": FORMAT, "sha256": content_hash(body), "arrays": want, "data": data}
    return json.dumps(new, indent=1, allow_nan=True).encode()


def _move(src: Path, dst: Path):
    """``src`` to ``dst`` without a moment where neither exists: a hard link, then the old name removed."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.link(src, dst)
    os.unlink(src)


def upgrade(out, conf: dict, log=print) -> dict:
    """Upgrade the older folders in ``out`` into the configuration folder of ``conf``; the counts.

    ``conf``: :func:`minilplr.experiments.runner.configuration`'s dict.
    Returns ``{"units", "files", "left", "folders", "target"}``: units
    re-sealed and moved, other files moved, units or files left in place
    (each named in a line to ``log``), the older folders found, and the
    configuration folder.
    """
    out = Path(out)
    target = configuration_folder(out, conf["name"])
    folders = older_layout(out, EXPERIMENTS)
    counts = {"units": 0, "files": 0, "left": 0, "folders": folders, "target": target}
    if not folders:
        return counts
    overrides = {"seed": conf.get("seed"), "data_source": conf.get("data")}
    mismatched = [n for n in folders if _other_configuration(out / n, n, conf["preset"], overrides, log)]
    counts["left"] += len(mismatched)
    folders = [n for n in folders if n not in mismatched]
    if not folders:
        return counts
    claim_configuration(target, conf)
    log(UNVERIFIABLE)
    for name in folders:
        for root, dirs, files in os.walk(out / name):
            dirs.sort()
            root = Path(root)
            rel = root.relative_to(out)
            files = sorted(files)
            units = {f[:-5] for f in files if f.endswith(".json") and _is_unit(root / f)}
            for f in files:
                src = root / f
                if is_temporary(f) or ".damaged-" in f or f == LOCK_NAME:
                    continue  # a killed run's leftover, or already set aside: not results to carry over
                stem, ext = os.path.splitext(f)
                if stem in units and ext == ".npz":
                    continue  # moves with its JSON
                dst = target / rel / f
                if stem in units:
                    counts["left" if not _move_unit(src, dst, log) else "units"] += 1
                    continue
                if dst.exists():
                    log(f"{src}: left where it is ({dst} exists already)")
                    counts["left"] += 1
                    continue
                _move(src, dst)
                counts["files"] += 1
        for root, _dirs, _files in os.walk(out / name, topdown=False):  # the folders the moves emptied, deepest first
            if not os.listdir(root):
                os.rmdir(root)
    return counts


def _other_configuration(folder: Path, name: str, preset: str, overrides: dict, log) -> bool:
    """Whether the experiment folder ``folder`` holds results of another configuration than the one asked (one line).

    Moved into the asked configuration's folder, they would be recomputed in
    place (and so lost) by the next run: they stay where they are.  The
    shared ``runs`` folder and a folder without readable results are not
    judged here (their units are verified one by one).
    """
    if name not in EXPERIMENTS:
        return False
    try:
        saved = json.loads((folder / "results.json").read_text())["data"]
        saved_hash, saved_cfg = saved["config_hash"], saved.get("config", {})
    except (OSError, ValueError, KeyError, TypeError):
        return False
    asked = experiment_config(load_experiment(name), preset, overrides)
    if saved_hash == config_hash(asked):
        return False
    diff = "; ".join(f"{k}: saved {saved_cfg.get(k)!r}, asked {asked.get(k)!r}" for k in sorted(asked)
                     if saved_cfg.get(k) != asked.get(k))  # every difference whole: a cut one names nothing
    log(f"{folder}: left where it is: its results are of another configuration ({diff or 'their hash differs'}); "
        "pass the --preset, --seed and --data they were run with")
    return True


def unreadable_results(out: Path, folders) -> str | None:
    """One line naming the first older folder whose ``results.json`` is not a readable JSON object, or None.

    Checked before anything moves: such a file (a run killed while writing
    it, a truncated copy) would be carried into the configuration folder as
    an ordinary file, and only the next ``run_all.py`` would find it damaged.
    """
    for name in folders:
        js = Path(out) / name / "results.json"
        if not js.exists():
            continue
        try:
            head = json.loads(js.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            why = str(exc).splitlines()[0] if str(exc) else ""
            return f"{js}: expected a readable results.json (JSON), got {type(exc).__name__}: {why}"
        if not isinstance(head, dict):
            return f"{js}: expected a readable results.json (a JSON object), got a {type(head).__name__}"
    return None


def _is_unit(js: Path) -> bool:
    """Whether ``js`` looks like a store unit's JSON (it has a ``format`` key or an arrays file beside it)."""
    if js.with_suffix(".npz").exists():
        return True
    try:
        head = json.loads(js.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(head, dict) and str(head.get("format", "")).startswith("minilplr-unit/")


def _move_unit(js: Path, dst_js: Path, log) -> bool:
    """Verify, re-seal and move one older unit (its JSON ``js``) to ``dst_js``; ``False`` (and one line) if left."""
    npz, dst_npz = js.with_suffix(".npz"), dst_js.with_suffix(".npz")
    try:
        text = resealed(js)
    except Unverified as exc:
        if _current(js):  # already in the current format (written by a newer run into an older folder): move it
            text = js.read_bytes()
        else:
            log(f"{js}: not verified, left where it is: {exc}")
            return False
    if dst_js.exists() or dst_npz.exists():
        if _same_unit(dst_js, npz):  # an earlier upgrade was killed after writing here: finish it
            os.unlink(js)
            os.unlink(npz)
            log(f"{js}: moved to {dst_js} (finishing an interrupted upgrade)")
            return True
        log(f"{js}: left where it is ({dst_js} or {dst_npz.name} exists already)")
        return False
    dst_js.parent.mkdir(parents=True, exist_ok=True)
    os.link(npz, dst_npz)  # the same bytes, the same file
    atomic_write_bytes(dst_js, text)  # the new unit is complete from here on
    try:
        load_unit(dst_js.parent, dst_js.stem)  # the current reader accepts it
    except Damaged as exc:  # cannot happen unless the store changed: undo, keep the older unit
        os.unlink(dst_js)
        os.unlink(dst_npz)
        log(f"{js}: not moved, the current reader refuses the re-sealed copy ({exc})")
        return False
    os.unlink(js)
    os.unlink(npz)
    log(f"{js}: verified, re-sealed, moved to {dst_js}")
    return True


def _current(js: Path) -> bool:
    """Whether ``js`` is a current-format unit that verifies."""
    try:
        return load_unit(js.parent, js.stem) is not None
    except Damaged:
        return False


def _same_unit(dst_js: Path, npz: Path) -> bool:
    """Whether ``dst_js`` is a verified current unit whose arrays file holds the bytes of ``npz``."""
    try:
        if load_unit(dst_js.parent, dst_js.stem) is None:
            return False
        return dst_js.with_suffix(".npz").read_bytes() == npz.read_bytes()
    except (Damaged, OSError):
        return False


def build_parser():
    ap = OneLineParser(prog="upgrade_results.py",
                 description="Verify results of an older minilplr (one folder per experiment under OUT), re-seal "
                             "them with the current hash and move them into the configuration folder the current "
                             "run_all.py reads. Nothing is deleted.")
    ap.add_argument("out", help="the --out folder the older run_all.py wrote")
    ap.add_argument("--preset", required=True, choices=["quick", "paper"],
                    help="the preset the older results were run with")
    ap.add_argument("--seed", type=seed_argument, default=None, help="the --seed they were run with, if any")
    ap.add_argument("--data", default=None, choices=["auto", "download", "offline"],
                    help="the --data they were run with, if any")
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    if not out.is_dir():
        what = "does not exist" if not out.exists() else "is not a folder"
        print(f"upgrade_results.py: out: expected a folder of results, got {args.out!r}, which {what}",
              file=sys.stderr)
        return 2
    conf = configuration(args.preset, {"seed": args.seed, "data_source": args.data})
    counts = {"folders": older_layout(out, EXPERIMENTS)}  # read before locking: a folder refused keeps no lock file
    bad = unreadable_results(out, counts["folders"])
    if bad:
        print(f"upgrade_results.py: {bad}; nothing moved", file=sys.stderr)
        return 2
    if counts["folders"]:
        try:
            with lock_output(out):
                counts = upgrade(out, conf)
        except OutputRefused as exc:
            print(f"upgrade_results.py: {exc}", file=sys.stderr)
            return 2
    if not counts["folders"] and saved_configurations(out):
        print(f"{args.out}: no folders of an older minilplr left (already upgraded: {', '.join(saved_configurations(out))})")
        return 0
    if not counts["folders"]:
        print(f"upgrade_results.py: out: expected folders of an older minilplr (one per experiment) in {args.out!r}, "
              "found none: nothing to upgrade", file=sys.stderr)
        return 2
    print(f"upgraded {', '.join(counts['folders'])}: {counts['units']} unit(s) verified, re-sealed and moved, "
          f"{counts['files']} other file(s) moved into {counts['target']}; {counts['left']} left where they were"
          + (" (named above)" if counts["left"] else "") + "; nothing deleted")
    return 1 if counts["left"] else 0


if __name__ == "__main__":
    sys.exit(main())
