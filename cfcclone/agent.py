"""StatefulAgent: a ConvCfC playing N envs closed-loop, its hidden state kept on the device.

The agent carries the CfC state from step to step and zeroes it, per env, where an episode
starts. The state of all N envs lives in one (N, units) tensor on the device; a step of the
envs `env_ids` gathers their rows, advances them and scatters them back, so asynchronous envs
that return a different batch of envs each step keep each env's memory its own. It is a
`cfcclone.rollout.Actor`, so the one rollout loop drives it:

    agent = StatefulAgent.for_env(policy, env)
    for t in rollout(env, agent, seed=0):
        ...

`cfcclone.runtime.make_agent` picks the runtime of a policy's agent: this torch agent, or the
same step exported in memory to onnxruntime (`cfcclone.export.OnnxAgent`), which runs the
nature encoder's step at batch 8 about 1.8x faster on one CPU thread.
"""

from __future__ import annotations

import numpy as np
import torch

from cfcclone.device import resolve_device
from cfcclone.models import ConvCfC
from cfcclone.rollout import elapsed_times

__all__ = [
    "StatefulAgent",
    "check_policy_matches_env",
    "elapsed_times",
    "previous_actions",
    "resolve_device",
    "step_inputs",
]


def check_policy_matches_env(policy, action_meanings: list[str], action_spec=None) -> None:
    """Raise a ValueError if the actions of `policy` (a ConvCfC, or an agent with its
    PolicyConfig as `.config`) are not the env's (or dataset's) actions: their meanings and,
    where given, their ActionSpec (a Box policy never plays a discrete env, nor the reverse)."""
    c = policy.config
    if action_spec is not None and (c.action.is_box, c.action.dim) != (
        action_spec.is_box,
        action_spec.dim,
    ):
        raise ValueError(
            f"policy acts in {c.action.describe(c.action_meanings)} but the env or data has "
            f"{action_spec.describe(action_meanings)}"
        )
    if c.action.is_box:
        return
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
        check_policy_matches_env(policy, env.action_meanings, getattr(env, "action_spec", None))
        return cls(policy, getattr(env, "num_envs", 1), device, **kwargs)

    @property
    def config(self):
        """The policy's PolicyConfig (its actions)."""
        return self.policy.config

    def reset(self) -> None:
        """Zero the hidden state of every env."""
        self.hx = self.policy.initial_state(self.num_envs, self.device)

    def _to_device(self, obs, batch: int) -> torch.Tensor:
        obs = torch.as_tensor(obs)
        shape = self.policy.config.obs_shape
        if obs.is_floating_point() and self.policy.config.obs_dtype == torch.float32:
            obs = obs.float()  # numpy's float64 states
        if obs.dim() == len(shape) and batch == 1:
            obs = obs.unsqueeze(0)
        self.policy.check_obs(obs, 1 + len(shape))
        if obs.shape[0] != batch:
            raise ValueError(f"expected obs for {batch} envs, got {obs.shape[0]}")
        return obs.to(self.device, non_blocking=True)

    def _mask(self, episode_start, batch: int) -> torch.Tensor:
        start = torch.as_tensor(episode_start)
        if start.dim() == 0 and batch == 1:
            start = start.reshape(1)
        if start.shape != (batch,) or start.dtype != torch.bool:
            raise ValueError(
                f"expected episode_start ({batch},) bool, got "
                f"{tuple(start.shape)} {str(start.dtype).replace('torch.', '')}"
            )
        return start.to(self.device, non_blocking=True)[:, None]  # (B, T=1)

    def _rows(self, env_ids) -> torch.Tensor | None:
        """env_ids as a device index, or None where they are all envs in order."""
        if env_ids is None:
            return None
        ids = np.asarray(env_ids, dtype=np.int64).reshape(-1)
        if len(ids) == self.num_envs and (ids == np.arange(self.num_envs)).all():
            return None
        if len(ids) and (ids.min() < 0 or ids.max() >= self.num_envs):
            raise ValueError(f"expected env ids in [0, {self.num_envs}), got {ids.tolist()}")
        if len(np.unique(ids)) != len(ids):
            raise ValueError(f"expected distinct env ids, got {ids.tolist()}")
        return torch.from_numpy(ids).to(self.device, non_blocking=True)

    @torch.inference_mode()
    def step(
        self, obs, episode_start, env_ids=None, prev_action=None, elapsed=None
    ) -> torch.Tensor:
        """One CfC step of the envs `env_ids` (default: all N in order): zero their state where
        `episode_start`, advance it, and leave every other env's state untouched.

        obs (B, stack, 84, 84) uint8 or (B, stack, d) float (numpy or torch), episode_start
        (B,) bool, env_ids (B,) int; prev_action (B,) int, for a policy with `prev_action`: the
        action each env executed last step (-1 where none); elapsed (B,) float, for a policy
        with `timespans`: the time each env's last step took (1: a nominal step). Returns the
        policy's out (B, n) float on the device: logits, or a Box action scaled to [-1, 1].
        """
        rows = self._rows(env_ids)
        batch = self.num_envs if rows is None else len(rows)
        x, start = self._to_device(obs, batch), self._mask(episode_start, batch)
        prev = None
        if prev_action is not None:
            prev = torch.as_tensor(np.asarray(prev_action, np.int64).reshape(batch, 1))
            prev = prev.to(self.device, non_blocking=True)
        times = None
        if elapsed is not None:
            times = torch.as_tensor(np.asarray(elapsed, np.float32).reshape(batch, 1))
            times = times.to(self.device, non_blocking=True)
        if rows is None:
            logits, self.hx = self.policy(x[:, None], self.hx, start, prev, times)
            return logits[:, 0]
        hx = tuple(h[rows] for h in self.hx) if isinstance(self.hx, tuple) else self.hx[rows]
        logits, hx = self.policy(x[:, None], hx, start, prev, times)
        if isinstance(self.hx, tuple):
            for h, new in zip(self.hx, hx, strict=True):
                h.index_copy_(0, rows, new)
        else:
            self.hx.index_copy_(0, rows, hx)
        return logits[:, 0]

    def act(self, obs, episode_start, info: dict | None = None) -> np.ndarray:
        """Actions (B,) int64, or (B, a) float32 within a Box's bounds, for obs and
        episode_start (B,) bool of the envs `info["env_id"]` (all N where info has none): the
        Actor protocol. A policy with `prev_action` reads `info["action"]`, what each env
        executed last step."""
        info = info or {}
        inputs = step_inputs(self.config, info, episode_start)
        out = self.step(obs, episode_start, info.get("env_id"), **inputs)
        return self.policy.actions(out, self.temperature, self.generator).cpu().numpy()


def step_inputs(config, info: dict, episode_start) -> dict[str, np.ndarray]:
    """What a policy (its PolicyConfig `config`) reads each step beside obs and episode_start,
    from the envs' info: `prev_action` for a policy with prev_action (`previous_actions`) and
    `elapsed` for a policy with timespans (`elapsed_times`). Every runtime's step takes these
    as keywords: the torch agent, the ONNX agent and `predict`."""
    inputs = {}
    if config.prev_action:
        inputs["prev_action"] = previous_actions(config, info, episode_start)
    if config.timespans:
        inputs["elapsed"] = elapsed_times(info, episode_start)
    return inputs


def previous_actions(config, info: dict, episode_start) -> np.ndarray | None:
    """For a policy with `prev_action` (its PolicyConfig `config`): the actions the envs
    executed last step, `info["action"]` (-1 at an episode's start, where the env reports
    none); None for other policies. An env whose info has no "action" past a start is a
    ValueError: the policy would play blind to its last move."""
    if not config.prev_action:
        return None
    start = np.asarray(episode_start, bool).reshape(-1)
    if "action" not in info:
        if not start.all():
            raise ValueError(
                "this policy reads the previous action, but the env's info has no 'action'; "
                "use cfcclone's envs (make_env, make_vector_env), which report it"
            )
        return np.full(len(start), -1, np.int64)
    return np.where(start, -1, np.asarray(info["action"], np.int64).reshape(-1))
