# %% [markdown]
# # Interactive figures: move the width, the step and $L^*$
#
# Two of the course's pictures with sliders, for a Jupyter session with
# ipywidgets (`python -m pip install -e ".[notebooks]"`). Without Jupyter,
# the static pictures are in the chapters:
# [chapter 5](../05-linear-convergence.md) (`img/envelope_vs_kernel.png`) and
# [chapter 8](../08-reading-the-figures.md) (`img/pl_lstar.png`).
# The functions the sliders call are in `sliders.py` beside this notebook.

# %%
import sliders

# %% [markdown]
# ## 1. The envelope against the kernel regime, as the width and $\eta$ move
#
# Full-batch GD on a 3-layer ReLU network, $N = 10$ random points, with
# $\eta$ a fraction of $1/\beta_{GN}$, $\beta_{GN} = \lambda_{\max}(\Theta_0)/N$.
# Three curves: the measured loss; the loss GD would follow if the NTK
# stayed at $\Theta_0$ (the kernel regime); and Theorem 5.4's envelope
# $(1-\eta\mu)^t L_0$ with $\mu = \lambda_{\min}(\Theta_0)/N$.
#
# Things to try: at width 16 the measured curve leaves the kernel regime
# within a few steps (the NTK moves); from width 512 on it stays on it. Slide
# $\eta$: all three steepen together; the envelope stays above the measured
# loss, but is far looser than the kernel regime (it keeps only the slowest
# eigen-direction, and only to first order).

# %%
sliders.envelope_widget()

# %% [markdown]
# ## 2. The PL plot as the assumed $L^*$ moves
#
# One loss that satisfies the PL inequality with equality, with true
# $L^* = 0.01$ (chapter 8's example). Plot $\lVert\nabla L\rVert^2$ against
# $L - L^*$ on log–log axes for the $L^*$ you choose: only $L^* = 0.01$ gives
# the straight line of slope 1. With $L^*$ below the truth the small gaps
# never get small and the fitted slope grows (1.73 at $L^* = 0$); with $L^*$
# at the minimum seen, the last steps bend down and the slope falls below 1
# (0.87); above the minimum seen, the last steps have no positive gap and
# drop out of the plot.

# %%
sliders.pl_widget()
