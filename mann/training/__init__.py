"""The meta-trainer."""

from mann.training.checkpointing import CHECKPOINT_FOLDER
from mann.training.checkpointing import KEPT_FOLDER
from mann.training.checkpointing import checkpoint_train_seconds
from mann.training.checkpointing import has_checkpoint
from mann.training.checkpointing import keep_weights_only
from mann.training.checkpointing import kept_checkpoints
from mann.training.checkpointing import latest_step
from mann.training.checkpointing import nonfinite_variables
from mann.training.checkpointing import restore_latest
from mann.training.checkpointing import restore_model_weights
from mann.training.checkpointing import state_variables
from mann.training.checkpointing import unreadable
from mann.training.optimizers import FusedAdam
from mann.training.run_log import LOG_FILE
from mann.training.run_log import TENSORBOARD_FOLDER
from mann.training.trainer import RESULTS_FILE
from mann.training.trainer import process_age_seconds
from mann.training.trainer import train
from mann.training.workdir_lock import LOCK_FILE
from mann.training.workdir_lock import hold_workdir

__all__ = [
  "CHECKPOINT_FOLDER",
  "FusedAdam",
  "KEPT_FOLDER",
  "LOCK_FILE",
  "LOG_FILE",
  "RESULTS_FILE",
  "TENSORBOARD_FOLDER",
  "checkpoint_train_seconds",
  "has_checkpoint",
  "hold_workdir",
  "keep_weights_only",
  "kept_checkpoints",
  "latest_step",
  "nonfinite_variables",
  "process_age_seconds",
  "restore_latest",
  "restore_model_weights",
  "state_variables",
  "train",
  "unreadable",
]
