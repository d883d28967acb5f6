"""The recurrent core: ncps's CfC or LTC cell, dense or wired as a neural circuit policy.

`PolicyConfig.core` picks the cell (`--cell`, or `--core`): `cfc` (closed-form continuous
time), `ltc` (the liquid time-constant ODE, unfolded 6 times a step: slower, as ncps says) or
`none` (no recurrence). `PolicyConfig.wiring` picks how its neurons connect:

- `dense`: every neuron sees every input and every neuron. A dense CfC of `units` neurons
  projects them to the actions with a linear layer (ncps's `proj_size`), as it always has;
  a dense LTC is ncps's `FullyConnected(units, output_dim=n_actions)`: its first n_actions
  neurons are the motor neurons.
- `autoncp`: ncps's `AutoNCP(units, n_actions, sparsity)`: inter, command and motor neurons
  in layers with sparse synapses, one motor neuron per action.
- `ncp`: ncps's `NCP` with the sizes in `PolicyConfig.ncp`: inter neurons, command neurons,
  sensory fan-out, inter fan-out, recurrent command synapses, motor fan-in; one motor neuron
  per action, so `units` is inter + command + n_actions.

A motor neuron's state is bounded (a wired CfC's by tanh, in [-1, 1]), and logits bounded so
leave a policy at the majority action (a 4-action softmax can reach only 0.71): each action's
output is a linear readout of the motor neurons (n_actions^2 + n_actions weights: ncps's
`proj_size` for a wired CfC, `ConvCfC.readout` for the LTC, whose own output mapping is one
scale per neuron).

Everything is built from ncps's own classes; a wiring's synapses are ncps's sparsity masks,
stored (as non-trainable parameters) in the checkpoint, so training never adds one. The
wirings are seeded (ncps's default seeds): the same config gives the same wiring.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn as nn
from ncps.torch import LTC, CfC
from ncps.wirings import NCP, AutoNCP, FullyConnected, Wiring

Cell = Literal["cfc", "ltc", "none"]
WiringName = Literal["dense", "autoncp", "ncp"]
NCP_SIZES = (
    "inter_neurons",
    "command_neurons",
    "sensory_fanout",
    "inter_fanout",
    "recurrent_command_synapses",
    "motor_fanin",
)
"""The numbers of `PolicyConfig.ncp`, in order: ncps.wirings.NCP's, less its motor neurons
(the actions)."""


def check_core(config) -> str | None:
    """What is wrong with a PolicyConfig's core, cell and wiring options (None: nothing)."""
    c, n = config, config.n_actions
    if c.core == "none":
        return None if c.wiring == "dense" else f"wiring {c.wiring} needs a cell (cfc or ltc)"
    if c.wiring != "dense" and (c.backbone_units or c.backbone_layers):
        return "backbone_units and backbone_layers apply to a dense CfC, not a wired one"
    if c.core == "ltc" and (c.mode != "default" or c.backbone_units or c.backbone_layers):
        return "mode, backbone_units and backbone_layers apply to the CfC, not to the LTC"
    if not 0.1 <= c.sparsity <= 0.9:
        return f"expected sparsity in [0.1, 0.9], got {c.sparsity}"
    if c.wiring == "ncp":
        if c.ncp is None or len(c.ncp) != len(NCP_SIZES) or min(c.ncp) < 1:
            return f"wiring ncp needs --ncp with {len(NCP_SIZES)} numbers >= 1: " + " ".join(
                NCP_SIZES
            )
        if n and c.units != c.ncp[0] + c.ncp[1] + n:
            return (
                f"wiring ncp with {c.ncp[0]} inter, {c.ncp[1]} command and {n} motor neurons "
                f"has {c.ncp[0] + c.ncp[1] + n} units, not {c.units}: pass --units "
                f"{c.ncp[0] + c.ncp[1] + n}"
            )
    elif c.ncp is not None:
        return "--ncp goes with --wiring ncp"
    if c.wiring == "autoncp" and n and n >= c.units - 2:
        return f"wiring autoncp needs more than n_actions + 2 = {n + 2} units, got {c.units}"
    if c.core == "ltc" and c.wiring == "dense" and n and c.units < n:
        return f"a dense LTC's motor neurons are its actions: expected units >= {n}"
    return None


def make_wiring(config) -> Wiring | None:
    """The ncps wiring of a PolicyConfig (not yet built for its inputs); None for a dense
    CfC, whose neurons ncps connects itself."""
    c, n = config, config.n_actions
    if c.wiring == "autoncp":
        return AutoNCP(c.units, n, sparsity_level=c.sparsity)
    if c.wiring == "ncp":
        inter, command, *fan = c.ncp
        return NCP(inter, command, n, *fan)
    if c.core == "ltc":
        return FullyConnected(c.units, output_dim=n)
    return None


def make_core(config, inputs: int) -> nn.Module:
    """ncps's CfC or LTC of a PolicyConfig over `inputs` features; its output per step is
    n_actions wide (logits, or a Box's scaled action)."""
    c = config
    wiring = make_wiring(c)
    if c.core == "cfc" and wiring is None:
        return CfC(
            inputs,
            c.units,
            proj_size=c.n_actions,
            batch_first=True,
            mixed_memory=c.mixed_memory,
            mode=c.mode,
            backbone_units=c.backbone_units,
            backbone_layers=c.backbone_layers,
        )
    if c.core == "cfc":  # the motor neurons, then a linear readout (a state is bounded)
        return CfC(inputs, wiring, proj_size=c.n_actions, batch_first=True,
                   mixed_memory=c.mixed_memory, mode=c.mode)  # fmt: skip
    return LTC(inputs, wiring, batch_first=True, mixed_memory=c.mixed_memory)


def wiring_of(rnn: nn.Module) -> Wiring | None:
    """The (built) wiring of a core made by `make_core`; None for a dense CfC."""
    if isinstance(rnn, CfC):
        return rnn.wiring if getattr(rnn, "wired_mode", False) else None
    return rnn._wiring


def synapse_masks(rnn: nn.Module) -> dict[str, np.ndarray]:
    """The sparsity masks a wired core applies to its weights, by parameter name: a weight
    where the mask is 0 has no synapse and no effect."""
    return {
        name: p.detach().cpu().numpy()
        for name, p in rnn.named_parameters()
        if "sparsity_mask" in name and not p.requires_grad
    }


def recurrent_parameters(rnn: nn.Module, inputs: int) -> tuple[int, int]:
    """(trainable parameters, those that act): an entry acts where it gets a gradient from a
    random sequence, so a weight that a wiring's mask cancels (no synapse) does not count."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, inputs, generator=generator)
    rnn.zero_grad(set_to_none=True)
    out, _ = rnn(x)
    (out * torch.randn(out.shape, generator=generator)).sum().backward()
    params = [p for p in rnn.parameters() if p.requires_grad]
    total = sum(p.numel() for p in params)
    acting = sum(int((p.grad != 0).sum()) for p in params if p.grad is not None)
    rnn.zero_grad(set_to_none=True)
    return total, acting


def run_timed(rnn: nn.Module, x: torch.Tensor, hx, timespans: torch.Tensor):
    """ncps's CfC or LTC over x (B, T, F) from hx, each step of each row taking its own
    elapsed time, timespans (B, T): (out (B, T, n), hx).

    ncps's own forward squeezes a step's timespans to (B,), which the cells then broadcast
    against (B, units): a crash, or where B equals the units every row's time mixed up (ncps
    issues #81 and #82; the fix, PR #85, is not merged). This is the loop of that forward with
    the timespans kept (B, 1), so each row's time scales its own state; for B = 1 it equals
    ncps's forward (a test holds the batched result to one-sample calls)."""
    mixed = rnn.use_mixed
    b = x.shape[0]
    if hx is None:
        zeros = torch.zeros(b, rnn.state_size, device=x.device)
        hx = (zeros, zeros.clone()) if mixed else zeros
    h, c = hx if mixed else (hx, None)
    readout = getattr(rnn, "fc", None) or nn.Identity()  # the CfC's projection; LTC has none
    outs = []
    for t in range(x.shape[1]):
        inputs = x[:, t]
        if mixed:
            h, c = rnn.lstm(inputs, (h, c))
        out, h = rnn.rnn_cell(inputs, h, timespans[:, t : t + 1].to(x.dtype))
        outs.append(readout(out))
    return torch.stack(outs, 1), ((h, c) if mixed else h)
