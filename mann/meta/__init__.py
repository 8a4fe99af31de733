"""Meta-learning algorithms over any Keras model: functional inner loop, MAML family, Reptile."""

from mann.meta import task_chunks as task_chunks  # a submodule, re-exported
from mann.meta.episodic import Episodic
from mann.meta.gradient_learner import INNER_STEP_TRACINGS
from mann.meta.gradient_learner import TASK_MAPPINGS
from mann.meta.gradient_learner import GradientMetaLearner
from mann.meta.inner_loop import forward
from mann.meta.inner_loop import sgd_adapt
from mann.meta.learner import MetaLearner
from mann.meta.losses import CLASSIFICATION
from mann.meta.losses import REGRESSION
from mann.meta.losses import STRING_CLASSIFICATION
from mann.meta.losses import TaskObjective
from mann.meta.maml import MAML
from mann.meta.reptile import Reptile
from mann.meta.task_format import INNER_LOSSES
from mann.meta.task_format import ExampleFormat
from mann.meta.task_format import SequenceFormat
from mann.meta.transfer import Transfer

__all__ = [
  "CLASSIFICATION",
  "Episodic",
  "ExampleFormat",
  "forward",
  "GradientMetaLearner",
  "INNER_LOSSES",
  "INNER_STEP_TRACINGS",
  "MAML",
  "MetaLearner",
  "REGRESSION",
  "Reptile",
  "SequenceFormat",
  "sgd_adapt",
  "STRING_CLASSIFICATION",
  "TASK_MAPPINGS",
  "TaskObjective",
  "Transfer",
]
