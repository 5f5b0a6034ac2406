"""Data sets for the experiments: MNIST (the paper's LeNets), CIFAR-10 (its Conv-2/4/6) and Fashion-MNIST (a harder
drop-in for MNIST).

Each loader returns a ``Dataset`` of float32 NCHW images in [0, 1] and int64 labels, with 5,000 training
examples held out as a validation set as in Frankle & Carbin (2019)::

    from minilottery.data import load_mnist
    data = load_mnist()            # x_train (55000, 1, 28, 28), x_val (5000, ...), x_test (10000, ...)
    small = data.subset(1000, 500, 500)

Each data set has its folder under one data root (``mnist/``, ``fashion-mnist/``, ``cifar-10/``; see ``paths.py``).
Files are looked for there, downloaded from public mirrors when missing, and trusted only after their checksum
matches (see ``download.py``). ``minilottery data download`` / ``check`` do the same from the command line.
"""

from minilottery.data import cifar10, fashion_mnist, mnist
from minilottery.data.checksums import DataError
from minilottery.data.cifar10 import load_cifar10
from minilottery.data.dataset import Dataset
from minilottery.data.fashion_mnist import load_fashion_mnist
from minilottery.data.mnist import MNIST, load_mnist
from minilottery.data.paths import data_dir, dataset_dir

# The one list of data sets: name -> loader; the same names -> the function that downloads its files, the
# function that says which folder holds them, and the function that lists its files as the loader verifies them.
LOADERS = {"mnist": load_mnist, "fashion-mnist": load_fashion_mnist, "cifar10": load_cifar10}
DOWNLOADERS = {"mnist": mnist.download_files, "fashion-mnist": fashion_mnist.download_files,
               "cifar10": cifar10.download}
FOLDER_OF = {"mnist": mnist.folder, "fashion-mnist": fashion_mnist.folder, "cifar10": cifar10.folder}
FILES_OF = {"mnist": mnist.data_files, "fashion-mnist": fashion_mnist.data_files,
            "cifar10": lambda: [cifar10.archive_file()]}
DATASETS = tuple(LOADERS)

__all__ = ["DATASETS", "DOWNLOADERS", "FILES_OF", "FOLDER_OF", "LOADERS", "MNIST", "DataError", "Dataset", "data_dir",
           "dataset_dir", "load_cifar10", "load_fashion_mnist", "load_mnist"]
