"""StatefulAgent: a ConvCfC playing N envs closed-loop, its hidden state kept on the device.

The agent carries the CfC state from step to step and zeroes it, per env, where an episode
starts. It is a `cfcclone.rollout.Actor`, so the one rollout loop drives it:

    agent = StatefulAgent.for_env(policy, env)
    for t in rollout(env, agent, seed=0):
        ...
"""

from __future__ import annotations

import numpy as np
import torch

from cfcclone.models import ConvCfC


def resolve_device(name: str | torch.device) -> torch.device:
    """The torch device for `name`: auto is CUDA where torch sees one, else the CPU; a name
    torch cannot use is a ValueError."""
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no CUDA device")
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise ValueError(
            f"unknown device {name!r} ({e}); expected auto, cpu, cuda or cuda:N"
        ) from None


def check_policy_matches_env(policy, action_meanings: list[str]) -> None:
    """Raise a ValueError if the actions of `policy` (a ConvCfC, or an agent with its
    PolicyConfig as `.config`) are not the env's actions."""
    c = policy.config
    if c.n_actions != len(action_meanings):
        raise ValueError(
            f"policy has {c.n_actions} actions but the env has {len(action_meanings)} "
            f"({action_meanings}); use a checkpoint trained on this game"
        )
    if c.action_meanings and list(c.action_meanings) != list(action_meanings):
        raise ValueError(
            f"policy actions {c.action_meanings} differ from the env's {action_meanings}"
        )


class StatefulAgent:
    """Greedy (temperature 0) or sampled actions for N envs from one batched CfC step."""

    def __init__(
        self,
        policy: ConvCfC,
        num_envs: int,
        device: str | torch.device = "cpu",
        temperature: float = 0.0,
        seed: int | None = None,
    ):
        if num_envs < 1:
            raise ValueError(f"expected num_envs >= 1, got {num_envs}")
        if temperature < 0:
            raise ValueError(f"expected temperature >= 0, got {temperature}")
        self.device = resolve_device(device)
        self.policy = policy.to(self.device).eval()
        self.num_envs = num_envs
        self.temperature = temperature
        self.generator = torch.Generator(self.device)
        if seed is not None:
            self.generator.manual_seed(seed)
        self.reset()

    @classmethod
    def for_env(cls, policy: ConvCfC, env, device="cpu", **kwargs) -> StatefulAgent:
        """An agent sized for `env` (one env or a vector env), after checking its actions."""
        check_policy_matches_env(policy, env.action_meanings)
        return cls(policy, getattr(env, "num_envs", 1), device, **kwargs)

    @property
    def config(self):
        """The policy's PolicyConfig (its actions)."""
        return self.policy.config

    def reset(self) -> None:
        """Zero the hidden state of every env."""
        self.hx = self.policy.initial_state(self.num_envs, self.device)

    def _to_device(self, obs) -> torch.Tensor:
        obs = torch.as_tensor(obs)
        if obs.dim() == 3 and self.num_envs == 1:
            obs = obs.unsqueeze(0)
        self.policy.check_obs(obs, 4)
        if obs.shape[0] != self.num_envs:
            raise ValueError(f"expected obs for {self.num_envs} envs, got {obs.shape[0]}")
        return obs.to(self.device, non_blocking=True)

    def _mask(self, episode_start) -> torch.Tensor:
        start = torch.as_tensor(episode_start)
        if start.dim() == 0 and self.num_envs == 1:
            start = start.reshape(1)
        if start.shape != (self.num_envs,) or start.dtype != torch.bool:
            raise ValueError(
                f"expected episode_start ({self.num_envs},) bool, got "
                f"{tuple(start.shape)} {str(start.dtype).replace('torch.', '')}"
            )
        return start.to(self.device, non_blocking=True)[:, None]  # (N, T=1)

    @torch.inference_mode()
    def step(self, obs, episode_start) -> torch.Tensor:
        """One CfC step: zero the state where `episode_start`, then advance every env.

        obs (N, stack, 84, 84) uint8 (numpy or torch), episode_start (N,) bool.
        Returns logits (N, n_actions) float on the device.
        """
        x = self._to_device(obs)
        logits, self.hx = self.policy(x[:, None], self.hx, self._mask(episode_start))
        return logits[:, 0]

    def act(self, obs, episode_start, info: dict | None = None) -> np.ndarray:
        """Actions (N,) int64 for obs (N, stack, 84, 84) uint8 and episode_start (N,) bool
        (the Actor protocol; info is not used)."""
        logits = self.step(obs, episode_start)
        if self.temperature == 0:
            actions = logits.argmax(-1)
        else:
            probs = torch.softmax(logits.float() / self.temperature, -1)
            actions = torch.multinomial(probs, 1, generator=self.generator)[:, 0]
        return actions.cpu().numpy().astype(np.int64)
