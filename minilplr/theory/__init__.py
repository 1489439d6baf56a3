"""What the papers' theorems talk about, measured on a model.

* :mod:`.ntk` — the Jacobian ``J`` and the empirical NTK ``Θ = J Jᵀ`` (explicit
  and structured; :mod:`.ntk_tiles` — in tiles, for the paper's real ``n``);
  :mod:`.spectrum` — its eigenvalues, with an honest ``λ_min``;
* :mod:`.infinite_ntk` — the infinite-width NTK ``Θ_∞``; :mod:`.ntk_shares` —
  each layer's share of the empirical Θ, rescaled to compare with it;
* :mod:`.pl` — ``μ = λ_min/n``, the PL ratio and the steps (6)–(9) of Theorem 5.1;
* :mod:`.smoothness` — Hessian–vector products, ``β``, the descent lemma and
  the step-size condition of Theorem 5.4;
* :mod:`.dynamics` — the envelope ``(1 − ημ)^t``, the kernel-regime loss curve, drift;
* :mod:`.certificate` — v3's PL certificate ``(λ₀ − L_Θ r)/n`` and the a-priori radius, along a run;
* :mod:`.verdicts` — the words a claim may end in (holds, fails, vacuous, untestable,
  identity), with threshold and margin, and the generic judges;
* :mod:`.convergence` — Theorem 5.4 judged with power: the envelope's demand, the
  per-step contraction, the kernel regime's dominance time, linear convergence;
* :mod:`.linear` — the overparametrised two-layer linear networks of the second paper.

Imports the engine and the training loops; never the experiments.
"""
