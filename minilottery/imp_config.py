"""What an IMP run is: the experiment's settings, ``IMPConfig``, and the arms a round trains.

The defaults are the paper's settings for LeNet-300-100 on MNIST (Frankle & Carbin 2019, Figure 2 and Section 2):
20% of the hidden weights and 10% of the output weights pruned per round, reset to θ0, and the paper's
training (``TrainConfig``'s defaults). The presets of ``minilottery.lab.presets`` are these defaults with a few
fields changed; the command line starts from them too.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from minilottery.checks import check_choice, check_int, check_real
from minilottery.data import DATASETS
from minilottery.models import DEFAULT_MODEL, MODELS
from minilottery.training import TrainConfig

CONTROLS = ("reinit", "random_prune")  # the paper's two baselines (Section 2), trained in every round >= 1
ARMS = ("ticket", *CONTROLS)  # every network a round can train: the one list of arms


@dataclass
class IMPConfig:
    """Everything that determines an IMP run's results (a run folder's config.json).

    Attributes:
        model: one of ``models.MODELS``.
        dataset: one of ``data.DATASETS`` (recorded; the caller passes the data to ``run_imp``).
        rounds: pruning rounds after the dense round 0 (so ``rounds + 1`` trainings of the ticket); with
            ``target_percent`` set, the most rounds to run (None: as many as the target needs).
        target_percent: stop after the first round that keeps at most this % of the weights.
        prune_rate: fraction of the remaining hidden dense weights pruned per round (the paper: 0.2).
        conv_rate: overrides the paper's conv rate (0.1; 0.15 for conv6).
        output_rate: overrides the output layer's rate (default: ``prune_rate / 2``).
        global_pruning: prune ``prune_rate`` of all remaining weights pooled across layers.
        one_shot: prune the trained dense network once, to ``target_percent`` (or to what ``rounds``
            rounds of IMP would leave).
        reset: "init" (reset to θ0, the paper) or "rewind:K" (to the weights at iteration K of round 0).
        controls: any of ``CONTROLS``: "reinit", "random_prune".
        train: how each network is trained (the same for every round and arm).
        seed: seed of θ0 (and of the controls' draws).
    """

    model: str = DEFAULT_MODEL
    dataset: str = "mnist"
    rounds: int | None = 12
    target_percent: float | None = None
    prune_rate: float = 0.2
    conv_rate: float | None = None
    output_rate: float | None = None
    global_pruning: bool = False
    one_shot: bool = False
    reset: str = "init"
    controls: tuple[str, ...] = ()
    train: TrainConfig = field(default_factory=TrainConfig)  # the paper's LeNet training
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.controls, str):  # "reinit,random_prune" as the command line gives it
            self.controls = tuple(c.strip() for c in self.controls.split(",") if c.strip())
        self.controls = tuple(self.controls)

    @property
    def arms(self) -> tuple[str, ...]:
        """("ticket", *controls): the networks trained in each round >= 1."""
        return ("ticket", *self.controls)

    @property
    def rewind_iteration(self) -> int | None:
        """K for ``reset="rewind:K"``, None for ``reset="init"`` (call ``validate`` first)."""
        return None if self.reset == "init" else int(self.reset.partition(":")[2])

    def validate(self) -> IMPConfig:
        """Checks every option; raises ValueError naming the command-line option. Returns self."""
        check_choice("--model", self.model, MODELS)
        check_choice("--dataset", self.dataset, DATASETS)
        if self.rounds is not None:
            check_int("--rounds", self.rounds, low=1)
        if self.target_percent is not None:
            check_real("--target-percent", self.target_percent, low=0, high=100, low_open=True)
        if self.rounds is None and self.target_percent is None:
            raise ValueError("give --rounds or --target-percent (or both): IMP needs to know when to stop")
        for option, rate in (("--prune-rate", self.prune_rate), ("--conv-rate", self.conv_rate),
                             ("--output-rate", self.output_rate)):
            if rate is not None:
                check_real(option, rate, low=0, high=1, low_open=True, hint="give a fraction, e.g. 0.2 for 20%")
        if not isinstance(self.train, TrainConfig):
            raise ValueError(f"train must be a TrainConfig, got {type(self.train).__name__}")
        self.train.validate()
        _parse_reset(self.reset, self.train.iterations)
        for control in self.controls:
            check_choice("--controls", control, CONTROLS)
        if len(set(self.controls)) != len(self.controls):
            raise ValueError(f"--controls must name each arm once, got {','.join(self.controls)!r}")
        check_int("--seed", self.seed, low=0)
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (``train`` nested), the content of a run folder's config.json."""
        d = dataclasses.asdict(self)
        d["controls"] = list(self.controls)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IMPConfig:
        """The inverse of ``to_dict`` (keys it does not know, such as config.json's "data", are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names and k != "train"}
        kwargs["controls"] = tuple(kwargs.get("controls", ()))
        return cls(train=TrainConfig(**d["train"]), **kwargs)


def _parse_reset(reset: Any, iterations: int) -> int | None:
    """"init" -> None; "rewind:K" -> K, checked to be in 0..iterations."""
    if reset == "init":
        return None
    kind, _, k = str(reset).partition(":")
    if kind != "rewind" or not k.strip().lstrip("-").isdigit():
        raise ValueError(f"--reset must be 'init' or 'rewind:K' (K an iteration, e.g. rewind:500), got {reset!r}")
    k = int(k)
    if not 0 <= k <= iterations:
        raise ValueError(f"--reset rewind:{k}: the rewind iteration must be in 0..{iterations} (--iterations), "
                         f"got {k}")
    return k
