"""Solution to exercise 10.3: one IMP round on the CPU and on the strict test device, compared bit for bit.

Run (from the repository root): python tutorials/solutions/10_exercise_3.py
Runs IMPConfig(rounds=1, controls=()) on 600 training images (40 iterations a training) once with device "cpu" and
once on the strict device, then compares every mask, θ0, every final weight and every training loss exactly, and
the evaluations to float rounding. About 5 s.
"""

import numpy as np

from minilottery.data import load_mnist
from minilottery.imp import IMPConfig, run_imp
from minilottery.testing.strict_backend import strict_device
from minilottery.training import TrainConfig

data = load_mnist().subset(600, 100, 200)
config = IMPConfig(model="lenet_300_100", rounds=1, controls=(),
                   train=TrainConfig(iterations=40, eval_every=20, seed=0), seed=0)
on_cpu = run_imp(config, data, device="cpu", progress=False)
with strict_device() as device:
    on_strict = run_imp(config, data, device=device, progress=False)
for a, b in zip(on_cpu.rounds, on_strict.rounds, strict=True):
    same_masks = all(np.array_equal(a.masks[n], b.masks[n]) for n in a.masks)
    ticket_a, ticket_b = a.arms["ticket"], b.arms["ticket"]
    same_start = all(np.array_equal(ticket_a.init_weights[n], ticket_b.init_weights[n]) for n in ticket_a.init_weights)
    same_final = all(np.array_equal(ticket_a.final_weights[n], ticket_b.final_weights[n])
                     for n in ticket_a.final_weights)
    history_a, history_b = ticket_a.metrics["history"], ticket_b.metrics["history"]
    same_losses = history_a["train_loss"] == history_b["train_loss"]
    # On the CPU an evaluation of mostly-zero images adds their products in another order
    # (minilottery.compiled.sparse_input_times, with Numba, unless OpenBLAS runs its AVX-512 kernels): equal to
    # float rounding, not bit for bit.
    close_evaluations = all(np.allclose(history_a[key], history_b[key], rtol=1e-5, atol=0.0)
                            for key in ("val_loss", "val_accuracy", "test_loss", "test_accuracy"))
    print(f"round {a.index}: masks equal {same_masks}, start weights equal {same_start}, final_weights equal "
          f"{same_final}, training losses equal {same_losses}, evaluations equal to float rounding "
          f"{close_evaluations}; test accuracy at early stop "
          f"{100 * ticket_a.metrics['test_accuracy_at_early_stop']:.2f}% on both")
    assert same_masks and same_start and same_final and same_losses and close_evaluations
