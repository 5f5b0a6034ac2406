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

__version__ = "0.3.7"

# name -> the module that defines it. Loaded on first use (PEP 562), so that ``import minilottery`` stays instant
# and ``import minilottery.backend`` (or the command line) does not pull in the whole core.
_API = {
    "load_cifar10": "data", "load_mnist": "data",
    "check_layer": "gradcheck", "check_loss": "gradcheck", "check_model": "gradcheck",
    "IMPConfig": "imp", "IMPResult": "imp", "RoundResult": "imp", "run_imp": "imp",
    "Conv2d": "layers", "Dense": "layers", "Flatten": "layers", "MaxPool2d": "layers", "ReferenceConv2d": "layers",
    "ReLU": "layers", "Sequential": "layers",
    "softmax_cross_entropy": "loss",
    "MODELS": "models", "build_model": "models",
    "make_optimizer": "optim",
    "full_masks": "prune", "magnitude_prune": "prune", "random_prune": "prune",
    "TrainConfig": "training", "TrainResult": "training", "train": "training",
    "load_ticket": "ticket_file",
}

__all__ = ["__version__", *sorted(_API)]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'minilottery' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"minilottery.{_API[name]}"), name)
    globals()[name] = value  # found once, then an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
