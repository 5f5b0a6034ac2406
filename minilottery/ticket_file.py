"""A lottery ticket as one portable file: safetensors, laid out as PyTorch's pruning lays out a pruned network.

A ticket (Frankle & Carbin 2019, Section 2) is a mask m and the weights it trains from, m ⊙ θ0 (or m ⊙ θk when
IMP rewound to iteration k). ``save_ticket`` writes one to a ``.safetensors`` file whose tensor names are the
names ``torch.nn.utils.prune`` gives a pruned ``nn.Sequential`` with the same layers in the same order, so a
PyTorch user prunes the same modules (``prune.identity``) and calls ``load_state_dict``. For every weighted layer
at index i (minilottery's parameters ``"{i}.W"`` and ``"{i}.b"``):

    {i}.weight_orig   (out, in) for Dense (Linear), (out, in, kh, kw) for Conv2d: the weights (see below)
    {i}.weight_mask   the same shape, in the weight's dtype, 1.0 = kept, 0.0 = pruned (as torch stores it)
    {i}.bias          (out,): biases are never pruned (Section 2 prunes weights only)

Both frameworks compute with ``weight_orig * weight_mask``. A run's ticket holds 0.0 at every pruned entry of
``weight_orig`` (IMP starts from m ⊙ θ0, and a pruned weight never moves). Every weight of the network carries a
mask, as every weight does in IMP.

The header's metadata (safetensors keeps str -> str) says what the file holds: ``TicketInfo``, with the
model and input shape that rebuild the network, where the ticket comes from (data set, round, arm, its
sparsity and test accuracy, the run's config and its hash) and whether ``weight_orig`` holds the weights the
ticket starts from or the trained ones. ``load_ticket`` reads a file back into a masked ``Sequential``, ready
to ``train``, to evaluate, or to turn into ``minilottery.lab.sparse.SparseModel``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save

from minilottery import __version__
from minilottery.files import atomic_write_bytes
from minilottery.layers import Sequential
from minilottery.models import build_model, weight_names

FORMAT = "minilottery-ticket"  # the metadata's "format": what marks a file as one of ours
FORMAT_VERSION = 1  # raised when the layout or the metadata changes in a way an older reader cannot read
WEIGHT_ORIG = ("start", "trained")  # what weight_orig holds: the ticket's start weights, or its trained ones

# minilottery's parameter key -> PyTorch's: the layer's index is the same in both (nn.Sequential numbers its
# children from 0, as Sequential numbers its layers), and Dense/Conv2d store W with torch's shapes.
TORCH_KEYS = {"W": "weight", "b": "bias"}


def torch_name(name: str) -> str:
    """PyTorch's name of a minilottery parameter: "1.W" -> "1.weight", "1.b" -> "1.bias"."""
    index, _, key = name.partition(".")
    if key not in TORCH_KEYS:
        raise ValueError(f"{name!r} is not a parameter name of the form 'INDEX.W' or 'INDEX.b'")
    return f"{index}.{TORCH_KEYS[key]}"


def config_hash(config: Mapping[str, Any]) -> str:
    """The SHA-256 (hex) of ``config`` as canonical JSON (sorted keys, no spaces): equal configs, equal hashes."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TicketInfo:
    """What a ticket file holds, stored in its header's metadata (``to_metadata``; every value a string).

    Attributes:
        model: one of ``models.MODELS``; with ``input_shape`` it rebuilds the network (``build_model``).
        input_shape: (C, H, W) of one example.
        dataset: the data set the ticket was found on.
        round: the IMP round (0: the dense network).
        arm: "ticket", "reinit" or "random_prune" (``imp_config.ARMS``).
        percent_remaining: % of the weights the masks keep.
        early_stop_iteration, test_accuracy_at_early_stop, final_test_accuracy: the arm's training in its run
            (round.json); None where the run has none. The trained weights are those of the last iteration, so
            ``final_test_accuracy`` is theirs.
        weight_orig: "start" (the weights the ticket trains from: θ0, θk when the run rewound, θ0' for
            reinit) or "trained" (its weights after training).
        reset: the run's reset, "init" (θ0) or "rewind:K" (θk).
        config: the run's IMPConfig as a dict (``IMPConfig.to_dict``); ``config_hash`` is its hash.
        minilottery_version: the version that wrote the file.
        format_version: ``FORMAT_VERSION`` of the writer.
    """

    model: str
    input_shape: tuple[int, ...]
    dataset: str
    round: int
    arm: str
    percent_remaining: float
    early_stop_iteration: int | None
    test_accuracy_at_early_stop: float | None
    final_test_accuracy: float | None
    weight_orig: str
    reset: str
    config: dict[str, Any]
    config_hash: str = ""  # "" in the constructor: computed from ``config``
    minilottery_version: str = __version__
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        if not self.config_hash:
            object.__setattr__(self, "config_hash", config_hash(self.config))
        if self.weight_orig not in WEIGHT_ORIG:
            raise ValueError(f"weight_orig must be one of {', '.join(WEIGHT_ORIG)}, got {self.weight_orig!r}")

    def to_metadata(self) -> dict[str, str]:
        """The header's metadata: "format", then every field, strings as they are and the rest as JSON."""
        fields = dataclasses.asdict(self)
        return {"format": FORMAT, **{k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}}

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str] | None, path: Any = "the file") -> TicketInfo:
        """The inverse of ``to_metadata``; raises ValueError naming ``path`` when it is not a ticket's."""
        metadata = metadata or {}
        if metadata.get("format") != FORMAT:
            raise ValueError(f"{path} is not a minilottery ticket file (its metadata has no format {FORMAT!r}); "
                             f"write one with `minilottery export`")
        version = metadata.get("format_version", "")
        if not version.isdigit() or int(version) > FORMAT_VERSION:
            raise ValueError(f"{path} has ticket format version {version!r}, this minilottery {__version__} reads "
                             f"up to {FORMAT_VERSION}; upgrade minilottery")
        values = {}
        for field in dataclasses.fields(cls):
            if field.name not in metadata:
                raise ValueError(f"{path}: the metadata lacks {field.name!r}; export the ticket again")
            text = metadata[field.name]
            try:
                values[field.name] = text if field.type in ("str", str) else json.loads(text)
            except ValueError:
                raise ValueError(f"{path}: the metadata's {field.name!r} is {text!r}, not JSON; export the ticket "
                                 f"again") from None
        return cls(**values)


@dataclass(frozen=True)
class Ticket:
    """A ticket file read back (``read_ticket``), in minilottery's names.

    Attributes:
        weights: every parameter by name: "{i}.W" from ``{i}.weight_orig``, "{i}.b" from ``{i}.bias``.
        masks: "{i}.W" -> bool mask (True = kept) from ``{i}.weight_mask``.
        info: the metadata.
    """

    weights: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    info: TicketInfo


def ticket_tensors(weights: Mapping[str, Any], masks: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The file's tensors in ``torch.nn.utils.prune``'s names (module docstring) from minilottery's names.

    Args:
        weights: every parameter: "{i}.W" (out, in) or (out, in, kh, kw), "{i}.b" (out,); host arrays.
        masks: "{i}.W" -> 0/1 or bool mask of the weight's shape, for every weight.

    Returns:
        "{i}.weight_orig" and "{i}.weight_mask" (in the weight's dtype) for each weight, "{i}.bias" for each bias.
    """
    tensors = {}
    for name, value in weights.items():
        value = np.ascontiguousarray(value)  # safetensors stores C-order bytes
        if name.endswith(".W"):
            if name not in masks:
                raise ValueError(f"weight {name} has no mask; a ticket masks every weight (give an all-ones mask "
                                 f"to keep a layer dense)")
            weight = torch_name(name)
            tensors[f"{weight}_orig"] = value
            tensors[f"{weight}_mask"] = np.ascontiguousarray(masks[name], dtype=value.dtype)
        else:
            tensors[torch_name(name)] = value
    return tensors


def expected_tensors(model: Sequential) -> dict[str, tuple[int, ...]]:
    """name -> shape of every tensor in the file of a ticket of ``model`` (the layout of ``ticket_tensors``)."""
    masked = set(weight_names(model))
    expected = {}
    for name, value in model.parameters().items():
        if name in masked:
            expected[f"{torch_name(name)}_orig"] = expected[f"{torch_name(name)}_mask"] = tuple(value.shape)
        else:
            expected[torch_name(name)] = tuple(value.shape)
    return expected


def save_ticket(path: str | os.PathLike[str], weights: Mapping[str, Any], masks: Mapping[str, Any],
                info: TicketInfo) -> None:
    """Writes a ticket file at ``path`` (replacing what is there, atomically: ``files.atomic_write_bytes``).

    Args:
        weights: every parameter of ``info.model`` built for ``info.input_shape``, by minilottery name.
        masks: "{i}.W" -> mask for every weight.
        info: the metadata.

    Raises:
        ValueError: a name or shape that is not the model's.
    """
    tensors = ticket_tensors(weights, masks)
    _check_tensors(tensors, info, path, fix="pass the model's own parameters")
    atomic_write_bytes(path, save(tensors, metadata=info.to_metadata()))


def read_ticket(path: str | os.PathLike[str]) -> Ticket:
    """Reads and checks a ticket file: its metadata, every tensor's name and shape, masks of 0 and 1 only.

    Raises:
        ValueError: the file is missing, not a safetensors file, not a ticket, or not its model's.
    """
    try:
        with safe_open(os.fspath(path), framework="numpy") as f:
            metadata = f.metadata()
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except FileNotFoundError:
        raise ValueError(f"{path} is missing; write it with `minilottery export RUN --out {path}`") from None
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path} is not a safetensors file ({exc}); give a file `minilottery export` wrote") from None
    info = TicketInfo.from_metadata(metadata, path)
    model = _check_tensors(tensors, info, path, fix="export the ticket again")
    masked = weight_names(model)
    for name in masked:
        mask = tensors[f"{torch_name(name)}_mask"]
        if not np.isin(mask, (0, 1)).all():
            raise ValueError(f"{path}: {torch_name(name)}_mask holds values other than 0 and 1; export the ticket "
                             f"again")
    weights = {name: tensors[f"{torch_name(name)}_orig" if name in masked else torch_name(name)]
               for name in model.parameters()}
    masks = {name: tensors[f"{torch_name(name)}_mask"] != 0 for name in masked}
    return Ticket(weights, masks, info)


def load_ticket(path: str | os.PathLike[str]) -> Sequential:
    """The network of a ticket file, with its masks set: ready to ``train``, evaluate or sparsify.

    The model (on the host, float32; move it with ``.to("gpu")``) holds ``weight_orig`` as its weights and
    ``weight_mask`` as its masks (``Sequential.set_masks``), the way IMP's own networks carry their masks, so
    ``minilottery.train(model, data, config)`` trains the ticket as its run did. ``read_ticket(path).info``
    is the metadata.
    """
    ticket = read_ticket(path)
    model = build_model(ticket.info.model, ticket.info.input_shape)  # the architecture; its weights are replaced
    model.load_state_dict(ticket.weights)
    model.set_masks(ticket.masks)
    return model


def _check_tensors(tensors: Mapping[str, np.ndarray], info: TicketInfo, path: Any, fix: str) -> Sequential:
    """Raises ValueError unless ``tensors`` has exactly the names and shapes of a ticket of ``info``'s network;
    returns that network, freshly built."""
    try:
        model = build_model(info.model, info.input_shape)
    except ValueError as exc:
        raise ValueError(f"{path}: its metadata names a network minilottery cannot build ({exc})") from None
    what = f"a ticket of {info.model} on {info.input_shape} inputs"
    expected = expected_tensors(model)
    missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or extra:
        parts = [f"lacks {', '.join(missing)}"] * bool(missing) + [f"has unknown {', '.join(extra)}"] * bool(extra)
        raise ValueError(f"{path} is not {what}: it {' and '.join(parts)}; {fix}")
    for name, shape in expected.items():
        if tuple(tensors[name].shape) != shape:
            raise ValueError(f"{path} is not {what}: {name} has shape {tuple(tensors[name].shape)}, expected "
                             f"{shape}; {fix}")
    return model


__all__ = ["FORMAT", "FORMAT_VERSION", "WEIGHT_ORIG", "TORCH_KEYS", "Ticket", "TicketInfo", "config_hash",
           "expected_tensors", "load_ticket", "read_ticket", "save_ticket", "ticket_tensors", "torch_name"]
