"""Expert data: collection, the on-disk format, the sequence dataset, tutorial interop."""

from cfcclone._lazy import lazy_package

lazy_package(
    __name__,
    {
        "Batch": "cfcclone.data.batch",
        "DatasetError": "cfcclone.data.format",
        "SequenceDataset": "cfcclone.data.dataset",
        "collect": "cfcclone.data.collect",
        "expand_stacks": "cfcclone.data.batch",
    },
)

__all__ = ["Batch", "DatasetError", "SequenceDataset", "collect", "expand_stacks"]
