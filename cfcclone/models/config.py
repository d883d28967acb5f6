"""PolicyConfig: everything that rebuilds a ConvCfC, stored whole in every checkpoint, and
checked when it is built (a bad option is a ValueError naming it, before any work)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from cfcclone.config import Config, check, is_int
from cfcclone.models.cores import Cell, WiringName, check_core
from cfcclone.models.encoders import smallest_frame
from cfcclone.spaces import ActionSpec, ObsSpec

EncoderName = Literal["tutorial", "nature", "impala"]
CfCMode = Literal["default", "pure", "no_gate"]


@dataclass(frozen=True)
class PolicyConfig(Config):
    """Everything needed to rebuild a ConvCfC; stored whole in every checkpoint."""

    n_actions: int = field(default=0, metadata={"derived": True})
    """Size of the game's minimal action set, or a Box action's dimension (training fills it
    in from the dataset)."""
    encoder: EncoderName = "tutorial"
    """The frame-stack encoder: the NCP tutorial's ConvBlock, the DQN Nature CNN or IMPALA's
    ResNet (frames only; state vectors get an MLP encoder of `hidden` units)."""
    hidden: int = 256
    """Width of the two ReLU layers of the MLP encoder of state vectors."""
    features: int | None = None
    """Width of the nature and impala encoders' last linear layer: the cell's sensory inputs
    (512 and 256 where unset; the NCP paper feeds its 19 neurons 32)."""
    core: Cell = "cfc"
    """The recurrent cell (also --cell): cfc (ncps's CfC), ltc (ncps's LTC, the liquid
    time-constant ODE; slower), or none (a feedforward baseline: the encoder and a linear
    head, no memory)."""
    units: int = 64
    """The cell's neurons (a wiring's, all layers together)."""
    wiring: WiringName = "dense"
    """How the neurons connect: dense, autoncp (ncps's AutoNCP of `units` neurons, the motor
    neurons being the actions) or ncp (ncps's NCP of the sizes `ncp`)."""
    sparsity: float = 0.5
    """AutoNCP's sparsity level, in [0.1, 0.9]."""
    ncp: list[int] | None = None
    """wiring ncp: inter neurons, command neurons, sensory fan-out, inter fan-out, recurrent
    command synapses, motor fan-in (the motor neurons are the actions)."""
    mode: CfCMode = "default"
    """CfC mode (ncps): default, pure (no gate) or no_gate."""
    backbone_units: int | None = None
    """Width of the CfC backbone (ncps's default, 128, where unset)."""
    backbone_layers: int | None = None
    """Depth of the CfC backbone (ncps's default, 1, where unset)."""
    mixed_memory: bool = False
    """Add an LSTM memory cell beside the CfC (hx becomes a pair)."""
    timespans: bool = False
    """Feed the cell each step's elapsed time (ncps's timespans), in nominal steps: the
    shards' `elapsed` in training, `info["duration"]` in play (1 where unknown), an `elapsed`
    input of the ONNX step and of `predict`. For envs whose steps vary
    (`--frame-skip-jitter`)."""
    skip_head: bool = False
    """Add a linear readout of the encoder's features to the CfC's logits. On the Pong
    planner's data the ConvCfC alone predicted no paddle move in 1,500 steps (3 seeds); with
    this head it learned them as the CNN with a linear head does (experiments/log.md)."""
    prev_action: bool = False
    """Also feed the CfC (and the skip head) a one-hot of the action ALE executed at the step
    before (zeros at an episode's first step), as R2D2's and IMPALA's recurrent agents take it.
    On the Pong planner's exact state it lifted a DAgger clone from 12.6 to 15.7 at round 5
    (experiments/log.md)."""
    stack: int = field(default=4, metadata={"derived": True})
    """Frames per observation (from the env)."""
    screen_size: int = field(default=84, metadata={"derived": True})
    """Frame height and width (from the env)."""
    action_meanings: list[str] = field(default_factory=list, metadata={"derived": True})
    """The env's action names, e.g. ['NOOP', 'FIRE', 'RIGHT', 'LEFT']; empty where unknown."""
    obs: ObsSpec = field(default_factory=ObsSpec, metadata={"derived": True})
    """What one observation is (from the dataset): frames, or state vectors of dim numbers."""
    action: ActionSpec = field(default_factory=ActionSpec, metadata={"derived": True})
    """What one action is (from the dataset): an index, or a bounded Box vector."""
    obs_mask: list[int] | None = field(default=None, metadata={"derived": True})
    """The indices of a state vector the policy sees (from the env config); None: all."""

    def __post_init__(self):
        self.check_choices()
        for name in ("units", "stack", "screen_size", "hidden"):
            value = getattr(self, name)
            check(is_int(value) and value >= 1, f"expected {name} >= 1, got {value!r}")
        check(
            is_int(self.n_actions) and self.n_actions >= 0,
            f"expected n_actions >= 0, got {self.n_actions!r}",
        )
        for name in ("backbone_units", "backbone_layers"):
            value = getattr(self, name)
            check(
                value is None or (is_int(value) and value >= 1),
                f"expected {name} >= 1, got {value!r}",
            )
        meanings = self.action_meanings
        check(
            not meanings or len(meanings) == self.n_actions,
            f"expected {self.n_actions} action meanings, got {len(meanings)}: {meanings}",
        )
        check(
            not self.action.is_box or self.n_actions in (0, self.action.dim),
            f"expected n_actions {self.action.dim} for a Box({self.action.dim}), got "
            f"{self.n_actions}",
        )
        check(
            not (self.action.is_box and self.prev_action),
            "prev_action reads discrete actions; a Box policy cannot take it",
        )
        smallest = smallest_frame(self.encoder)
        check(
            self.obs.kind != "image" or self.screen_size >= smallest,
            f"encoder {self.encoder} takes frames of at least {smallest}x{smallest} pixels, got "
            f"{self.screen_size} (the data's screen_size; the tutorial and impala encoders "
            "take any)",
        )
        check(
            self.features is None
            or (is_int(self.features) and self.features >= 1 and self.encoder != "tutorial"),
            f"expected features >= 1 with the nature or impala encoder, got {self.features!r} "
            f"with {self.encoder} (the tutorial's ends in a pooling of 256 channels)",
        )
        check(
            not (self.timespans and self.core == "none"),
            "timespans go to a cell: cfc or ltc, not core none",
        )
        problem = check_core(self)
        check(problem is None, problem or "")
        mask = self.obs_mask
        check(
            mask is None
            or (self.obs.kind == "vector" and all(0 <= i < self.obs.dim for i in mask)),
            f"obs_mask {mask} must index the {self.obs.dim} numbers of a state vector",
        )

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """One observation as the policy takes it: (stack, H, W) or (stack, d)."""
        return (self.stack, *self.obs.shape(self.screen_size))

    @property
    def obs_dtype(self) -> torch.dtype:
        return torch.uint8 if self.obs.kind == "image" else torch.float32
