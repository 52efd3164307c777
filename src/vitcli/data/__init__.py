"""Data: a registry of data sets decoded to uint8 tensors (`datasets`), cached on disk (`cache`), and
turned into normalised, augmented batches on the device (`batches`)."""

from vitcli.data.batches import Batches
from vitcli.data.datasets import DatasetInfo, Split, Splits, load_splits

__all__ = ["Batches", "DatasetInfo", "Split", "Splits", "load_splits"]
