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


from cfcclone._lazy import lazy_package

lazy_package(
    __name__,
    {
        "ActionSpec": "cfcclone.spaces",
        "Actor": "cfcclone.rollout",
        "ConvCfC": "cfcclone.models",
        "DaggerConfig": "cfcclone.dagger",
        "EnvConfig": "cfcclone.envs",
        "LoadedPolicy": "cfcclone.checkpoint",
        "ObsSpec": "cfcclone.spaces",
        "OptimConfig": "cfcclone.training",
        "PolicyConfig": "cfcclone.models",
        "SequenceDataset": "cfcclone.data",
        "StatefulAgent": "cfcclone.agent",
        "TrainConfig": "cfcclone.training",
        "Trainer": "cfcclone.training",
        "Transition": "cfcclone.rollout",
        "WindowConfig": "cfcclone.training",
        "action_meanings": "cfcclone.envs",
        "collect": "cfcclone.data",
        "evaluate_expert": "cfcclone.evaluation",
        "evaluate_policy": "cfcclone.evaluation",
        "load_policy": "cfcclone.checkpoint",
        "make_env": "cfcclone.envs",
        "make_expert": "cfcclone.experts",
        "make_vector_env": "cfcclone.vector_env",
        "play": "cfcclone.play",
        "rollout": "cfcclone.rollout",
        "run_dagger": "cfcclone.dagger",
        "save_policy": "cfcclone.checkpoint",
        "train": "cfcclone.training",
    },
)

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
