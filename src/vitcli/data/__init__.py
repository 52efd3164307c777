"""Data: a registry of data sets decoded to uint8 tensors (`datasets`), cached on disk (`cache`), and
turned into augmented batches of model inputs on the device (`batches`)."""

from vitcli.data.batches import Batches
from vitcli.data.datasets import SPLITS, ChannelStats, DatasetInfo, Split, Splits, load_splits

__all__ = ["SPLITS", "Batches", "ChannelStats", "DatasetInfo", "Split", "Splits", "load_splits"]
