"""One ticket of an IMP run folder as a portable file: ``minilottery export`` (the format: ``ticket_file.py``).

The run folder (layout: ``runs.py``) holds, for each completed round and arm, the masks the arm trained with
(the round's ``masks.npz``; random_prune's own), the weights it started from (``<arm>/init.npz``: m ⊙ θ0, m ⊙ θk
when the run rewound, m ⊙ θ0' for reinit) and its trained weights (``<arm>/final.npz``, the last iteration's).
``export_ticket`` writes one arm's masks and start weights (or, with ``trained``, its trained weights) with its
round.json numbers and the run's config as metadata.
"""

from __future__ import annotations

import os
from pathlib import Path

from minilottery.lab import runs
from minilottery.lab.transfer import SourceRun
from minilottery.models import build_model, weight_names
from minilottery.ticket_file import TicketInfo, save_ticket

WEIGHT_FILES = {"start": "init.npz", "trained": "final.npz"}  # TicketInfo.weight_orig -> the arm's file


def export_ticket(run_dir: str | os.PathLike[str], out: str | os.PathLike[str], round_index: int | None = None,
                  arm: str = "ticket", trained: bool = False, overwrite: bool = False) -> TicketInfo:
    """Writes the ticket of ``arm`` in round ``round_index`` of the run in ``run_dir`` to the file ``out``.

    Args:
        round_index: a completed round (default: the last one).
        arm: "ticket", or a control the run trained in that round ("reinit", "random_prune").
        trained: store the arm's trained weights as ``weight_orig`` instead of its start weights.
        overwrite: replace a file at ``out``.

    Returns:
        The file's metadata.

    Raises:
        ValueError (one line): ``run_dir`` is not a run folder or a file in it is damaged, the round or the arm
            is not in it, or ``out`` exists (without ``overwrite``) or is a folder. Nothing is written then.
    """
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name, e.g. --out {out / 'ticket.safetensors'}")
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise ValueError(f"--out {out} exists; use --overwrite to replace it, or choose another --out")
    source = SourceRun.read(run_dir)
    done = len(source.rounds)
    if done == 0:
        raise ValueError(f"{source.path} has no completed round yet; let `minilottery imp` finish round 0 first")
    index = done - 1 if round_index is None else round_index
    if not 0 <= index < done:
        raise ValueError(f"--round {index}: {source.path} has completed rounds 0 to {done - 1}; choose one of them")
    info = source.rounds[index]
    if arm not in info["arms"]:
        raise ValueError(f"--arm {arm}: round {index} of {source.path} has no {arm}, only {', '.join(info['arms'])}; "
                         f"choose one of them (round 0 has only the dense network, as 'ticket')")
    model = build_model(source.config.model, source.input_shape)
    shapes = {name: tuple(value.shape) for name, value in model.parameters().items()}
    mask_shapes = {name: shapes[name] for name in weight_names(model)}
    folder = runs.round_dir(source.path, index)
    masks = runs.load_npz(runs.arm_masks_file(folder, arm), mask_shapes)
    weight_orig = "trained" if trained else "start"
    weights = runs.load_npz(folder / arm / WEIGHT_FILES[weight_orig], shapes)
    metrics = info["arms"][arm]
    ticket = TicketInfo(
        model=source.config.model, input_shape=source.input_shape, dataset=source.config.dataset, round=index,
        arm=arm, percent_remaining=info["percent_remaining"],
        early_stop_iteration=metrics.get("early_stop_iteration"),
        test_accuracy_at_early_stop=metrics.get("test_accuracy_at_early_stop"),
        final_test_accuracy=metrics.get("final_test_accuracy"), weight_orig=weight_orig,
        reset=source.config.reset, config=source.config.to_dict(),
    )
    save_ticket(out, weights, masks, ticket)
    return ticket


__all__ = ["WEIGHT_FILES", "export_ticket"]
