"""The transfer-learning baseline: pretrain on all tasks as one problem, fine-tune at test.

Finn et al. 2017 compare MAML with "pretraining on all of the tasks ... and then, at
test-time, fine-tuning with gradient descent on the K provided points".

Regression (sinusoid): training minimises the plain loss on every point of every
task in the meta-batch, pooled; meta-test fine-tunes all weights by SGD on the
support set (GradientMetaLearner.evaluate_tasks).

Classification: the meta-batch's images carry their training-class labels (sampler
with class_labels=True), and training minimises cross-entropy over all training
classes through a head of its own (num_pretrain_classes wide) on the model's
penultimate features. Meta-test replaces that head with the model's N-way head set to
zero (so the initial prediction is uniform) and fine-tunes every weight by SGD on
the support set.
"""

from typing import Optional

import keras
import tensorflow as tf

from mann.data import episode as episode_lib
from mann.meta import gradient_learner
from mann.meta import inner_loop
from mann.meta import learner
from mann.meta import losses


def _pooled(support, query):
  """[T, K, ...] and [T, Q, ...] -> [T * (K + Q), ...]."""
  both = tf.concat([support, query], axis=1)
  return tf.reshape(both, [-1, *both.shape[2:]])


class Transfer(gradient_learner.GradientMetaLearner):
  """Pretraining on the pooled examples of all tasks; fine-tuning by SGD at test."""

  def __init__(
    self,
    model: keras.Model,
    *,
    objective: losses.TaskObjective,
    num_inner_steps: int,
    inner_lr: float,
    task_mapping: str = "auto",
    num_pretrain_classes: Optional[int] = None,
    inner_step_tracing: str = "auto",
  ):
    """Args:
    model: the model fine-tuned at test; for classification a Keras model whose last
      layer is the N-way Dense head (its input is the feature vector).
    objective: losses.REGRESSION or losses.CLASSIFICATION.
    num_inner_steps: unused in training (no inner loop); kept for the interface.
    inner_lr: the fine-tuning SGD rate at test.
    task_mapping: how test tasks run (see mann.meta.gradient_learner).
    num_pretrain_classes: classification only: how many training classes the
      pretraining head separates.
    inner_step_tracing: how the test-time fine-tuning steps are traced (see
      mann.meta.gradient_learner.GradientMetaLearner).
    """
    super().__init__(
      model,
      objective=objective,
      num_inner_steps=num_inner_steps,
      inner_lr=inner_lr,
      task_mapping=task_mapping,
      inner_step_tracing=inner_step_tracing,
    )
    self.pretrain_head = None
    if num_pretrain_classes is not None:
      head = model.layers[-1]
      if not isinstance(head, keras.layers.Dense):
        raise ValueError("Transfer for classification needs a model ending in a Dense head")
      self.features = keras.Model(model.inputs, head.input)
      num_features = head.kernel.shape[0]
      initializer = keras.initializers.GlorotUniform()
      self.pretrain_head = [
        tf.Variable(
          initializer((num_features, num_pretrain_classes)),
          name="pretrain_kernel",
          dtype=self.dtype,
        ),
        tf.Variable(tf.zeros([num_pretrain_classes], self.dtype), name="pretrain_bias"),
      ]

  @property
  def trainable_variables(self) -> list[tf.Variable]:
    if self.pretrain_head is None:
      return list(self.model.trainable_variables)
    return list(self.features.trainable_variables) + self.pretrain_head

  def checkpoint_items(self) -> dict:
    items = super().checkpoint_items()
    if self.pretrain_head is not None:
      items["pretrain_head"] = self.pretrain_head
    return items

  def _weights(self):
    """At test: the pretrained weights, with the N-way head zeroed for classification."""
    weights, non_trainable = super()._weights()
    if self.pretrain_head is not None:
      weights = weights[:-2] + [tf.zeros_like(w) for w in weights[-2:]]
    return weights, non_trainable

  # The tasks' examples are pooled into one batch, normalised together.
  not_separable_because = "Transfer pools every task's examples into one batch-norm batch"

  @learner.traced_as_written
  def compute_gradients(self, meta_batch: episode_lib.Episode, step=0):
    """Gradient of the loss on all support and query examples of all tasks, pooled."""
    del step
    x = _pooled(meta_batch.support_x, meta_batch.query_x)
    y = _pooled(meta_batch.support_y, meta_batch.query_y)
    if self.pretrain_head is None:
      weights, non_trainable = super()._weights()
      with tf.GradientTape() as tape:
        tape.watch(weights)
        outputs = inner_loop.forward(self.model, weights, non_trainable, x, training=True)
        loss = self.objective.loss(y, outputs)
      gradients = tape.gradient(loss, weights)
    else:
      with tf.GradientTape() as tape:
        kernel, bias = self.pretrain_head
        outputs = self.features(x, training=True) @ kernel + bias
        loss = self.objective.loss(y, outputs)
      gradients = tape.gradient(loss, self.trainable_variables)
    return gradients, {"loss": loss, self.objective.metric_name: self.objective.metric(y, outputs)}
