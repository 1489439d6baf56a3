"""Optimisers and schedules (minilplr.train.optim)."""
import numpy as np
import pytest

from minilplr import backend as B
from minilplr.train import optim


def test_sgd_is_gradient_descent_and_momentum(be):
    p = {"w": B.to_device(np.array([1.0, 2.0]), be)}
    g = {"w": B.to_device(np.array([0.5, -1.0]), be)}
    opt = optim.GD(0.1)
    assert opt.step(p, g) == 0.1
    assert np.allclose(B.to_host(p["w"]), [0.95, 2.1])  # θ − η g
    opt = optim.SGD(0.1, momentum=0.9, weight_decay=0.01)
    p = {"w": B.to_device(np.array([1.0]), be)}
    g = {"w": B.to_device(np.array([1.0]), be)}
    opt.step(p, g)  # v = g + λθ = 1.01; θ = 1 − 0.101
    opt.step(p, g)  # v = 0.9·1.01 + 1 + 0.01·0.899
    v2 = 0.9 * 1.01 + 1 + 0.01 * 0.899
    assert np.allclose(B.to_host(p["w"]), [0.899 - 0.1 * v2])


def test_cosine_schedule():
    s = optim.Cosine(0.1, total_steps=100, lr_min=0.001)
    assert s(0) == pytest.approx(0.1)
    assert s(50) == pytest.approx(0.001 + 0.5 * 0.099)
    assert s(100) == pytest.approx(0.001) and s(1000) == pytest.approx(0.001)


def test_optimiser_bad_input(be):
    with pytest.raises(ValueError, match="lr: expected a positive"):
        optim.GD(-1.0)
    with pytest.raises(ValueError, match="momentum: expected a number in"):
        optim.SGD(0.1, momentum=1.5)
    with pytest.raises(ValueError, match="total_steps"):
        optim.Cosine(0.1, 0)
    with pytest.raises(ValueError, match=r"grads\['w'\]: no gradient"):
        optim.GD(0.1).step({"w": B.to_device(np.ones(2), be)}, {"w": None})


def _grads(params, be):
    """A gradient field that depends on θ (``g = θ³ − θ/2``), so that a step taken from wrong state shows."""
    return {k: p * p * p - 0.5 * p for k, p in params.items()}


def _fresh_params(be, seed=0):
    rng = np.random.default_rng(seed)
    return {"w": B.to_device(rng.standard_normal((3, 4)), be), "b": B.to_device(rng.standard_normal(4), be)}


OPTIMISERS = {
    "gd": lambda: optim.GD(0.05),
    "momentum+cosine+decay": lambda: optim.SGD(optim.Cosine(0.1, total_steps=8, lr_min=0.01), momentum=0.9,
                                                weight_decay=0.01),
}


@pytest.mark.parametrize("name", list(OPTIMISERS))
def test_sgd_state_dict_round_trip_continues_bit_for_bit(name, be, tmp_path):
    """``state_dict`` → the store (JSON + .npz) → a fresh optimiser's ``load_state_dict``: the next steps are identical.

    Four steps, the state handed over, four more steps by each optimiser from
    the same ``θ``: every ``θ``, every step size and the final state are equal
    bit for bit.  A dropped momentum buffer, step counter (the cosine step
    reads it) or schedule state changes the steps; the state taken is a
    snapshot (later steps do not change it).
    """
    from minilplr.store import load_unit, save_unit

    make = OPTIMISERS[name]
    opt, p = make(), _fresh_params(be)
    for _ in range(4):
        opt.step(p, _grads(p, be))
    state = opt.state_dict()
    saved = {k: v.copy() for k, v in state["velocity"].items()}
    save_unit(tmp_path, "opt", state)
    fresh, q = make(), {k: B.to_device(B.to_host(v).copy(), be) for k, v in p.items()}
    fresh.load_state_dict(load_unit(tmp_path, "opt"))
    assert fresh.t == opt.t == 4
    for _ in range(4):
        assert fresh.step(q, _grads(q, be)) == opt.step(p, _grads(p, be))
        for k in p:
            assert np.array_equal(B.to_host(q[k]), B.to_host(p[k])), k
    a, b = opt.state_dict(), fresh.state_dict()
    assert (a["t"], a["schedule"]) == (b["t"], b["schedule"]) and a["velocity"].keys() == b["velocity"].keys()
    assert all(np.array_equal(a["velocity"][k], b["velocity"][k]) for k in a["velocity"])
    assert all(np.array_equal(state["velocity"][k], saved[k]) for k in saved)  # the snapshot did not move
    if name != "gd":
        assert set(saved) == {"w", "b"} and all(np.any(v != 0) for v in saved.values())  # there was momentum


def test_schedules_without_state_have_an_empty_one():
    for s in (optim.Constant(0.1), optim.Cosine(0.1, 10)):
        assert s.state_dict() == {}
        s.load_state_dict({})
