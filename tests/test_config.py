"""Config dataclasses: strict round trips, nested configs, Literal choices, field docs."""

import pytest

from cfcclone.config import field_docs, replace_path
from cfcclone.dagger import DaggerConfig
from cfcclone.data.manifest import Manifest
from cfcclone.envs import EnvConfig
from cfcclone.training import OptimConfig, TrainConfig, WindowConfig


def test_nested_configs_round_trip_exactly():
    train = TrainConfig(data="d", out="o", optim=OptimConfig(lr=3e-4), window=WindowConfig(16))
    assert TrainConfig.from_dict(train.to_dict()) == train
    dagger = DaggerConfig(init="i", out="o", train=train)
    assert DaggerConfig.from_dict(dagger.to_dict()) == dagger
    m = Manifest("pong", EnvConfig("pong"), ["NOOP"], "planner", seed=3)
    assert Manifest.from_dict(m.to_dict()) == m


@pytest.mark.parametrize(
    "d, message",
    [
        ({"optim": {"lr": "fast"}}, "TrainConfig.optim.lr: expected float, got 'fast'"),
        ({"optim": {"momentum": 0.9}}, r"TrainConfig.optim: unknown fields \['momentum'\]"),
        ({"window": {"horizon": "long"}}, "unknown horizon 'long'; expected one of"),
        ({"batch": 0}, "expected batch >= 1, got 0"),
        ({"epochs": True}, "TrainConfig.epochs: expected int, got True"),
        ({"window": None}, "TrainConfig.window: expected a value, got null"),
        ([1], "TrainConfig: expected a JSON object, got list"),
    ],
)
def test_bad_dicts_name_the_field(d, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict(d)


def test_missing_fields_and_ints_as_floats():
    with pytest.raises(ValueError, match=r"DaggerConfig: missing fields \['init', 'out'\]"):
        DaggerConfig.from_dict({})
    assert OptimConfig.from_dict({"lr": 1}).lr == 1.0 and isinstance(
        OptimConfig.from_dict({"lr": 1}).lr, float
    )


def test_replace_path_and_docs():
    config = replace_path(TrainConfig(), {"optim.lr": 1e-3, "window.seq_len": 8, "epochs": 2})
    assert (config.optim.lr, config.window.seq_len, config.epochs) == (1e-3, 8, 2)
    assert config.optim.warmup == OptimConfig().warmup  # the rest kept
    docs = field_docs(TrainConfig)
    assert docs["batch"] == "Windows per batch." and "BPTT" in field_docs(WindowConfig)["seq_len"]
    assert all(field_docs(cls) for cls in (EnvConfig, OptimConfig, DaggerConfig, Manifest))
