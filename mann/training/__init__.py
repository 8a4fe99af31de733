"""The meta-trainer."""

from mann.training.checkpointing import restore_latest
from mann.training.trainer import train

__all__ = [
  "restore_latest",
  "train",
]
