"""Data: a registry of data sets decoded to uint8 tensors (`datasets`, `folders`), cached on disk
(`cache`), split (`stratified`), and turned into augmented batches of model inputs on the device
(`batches`, `augment`, `mixing`, `preprocessing`).

May import: vitcli.settings, vitcli.runtime, vitcli.errors, vitcli.events.
"""

from vitcli.data.batches import Batches
from vitcli.data.datasets import SPLITS, ChannelStats, DatasetInfo, Split, Splits, load_splits

__all__ = ["SPLITS", "Batches", "ChannelStats", "DatasetInfo", "Split", "Splits", "load_splits"]
