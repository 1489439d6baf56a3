r"""The cell kinds a study may run: a registry of pure cell functions (config dict -> JSON-able dict).

A :class:`CellKind` says what a study's spec needs to know about a cell
function: the configuration keys it reads (each with its type, so a spec is
checked before anything runs), the defaults of the keys a spec may leave
out, and, for a step size given as ``c_beta0 = c/β_0``, the *pilot* that
measures ``β_0`` once per model.  Registered here:

``gd``
    :func:`gd_cell`: an MLP ``D -> H x (depth-1) -> K``, full-batch GD on
    ``L = ‖f − y‖²/(2n)``, on binary MNIST or on the user's own ``.npz``
    (``[study] data``), with the NTK ``Θ_t`` every ``diag_every`` steps and
    v3's certificate (:func:`~minilplr.theory.certificate.run_certificate`).
``lplr_map``
    the LPLR map's own pilot and cell
    (:func:`minilplr.experiments.lplr_map.cells.pilot_cell`,
    :func:`~minilplr.experiments.lplr_map.cells.map_cell`): a spec over its
    keys computes exactly the map's cells.

Other packages register theirs by defining ``CELL_KIND = CellKind(...)`` at
module level; :data:`LAZY` names where each is found, and the module is
imported only when a spec asks for its kind: ``sgd_noise``
(:mod:`minilplr.experiments.sgd_noise`, constant-step SGD cells) and
``architecture`` (:mod:`minilplr.experiments.architecture`, one network per
cell).  Such a kind may declare its own named *measures*, computed from a
saved cell by its summary function (``measures``, ``summarise``), which a
spec records by name like the registry's diagnostics (:mod:`.diagnostics`).
"""
from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field

import numpy as np

__all__ = ["TASK_INITS", "mlp_parameters", "check_model_fits", "task_check", "CellKind", "KINDS", "LAZY",
           "register_kind", "get_kind", "gd_cell", "gd_pilot"]

from ...nn.init import INITIALISERS

#: The initialisers a task kind may name: the model's own list (:data:`minilplr.nn.init.INITIALISERS`) less
#: ``gaussian``, which needs the exponent ``p`` that no task kind passes to :func:`~minilplr.nn.models.mlp`.
TASK_INITS = tuple(i for i in INITIALISERS if i != "gaussian")
#: Keys every MLP-on-MNIST kind shares: ``(type, choices)`` as :mod:`.spec` checks them.
_TASK = {
    "width": ("pos_int", None), "depth": ("pos_int", None), "n": ("pos_int", None),
    "digits": ("int_list", None), "preprocess": ("str", ("unit", "standardize", "raw")),
    "init": ("str", TASK_INITS), "init_factor": ("pos_real", None), "seed": ("nonneg_int", None),
    "dtype": ("str", ("float32", "float64")), "hessian_iters": ("nonneg_int", None),
    "data_source": ("str", ("auto", "download", "offline")),
    "steps": ("pos_int", None), "diag_every": ("pos_int", None),
    "eta": ("pos_real", None), "c_beta0": ("pos_real", None),
}
_TASK_DEFAULTS = dict(digits=[0, 1], data_source=None, preprocess="unit", init="he", init_factor=None, seed=0,
                      dtype="float32", hessian_iters=20)
#: The certificate's diagnostics (:mod:`.diagnostics`), read from a cell's ``certificate`` and ``diag``.
_CERT_DIAGNOSTICS = ("lam0", "L_theta", "r", "rho_star", "failure_factor", "mu_cert", "lam_ratio_min",
                     "lam_ratio_final", "final_loss", "loss_decrease", "beta0", "eta_beta0")


@dataclass(frozen=True)
class CellKind:
    """What a spec needs to know about a cell function.

    Attributes
    ----------
    name : str
    cell : str
        ``"module:function"``, the cell function ``(config: dict) -> dict``
        (host data), importable by name so that sweep workers can run it.
    keys : dict
        ``{key: (type, choices)}``: every configuration key a spec may set
        (types of :data:`minilplr.experiments.study.spec.TYPES`; choices a
        tuple of allowed values or None).  ``"eta"``/``"c_beta0"`` are the
        step size; the cell receives ``lr`` (and ``beta0`` where it has a pilot).
    defaults : dict
        Values of keys a spec leaves out (``None`` stays ``None``).
    required : tuple
        Keys the spec must set ([model], [run] or an axis).
    pilot : str or None
        ``"module:function"`` measuring ``β_0`` for one model: ``(config) ->
        dict`` with ``"beta"``; needed for ``c_beta0``.
    pilot_keys : tuple
        The keys of a cell's configuration its pilot reads (one pilot per distinct value).
    pilot_always : bool
        The cell takes ``beta0`` (its pilot's dict) even when the step is ``eta``.
    beta_keys : tuple
        The pilot's fields a cell receives as ``beta0`` (all of them if empty).
    step_size : bool
        The kind takes a step size (exactly one of ``eta``, ``c_beta0``).
    provides : tuple
        The registry diagnostics its results carry (:mod:`.diagnostics`).
    measures : dict
        ``{name: meaning}``: the kind's own named numbers of one cell, which a
        spec records as ``[[diagnostics]] name = "<name>"`` (a name the kind
        does not list is refused before anything runs).
    summarise : str or None
        ``"module:function"`` ``(result, cell) -> {name: float}``: computes
        every one of :attr:`measures` from a cell's saved result (and its
        settings) only, once per cell; required when :attr:`measures` is not empty.
    replicates : tuple
        The settings a claim pools as repeats of one ``x`` (its seeds): the
        bootstrap resamples over them (:mod:`.claims`).
    check : str or None
        ``"module:function"`` ``(cell, chk) -> None``: the kind's own checks of
        one cell's settings (as :func:`minilplr.experiments.study.run.expand`
        gives them: defaults, [model], [run], the axis values), which the spec
        calls for every cell of every preset before anything runs; a problem is
        ``chk.fail(key, expected, got)`` or ``chk.line(message)``, one line.
    """

    name: str
    cell: str
    keys: dict
    defaults: dict = field(default_factory=dict)
    required: tuple = ()
    pilot: str | None = None
    pilot_keys: tuple = ()
    pilot_always: bool = False
    beta_keys: tuple = ()
    step_size: bool = True
    provides: tuple = ()
    measures: dict = field(default_factory=dict)
    summarise: str | None = None
    replicates: tuple = ("seed",)
    check: str | None = None

    def __post_init__(self):
        if self.measures and not self.summarise:
            raise ValueError(f"summarise: expected the 'module:function' computing the measures of the kind "
                             f"{self.name!r}, got None")
        both = sorted(set(self.measures) & set(self.provides))
        if both:
            raise ValueError(f"measures: expected names apart from the registry diagnostics the kind provides, "
                             f"got {', '.join(both)} in both")
        if not self.replicates or not all(r in self.keys for r in self.replicates if r != "seed"):
            raise ValueError(f"replicates: expected settings of the kind {self.name!r}, got {self.replicates!r}")

    def function(self, which: str = "cell"):
        """The cell (or pilot, or summarise) function itself, imported by its ``"module:function"`` name."""
        mod, fn = getattr(self, which).split(":")
        return getattr(importlib.import_module(mod), fn)


KINDS: dict = {}
#: Kinds other packages define as ``CELL_KIND``, imported on first use: ``{kind: module}``.
LAZY = {"architecture": "minilplr.experiments.architecture", "sgd_noise": "minilplr.experiments.sgd_noise"}


def register_kind(kind: CellKind) -> CellKind:
    """Add ``kind`` to :data:`KINDS` (a second kind of the same name is refused)."""
    if not isinstance(kind, CellKind):
        raise TypeError(f"kind: expected a CellKind, got {type(kind).__name__}")
    if kind.name in KINDS and KINDS[kind.name] != kind:
        raise ValueError(f"kind: expected a new name, got {kind.name!r}, already registered")
    KINDS[kind.name] = kind
    return kind


def get_kind(name, chk=None, key: str = "kind") -> CellKind:
    """The registered kind ``name`` (importing its module if it is lazy); one line naming ``key`` if unknown."""
    if isinstance(name, str) and name not in KINDS and name in LAZY:
        try:
            mod = importlib.import_module(LAZY[name])
            register_kind(mod.CELL_KIND)
        except (ImportError, AttributeError) as exc:
            msg = f"the kind {name!r} from {LAZY[name]}.CELL_KIND, which is not importable here ({exc})"
            if chk is None:
                raise ValueError(f"{key}: expected {msg}") from None
            chk.fail(key, f"a registered cell kind ({', '.join(KINDS)})", msg)
    if not isinstance(name, str) or name not in KINDS:
        expected = f"one of the cell kinds {', '.join(list(KINDS) + list(LAZY))}"
        if chk is None:
            raise ValueError(f"{key}: expected {expected}, got {name!r}")
        chk.fail(key, expected, name)
    return KINDS[name]


# --------------------------------------------------------------------------- checks before anything runs

def mlp_parameters(d_in: int, width: int, depth: int, d_out: int, batchnorm: bool = False) -> int:
    """``P`` of :func:`minilplr.nn.models.mlp` ``D -> H x (depth-1) -> K`` (weights, biases, batch norm's γ, β)."""
    sizes = [d_in] + [width] * (depth - 1) + [d_out]
    return sum((fi + 1) * fo for fi, fo in zip(sizes[:-1], sizes[1:])) + (2 * width * (depth - 1) if batchnorm else 0)


def check_model_fits(cell: dict, chk, d_in: int = 784, d_out: int = 1) -> None:
    """The cell's model must fit in memory: the check :func:`~minilplr.nn.models.mlp` makes before it allocates
    (:func:`minilplr.validate.check_fits`: the memory free here and ``$MINILPLR_MAX_BYTES``), made before anything
    runs."""
    from ...validate import check_fits

    P = mlp_parameters(d_in, cell["width"], cell["depth"], d_out, bool(cell.get("batchnorm")))
    dt = np.dtype(cell.get("dtype") or "float32")
    try:
        check_fits("width", P * dt.itemsize, f"the model's P = {P:,} {dt} parameters")
    except ValueError as exc:
        chk.line(str(exc))


@functools.lru_cache(maxsize=8)
def _data_shape(path: str) -> tuple:
    """``(D, K)`` of the user's ``.npz`` (already checked by the spec), read once for all the cells."""
    from .data import load_npz

    X, y = load_npz(path)
    return X.shape[1], y.shape[1]


def task_check(cell: dict, chk) -> None:
    """The ``gd`` and ``lplr_map`` kinds' check of one cell: its model fits in memory (``D`` and ``K`` of the user's data)."""
    d_in, d_out = _data_shape(cell["data"]) if cell.get("data") else (784, 1)
    check_model_fits(cell, chk, d_in, d_out)


# --------------------------------------------------------------------------- the generic GD cell

def _gd_data(cell: dict):
    """``(X (N, D), y (N, K), description)`` as float64 host arrays: the user's .npz, or binary MNIST (±1)."""
    if cell.get("data"):
        from .data import load_npz

        X, y = load_npz(cell["data"])
        return X, y, f"{cell['data']} (N = {X.shape[0]}, D = {X.shape[1]}, K = {y.shape[1]})"
    from ..mnist_gd import load_task

    d = load_task(cell)
    return d.X, d.y.reshape(-1, 1), d.description


def _gd_model(cell: dict, D: int, K: int):
    from ...nn.models import mlp

    return mlp(D, cell["width"], cell["depth"], K, init=cell["init"], seed=cell["seed"], dtype=cell["dtype"],
               backend=cell["backend"], init_factor=cell.get("init_factor"))


def gd_pilot(cell: dict) -> dict:
    """``β_0 = ‖∇²L(θ_0)‖₂`` of one model (Lanczos on a float64 copy, host numbers)."""
    from ...backend import to_device
    from ...nn.state import float64_copy
    from ...theory.smoothness import hessian_top_eigenvalue

    X, y, desc = _gd_data(cell)
    model = _gd_model(cell, X.shape[1], y.shape[1])
    be = model.backend
    top = hessian_top_eigenvalue(float64_copy(model), to_device(X, be), to_device(y, be), tol=1e-6, ncv=6,
                                 maxiter=int(cell["hessian_iters"]), seed=int(cell["seed"]))
    return dict(beta=float(top.beta), converged=bool(top.converged), data=desc)


def gd_cell(cell: dict) -> dict:
    r"""One full-batch GD run ``θ_{t+1} = θ_t − η ∇L(θ_t)``, ``L = ‖f(X) − y‖²/(2n)``; host data.

    ``cell``: the ``gd`` kind's keys, ``lr`` (``η``), ``backend``, and
    ``beta0`` (``β_0``, when the step was ``c/β_0``).  Every ``diag_every``
    steps the NTK ``Θ_t (N·K, N·K)`` in float64: ``lam_min``, ``lam_max``,
    ``ntk_diff_spec = ‖Θ_t − Θ_0‖₂``; then v3's certificate from the record
    (:func:`~minilplr.theory.certificate.run_certificate`).  Returns
    ``status``, ``loss``, ``grad_norm_sq``, ``param_drift`` ``(T,)``,
    ``diag`` (arrays per checkpoint), ``certificate`` (its scalars), ``n``,
    ``lr``, ``beta0``, ``data``.
    """
    from ...backend import to_device
    from ...theory import ntk as _ntk
    from ...theory import spectrum as _spectrum
    from ...theory.certificate import run_certificate
    from ...theory.dynamics import KernelMove
    from ...train.loops import Diverged, train_gd
    from ...train.optim import GD

    Xh, yh, desc = _gd_data(cell)
    model = _gd_model(cell, Xh.shape[1], yh.shape[1])
    be = model.backend
    X, y = to_device(Xh, be, model.dtype), to_device(yh, be, model.dtype)
    n, lr = int(Xh.shape[0]), float(cell["lr"])
    K0 = _ntk.empirical_ntk(model, X, method="structured", dtype="float64")  # Θ_0 (N·K, N·K)
    move = KernelMove(K0)

    def diagnostics(model_, t):
        K = K0 if t == 0 else _ntk.empirical_ntk(model_, X, method="structured", dtype="float64")
        spec = _spectrum.ntk_spectrum(K)
        diff = 0.0 if t == 0 else move(K)[2]  # ‖Θ_t − Θ_0‖₂
        return dict(lam_min=spec.lam_min if spec.resolved else float("nan"), lam_max=float(spec.lam_max),
                    ntk_diff_spec=diff, resolved=bool(spec.resolved))

    status = "finished"
    try:
        h = train_gd(model, X, y, GD(lr), steps=int(cell["steps"]), loss="mse", diagnostics=diagnostics,
                     diag_every=int(cell["diag_every"]))
    except Diverged as exc:
        h, status = exc.history, "diverged"
    keys = ("step", "lam_min", "lam_max", "ntk_diff_spec", "resolved")
    diag = {k: np.array([d[k] for d in h["diag"]], dtype=float) for k in keys}
    hist = {k: np.asarray(h[k], dtype=float) for k in ("loss", "grad_norm_sq", "lr", "param_drift")}
    beta0 = float(cell["beta0"]["beta"]) if cell.get("beta0") else float("nan")
    rec = dict(n=n, diag=diag, history=hist, final_param_drift=float(h.get("final_param_drift", float("nan"))),
               hessian=dict(beta0=beta0) if cell.get("beta0") else {})
    cert = run_certificate(rec)
    return dict(status=status, data=desc, n=n, lr=lr, loss=hist["loss"], grad_norm_sq=hist["grad_norm_sq"],
                param_drift=hist["param_drift"], final_param_drift=rec["final_param_drift"], diag=diag,
                beta0=dict(beta=beta0), certificate={k: v for k, v in cert.items() if not isinstance(v, np.ndarray)})


register_kind(CellKind(
    name="gd", cell="minilplr.experiments.study.kinds:gd_cell", keys=dict(_TASK, data=("str", None)),
    defaults=dict(_TASK_DEFAULTS, depth=3, n=100, steps=50, diag_every=10, data=None, data_sha256=None),
    required=("width",), pilot="minilplr.experiments.study.kinds:gd_pilot",
    pilot_keys=("digits", "n", "data_source", "preprocess", "depth", "init", "init_factor", "seed", "dtype",
                "hessian_iters", "width", "data", "data_sha256", "backend"),
    provides=_CERT_DIAGNOSTICS, check="minilplr.experiments.study.kinds:task_check"))

register_kind(CellKind(
    name="lplr_map", cell="minilplr.experiments.lplr_map.cells:map_cell", keys=_TASK,
    defaults=dict(_TASK_DEFAULTS, depth=5, n=200, steps=100, diag_every=10),
    required=("width",), pilot="minilplr.experiments.lplr_map.cells:pilot_cell",
    pilot_keys=("digits", "n", "data_source", "preprocess", "depth", "init", "init_factor", "seed", "dtype",
                "hessian_iters", "width", "backend"),
    pilot_always=True, beta_keys=("beta", "rayleigh", "matvecs", "converged", "residual", "tol"),
    provides=_CERT_DIAGNOSTICS, check="minilplr.experiments.study.kinds:task_check"))
