"""The meta-trainer."""

from mann.training.trainer import train
from mann.training.trainer import restore_latest
