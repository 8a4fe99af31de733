"""The meta-trainer."""

from mann.training.checkpointing import has_checkpoint
from mann.training.checkpointing import restore_latest
from mann.training.checkpointing import restore_model_weights
from mann.training.optimizers import FusedAdam
from mann.training.trainer import process_age_seconds
from mann.training.trainer import train

__all__ = [
  "FusedAdam",
  "has_checkpoint",
  "process_age_seconds",
  "restore_latest",
  "restore_model_weights",
  "train",
]
