"""cfcclone: recurrent behavior cloning with liquid (CfC) networks: Atari games from frames,
and any gymnasium env from state vectors or rendered frames, with discrete or Box actions.

The pipeline, as the command line runs it:

    from cfcclone import TrainConfig, collect, evaluate_policy, load_policy, train
    collect("data/breakout", "breakout", "tracker", frames=100_000)      # expert data
    train(TrainConfig(data="data/breakout", out="runs/bc", epochs=10))   # a ConvCfC clone
    loaded = load_policy("runs/bc/best.safetensors")                     # LoadedPolicy
    print(evaluate_policy(loaded.policy, loaded.env_config, episodes=30).line())
"""

__version__ = "0.1.0"

from cfcclone.agent import StatefulAgent
from cfcclone.checkpoint import LoadedPolicy, load_policy, save_policy
from cfcclone.dagger import DaggerConfig, run_dagger
from cfcclone.data import SequenceDataset, collect
from cfcclone.envs import EnvConfig, action_meanings, make_env
from cfcclone.evaluation import evaluate_expert, evaluate_policy
from cfcclone.experts import make_expert
from cfcclone.models import ConvCfC, PolicyConfig
from cfcclone.play import play
from cfcclone.rollout import Actor, Transition, rollout
from cfcclone.spaces import ActionSpec, ObsSpec
from cfcclone.training import OptimConfig, TrainConfig, Trainer, WindowConfig, train
from cfcclone.vector_env import make_vector_env

__all__ = [
    "ActionSpec",
    "Actor",
    "ConvCfC",
    "DaggerConfig",
    "EnvConfig",
    "LoadedPolicy",
    "ObsSpec",
    "OptimConfig",
    "PolicyConfig",
    "SequenceDataset",
    "StatefulAgent",
    "TrainConfig",
    "Trainer",
    "Transition",
    "WindowConfig",
    "__version__",
    "action_meanings",
    "collect",
    "evaluate_expert",
    "evaluate_policy",
    "load_policy",
    "make_env",
    "make_expert",
    "make_vector_env",
    "play",
    "rollout",
    "run_dagger",
    "save_policy",
    "train",
]
