"""Expert data: collection, the on-disk format, the sequence dataset, tutorial interop."""

from cfcclone.data.collect import collect
from cfcclone.data.dataset import Batch, SequenceDataset, expand_stacks
from cfcclone.data.format import DatasetError

__all__ = ["Batch", "DatasetError", "SequenceDataset", "collect", "expand_stacks"]
