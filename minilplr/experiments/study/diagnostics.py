r"""The diagnostics a study records: one number per cell, computed from the cell's saved result only.

Each entry of :data:`REGISTRY` is a function ``(result, cell) -> float`` (NaN
when the result cannot say) and its meaning.  The certificate's quantities
(THEORY.md, "The v3 PL certificate"; :func:`~minilplr.theory.certificate.run_certificate`):

* ``lam0`` — ``λ₀ = λ_min(Θ_0)``;
* ``L_theta`` — ``L̂_Θ = max_t ‖Θ_t − Θ_0‖₂/‖θ_t − θ_0‖``, a lower estimate of the NTK's Lipschitz constant;
* ``r`` — ``max_t ‖θ_t − θ_0‖``, the drift;
* ``rho_star`` — ``ρ* = λ₀/L̂_Θ``, the largest radius the measurements could certify;
* ``failure_factor`` — ``L̂_Θ r/λ₀``: the certificate ``μ = (λ₀ − L̂_Θ r)/n`` is positive iff it is below 1;
* ``mu_cert`` — ``(λ₀ − L̂_Θ r)/n``;
* ``lam_ratio_min``, ``lam_ratio_final`` — ``min_t λ_min(Θ_t)/λ₀`` and its last value, along the path;
* ``final_loss``, ``loss_decrease`` (``L_0/L_T``), ``beta0`` (``β_0``), ``eta_beta0`` (``η β_0``).

A kind may also declare its own named *measures* (``CellKind.measures``,
computed from a saved cell by ``CellKind.summarise``: e.g. ``sgd_noise``'s
``plateau`` or ``architecture``'s ``mu0``); a spec records one by its name
alone, ``[[diagnostics]] name = "plateau"``, and a name the kind does not
declare is refused.  A kind's measure takes precedence over a registry entry of
the same name the kind does not provide.

A spec may also record a number of its kind's own result by a dotted path:
``[[diagnostics]] name = "acc", key = "metrics.test_accuracy"``.

NaN or an error (:func:`measure`), decided on purpose:

* a cell whose result *lacks* a number — a diverged run with no certificate,
  a path the result does not hold, a measure the kind's summary leaves out or
  sets to NaN — records **NaN** (a claim over it is then *untestable*, naming
  how many cells lack it);
* a kind's summary function that *raises* is a bug in that summary (its
  contract: a cell that lacks a number gives NaN or leaves the name out, never
  an exception), so :func:`measure` raises :class:`SummaryError` naming the
  kind, the cell and the exception — never a silent NaN.  So does a summary
  that returns something other than a dict, or a non-number for a measure.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["REGISTRY", "MISSING", "SummaryError", "check_diagnostic", "measure"]

#: What reading a field a result lacks raises (a missing key or index, ``None`` where a table was): NaN.
MISSING = (KeyError, TypeError, ValueError, IndexError)


class SummaryError(RuntimeError):
    """A kind's summary function raised (or returned no dict): a bug in the summary, not a NaN."""


def _cert(key):
    return lambda res, cell: float(res["certificate"][key])


def _failure_factor(res, cell) -> float:
    c = res["certificate"]
    lam0 = float(c["lam0"])
    return float(c["L_theta"]) * float(c["r"]) / lam0 if math.isfinite(lam0) and lam0 > 0 else float("nan")


def _lam_ratio(which):
    def f(res, cell):
        lam = np.asarray(res["diag"]["lam_min"], float)
        if lam.size == 0 or not np.all(np.isfinite(lam)) or not lam[0] > 0:
            return float("nan")
        return float(np.min(lam) / lam[0]) if which == "min" else float(lam[-1] / lam[0])
    return f


def _loss(which):
    def f(res, cell):
        loss = np.asarray(res["loss"], float)
        if loss.size == 0:
            return float("nan")
        return float(loss[-1]) if which == "final" else (float(loss[0] / loss[-1]) if loss[-1] > 0 else float("nan"))
    return f


def _beta0(res, cell) -> float:
    b = res.get("beta0")
    return float(b["beta"]) if isinstance(b, dict) and "beta" in b else float("nan")


REGISTRY = {
    "lam0": (_cert("lam0"), "λ₀ = λ_min(Θ_0)"),
    "L_theta": (_cert("L_theta"), "L̂_Θ, the NTK's Lipschitz estimate along the path"),
    "r": (_cert("r"), "r = max_t ‖θ_t − θ_0‖"),
    "rho_star": (_cert("radius_max"), "ρ* = λ₀/L̂_Θ"),
    "failure_factor": (_failure_factor, "L̂_Θ r/λ₀ (the certificate is positive iff < 1)"),
    "mu_cert": (_cert("mu_cert"), "μ_cert = (λ₀ − L̂_Θ r)/n"),
    "lam_ratio_min": (_lam_ratio("min"), "min_t λ_min(Θ_t)/λ₀"),
    "lam_ratio_final": (_lam_ratio("final"), "λ_min(Θ_T)/λ₀"),
    "final_loss": (_loss("final"), "L_T"),
    "loss_decrease": (_loss("decrease"), "L_0/L_T"),
    "beta0": (_beta0, "β_0 = ‖∇²L(θ_0)‖₂"),
    "eta_beta0": (lambda res, cell: float(res["lr"]) * _beta0(res, cell), "η β_0"),
}


def check_diagnostic(chk, key: str, d, kind) -> dict:
    """One ``[[diagnostics]]`` entry: one of the kind's measures, a registry name the kind provides, or a name
    with a dotted ``key``.  A measure's entry is ``{"name", "measure": <kind name>}`` (where its number comes from)."""
    chk.table(key, d, ("name", "key"), required=("name",))
    name = chk.string(f"{key}.name", d["name"])
    if "key" in d:
        chk.string(f"{key}.key", d["key"])
        if name in REGISTRY or name in kind.measures:
            chk.fail(f"{key}.name", "a name not in the registry or the kind's measures for a diagnostic read by key",
                     name)
        return {"name": name, "key": d["key"]}
    if name in kind.measures:
        return {"name": name, "measure": kind.name}
    if kind.measures and name not in kind.provides:
        chk.fail(f"{key}.name", f"one of the kind {kind.name!r}'s measures ({', '.join(kind.measures)}) or a name "
                 "with key = 'dotted.path'", name)
    if name not in REGISTRY:
        chk.fail(f"{key}.name", f"a registered diagnostic ({', '.join(REGISTRY)}) or a name with key = "
                 "'dotted.path'", name)
    if name not in kind.provides:
        chk.fail(f"{key}.name", f"a diagnostic the kind {kind.name!r} provides ({', '.join(kind.provides) or 'none'})",
                 name)
    return {"name": name}


def _by_path(res, path: str) -> float:
    v = res
    for part in path.split("."):
        v = v[part]
    return float(v)


def _summary(kind_name: str, res: dict, cell: dict) -> dict:
    """The kind's summary of one cell, ``{name: value}``; :class:`SummaryError` if it raises or returns no dict."""
    from .kinds import get_kind

    kind = get_kind(kind_name)
    try:
        got = kind.function("summarise")(res, cell)
    except Exception as exc:  # noqa: BLE001 -- any exception of a summary is a bug: said, with its cause chained
        raise SummaryError(f"the summary of the kind {kind_name!r} ({kind.summarise}) raised "
                           f"{type(exc).__name__}: {exc} on the cell {cell}: a bug in the summary (a cell that "
                           "lacks a number gives NaN or leaves the name out, it does not raise)") from exc
    if not isinstance(got, dict):
        raise SummaryError(f"the summary of the kind {kind_name!r} ({kind.summarise}): expected a dict "
                           f"{{name: number}}, got {type(got).__name__} on the cell {cell}")
    return got


def measure(diags: list, res: dict, cell: dict) -> dict:
    """``{name: float}`` of every diagnostic on one cell's result.

    NaN where the result lacks the number (a field or path it does not hold:
    :data:`MISSING`; a measure the summary leaves out).  The kind's measures
    come from one call of its summary function per cell; if that raises, or a
    measure it gives is not a number, :class:`SummaryError` (a bug, never a NaN)."""
    out, own = {}, {}
    for d in diags:
        if "measure" in d and d["measure"] not in own:
            own[d["measure"]] = _summary(d["measure"], res, cell)
    for d in diags:
        if "measure" in d:
            v = own[d["measure"]].get(d["name"], float("nan"))  # left out: this cell has no such number
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise SummaryError(f"the summary of the kind {d['measure']!r}: expected a number for "
                                   f"{d['name']!r}, got {type(v).__name__} {v!r} on the cell {cell}")
        else:
            try:
                v = _by_path(res, d["key"]) if "key" in d else REGISTRY[d["name"]][0](res, cell)
            except MISSING:
                v = float("nan")
        out[d["name"]] = float(v)
    return out
