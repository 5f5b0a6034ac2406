"""minilottery: the Lottery Ticket Hypothesis (Frankle & Carbin, ICLR 2019), exact and readable, in NumPy/CuPy.

A ten-line tour of the textbook core, in reading order (``tutorials/`` walks through it; ``tests/test_front_door.py``
runs it)::

    import numpy as np, minilottery as ml
    print(ml.check_layer(ml.Dense(4, 3, dtype=np.float64), np.ones((2, 4))))  # every backward, checked numerically
    data = ml.load_mnist()                                    # 55K/5K/10K float32 images (N, 1, 28, 28) in [0, 1]
    model = ml.build_model("lenet_300_100", seed=0)           # hand-written layers, θ0 drawn from the seed
    result = ml.train(model, data, ml.TrainConfig(iterations=1000))  # Adam 1.2e-3, batch 60 (Figure 2)
    weights = {"1.W": model.state_dict()["1.W"]}              # prune 20% of the first dense layer (Section 2)
    masks = ml.magnitude_prune(weights, ml.full_masks(weights), {"1.W": 0.2})
    run = ml.run_imp(ml.IMPConfig(rounds=2, train=ml.TrainConfig(iterations=1000)), data)  # the whole IMP loop
    print(run, run.rounds[-1])                                # IMPResult(...) RoundResult(index=2, ...)

The lab around it (run folders, trials, the paper check, figures, benchmarks, the command line) is
``minilottery.lab``; the core never imports it. Importing the package never imports CuPy: ask for the GPU with
``minilottery.backend.use("gpu")``, ``MINILOTTERY_DEVICE=gpu`` or a command's ``--device gpu``.
"""

__version__ = "0.1.0"

from minilottery.data import load_cifar10, load_mnist
from minilottery.gradcheck import check_layer, check_loss, check_model
from minilottery.imp import IMPConfig, IMPResult, RoundResult, run_imp
from minilottery.layers import Conv2d, Dense, Flatten, MaxPool2d, ReferenceConv2d, ReLU, Sequential
from minilottery.loss import softmax_cross_entropy
from minilottery.models import MODELS, build_model
from minilottery.optim import make_optimizer
from minilottery.prune import full_masks, magnitude_prune, random_prune
from minilottery.training import TrainConfig, TrainResult, train

__all__ = [
    "Conv2d", "Dense", "Flatten", "IMPConfig", "IMPResult", "MODELS", "MaxPool2d", "ReLU", "ReferenceConv2d",
    "RoundResult", "Sequential", "TrainConfig", "TrainResult", "__version__", "build_model", "check_layer",
    "check_loss", "check_model", "full_masks", "load_cifar10", "load_mnist", "magnitude_prune", "make_optimizer",
    "random_prune", "run_imp", "softmax_cross_entropy", "train",
]
