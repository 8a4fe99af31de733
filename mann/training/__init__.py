"""The meta-trainer."""

from mann.training.checkpointing import restore_latest
from mann.training.optimizers import FusedAdam
from mann.training.trainer import process_age_seconds
from mann.training.trainer import train

__all__ = [
  "FusedAdam",
  "process_age_seconds",
  "restore_latest",
  "train",
]
