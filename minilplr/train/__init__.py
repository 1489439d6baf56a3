"""Training: optimisers and step-size schedules, the GD/SGD loops, checkpoints.

* :mod:`.optim` — SGD with momentum and weight decay; constant and cosine schedules;
* :mod:`.loops` — full-batch GD and mini-batch SGD, recording every step, stopping on divergence;
* :mod:`.checkpoint` — everything a run needs to continue bit for bit, stored as data.

Imports the engine (:mod:`minilplr.nn`) and :mod:`minilplr.store`; never the theory or the experiments.
"""
