"""Meta-learning algorithms over any Keras model: functional inner loop, MAML family, Reptile."""

from mann.meta.inner_loop import forward
from mann.meta.inner_loop import sgd_adapt
from mann.meta.losses import CLASSIFICATION
from mann.meta.losses import REGRESSION
from mann.meta.losses import TaskObjective
from mann.meta.maml import GradientMetaLearner
from mann.meta.maml import MAML
from mann.meta.maml import TASK_MAPPINGS
from mann.meta.reptile import Reptile
from mann.meta.transfer import Transfer
from mann.meta.episodic import Episodic
