"""The engine: layers with their forward beside their backward, models, losses, initialisers.

* :mod:`.layers` — the layer protocol (forward, backward, the Jacobian/NTK
  rules), dense, ReLU, sequential containers;
* :mod:`.state` — a model's state beyond its parameters: walking its layers,
  batch norm's buffers, frozen ReLU masks, and :func:`~.state.untouched`,
  which gives a model back exactly as a diagnostic found it;
* :mod:`.conv` — convolution by im2col/col2im;
* :mod:`.fast` — the fast kernels (the speed tricks, each beside the plain
  expression it replaces) and the switch that runs the engine on the plain
  path (``MINILPLR_KERNELS=plain``, ``with fast.plain(): ...``);
* :mod:`.batchnorm` — batch normalisation of images and of features
  (training and evaluation mode) and its recalibration on a data set;
* :mod:`.residual` — residual blocks (convolutional and dense), global
  average pooling, flatten;
* :mod:`.models` — the :class:`~.models.Model` wrapper and the MLP builder
  (plain, residual, with batch norm);
  :mod:`.resnet` — the small ResNet of Fig. 3;
* :mod:`.losses` — squared loss and softmax cross-entropy;
* :mod:`.init` — He, enhanced He, Gaussian ``N(0, h^{-2p})``;
* :mod:`.params` — parameters as one flat vector ``θ`` (the Jacobian's column order);
* :mod:`.gradcheck` — central differences to check every backward pass.

Imports only :mod:`minilplr.backend` and :mod:`minilplr.validate`: the
engine knows nothing of training, theory or experiments.
"""
