"""``minilottery bench --compare-torch``: the same masked Adam training step in PyTorch, when it is installed.

PyTorch is an optional comparison, never a dependency: it is imported only inside these functions.
"""

from __future__ import annotations

import itertools
import statistics
from typing import TYPE_CHECKING, Any

from minilottery.lab.bench_steps import INPUT_SHAPE, LR, synthetic_batches, time_per_call
from minilottery.layers import Conv2d, Dense, Flatten, MaxPool2d, ReLU
from minilottery.models import build_model

if TYPE_CHECKING:  # for the annotations only: bench.py imports this module
    from minilottery.lab.bench_config import BenchConfig

TORCH_MISSING = "PyTorch is not installed: skipping --compare-torch (pip install torch to compare)"


def torch_available() -> bool:
    """True when ``import torch`` works."""
    try:
        import torch  # an optional comparison, never a dependency
        del torch
    except ImportError:
        return False
    return True


def torch_network(name: str, seed: int) -> Any:
    """Model ``name`` as a ``torch.nn.Sequential`` on the host, with the same initial weights as ours."""
    import torch

    modules = []
    for layer in build_model(name, INPUT_SHAPE, seed=seed).layers:
        if isinstance(layer, Dense):
            module = torch.nn.Linear(layer.in_features, layer.out_features)
        elif isinstance(layer, Conv2d):
            module = torch.nn.Conv2d(layer.in_channels, layer.out_channels, (layer.kh, layer.kw),
                                     stride=layer.stride, padding=layer.padding)
        elif isinstance(layer, MaxPool2d):
            module = torch.nn.MaxPool2d((layer.kh, layer.kw), stride=(layer.sh, layer.sw))
        elif isinstance(layer, ReLU):
            module = torch.nn.ReLU()
        elif isinstance(layer, Flatten):
            module = torch.nn.Flatten()
        else:
            raise ValueError(f"--compare-torch: no PyTorch counterpart for {layer!r}")
        if layer.params:
            with torch.no_grad():
                module.weight.copy_(torch.from_numpy(layer.params["W"]))
                module.bias.copy_(torch.from_numpy(layer.params["b"]))
        modules.append(module)
    return torch.nn.Sequential(*modules)


def time_torch_step(name: str, device: str, config: BenchConfig) -> dict[str, Any]:
    """The same masked Adam training step in PyTorch on the same device; needs ``torch`` installed."""
    import torch

    tdev = torch.device("cuda" if device == "gpu" else "cpu")
    net = torch_network(name, config.seed).to(tdev)
    masks = {p: torch.ones_like(p) for n, p in net.named_parameters() if n.endswith("weight")}
    optimizer = torch.optim.Adam(net.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    batches = [(torch.from_numpy(x).to(tdev), torch.from_numpy(y).to(tdev))
               for x, y in synthetic_batches("cpu", config.batch_size, 10, config.seed)]
    batch_cycle = itertools.cycle(batches)

    def step() -> None:
        x, y = next(batch_cycle)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        with torch.no_grad():
            for p, m in masks.items():
                p.grad.mul_(m)  # pruned weights get no gradient ...
        optimizer.step()
        with torch.no_grad():
            for p, m in masks.items():
                p.mul_(m)  # ... and stay exactly zero

    sync = torch.cuda.synchronize if device == "gpu" else (lambda: None)
    times, _ = time_per_call(step, sync, config.repeats, warmup=config.warmup)
    return {"torch_version": torch.__version__, "torch_threads": torch.get_num_threads(),
            "torch_ms_per_step": 1e3 * statistics.median(times)}
