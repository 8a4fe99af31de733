"""The meta-trainer."""

from mann.training.trainer import train
from mann.training.trainer import restore_latest

__all__ = [
    "restore_latest",
    "train",
]
