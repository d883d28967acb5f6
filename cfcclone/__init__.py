"""cfcclone: recurrent behavior cloning of Atari experts with liquid (CfC) networks."""

__version__ = "0.1.0"

from cfcclone.agent import StatefulAgent
from cfcclone.checkpoint import load_policy, save_policy
from cfcclone.envs import EnvConfig, action_meanings, make_env, make_vector_env
from cfcclone.models import ConvCfC, PolicyConfig

__all__ = [
    "ConvCfC",
    "EnvConfig",
    "PolicyConfig",
    "StatefulAgent",
    "__version__",
    "action_meanings",
    "load_policy",
    "make_env",
    "make_vector_env",
    "save_policy",
]
