"""Data sets for the experiments: MNIST (the paper's LeNets) and CIFAR-10 (its Conv-2/4/6).

Each loader returns a ``Dataset`` of float32 NCHW images in [0, 1] and int64 labels, with 5,000 training
examples held out as a validation set as in Frankle & Carbin (2019)::

    from minilottery.data import load_mnist
    data = load_mnist()            # x_train (55000, 1, 28, 28), x_val (5000, ...), x_test (10000, ...)
    small = data.subset(1000, 500, 500)

Files are looked for in ``data_dir()`` (see ``paths.py``), downloaded from public mirrors when missing, and
trusted only after their checksum matches (see ``download.py``). ``minilottery data download`` / ``check`` do
the same from the command line.
"""

from minilottery.data import cifar10, mnist
from minilottery.data.checksums import DataError
from minilottery.data.cifar10 import load_cifar10
from minilottery.data.dataset import Dataset
from minilottery.data.mnist import MNIST, load_mnist
from minilottery.data.paths import data_dir

# The one list of data sets: name -> loader, and the same names -> the function that downloads its files.
LOADERS = {"mnist": load_mnist, "cifar10": load_cifar10}
DOWNLOADERS = {"mnist": mnist.download_files, "cifar10": cifar10.download}
DATASETS = tuple(LOADERS)

__all__ = ["DATASETS", "DOWNLOADERS", "LOADERS", "MNIST", "DataError", "Dataset", "data_dir", "load_cifar10",
           "load_mnist"]
