"""Training: optimisers and step-size schedules, the GD/SGD loops, checkpoints.

* :mod:`.optim` — SGD with momentum and weight decay; constant and cosine schedules; their ``state_dict``;
* :mod:`.loops` — full-batch GD and mini-batch SGD, recording every step, stopping on divergence;
* :mod:`.resumable` — the one resumable loop (fingerprint, state, restore, cadence) of these loops and of
  the linear network's GD (:mod:`minilplr.theory.linear.trajectory`);
* :mod:`.checkpoint` — everything a run needs to continue bit for bit, stored as data.

Imports the engine (:mod:`minilplr.nn`) and :mod:`minilplr.store`; never the theory or the experiments.
"""
