"""Policies: a convolutional encoder per frame stack, feeding an ncps CfC over time."""

from cfcclone._lazy import lazy_package

lazy_package(
    __name__,
    {
        "ConvCfC": "cfcclone.models.policy",
        "ENCODERS": "cfcclone.models.encoders",
        "PolicyConfig": "cfcclone.models.config",
        "make_encoder": "cfcclone.models.encoders",
    },
)

__all__ = ["ENCODERS", "ConvCfC", "PolicyConfig", "make_encoder"]
