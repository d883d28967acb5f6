"""Policies: a convolutional encoder per frame stack, feeding an ncps CfC over time."""

from cfcclone.models.encoders import ENCODERS, make_encoder
from cfcclone.models.policy import ConvCfC, PolicyConfig

__all__ = ["ENCODERS", "ConvCfC", "PolicyConfig", "make_encoder"]
