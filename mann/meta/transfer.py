"""The transfer-learning baseline: pretrain on all tasks as one problem, fine-tune at test.

Finn et al. 2017 compare MAML with "pretraining on all of the tasks ... and then, at
test-time, fine-tuning with gradient descent on the K provided points". Training
here minimises the plain loss on every point of every task in the meta-batch, with
no inner loop; meta-test is the shared GradientMetaLearner.evaluate_tasks: SGD on the
support set from the pretrained weights. Regression only: for classification the
pretraining needs a head over all training classes, which this class does not build.
"""

import tensorflow as tf

from mann.data import episode as episode_lib
from mann.meta import inner_loop
from mann.meta import maml


class Transfer(maml.GradientMetaLearner):
  """Pretraining on the pooled points of all tasks; fine-tuning by SGD at test."""

  def compute_gradients(self, meta_batch: episode_lib.Episode, step=0):
    """Gradient of the loss on all support and query points of all tasks, pooled."""
    del step

    def pooled(support, query):
      both = tf.concat([support, query], axis=1)  # [T, K + Q, D]
      return tf.reshape(both, [-1, *both.shape[2:]])

    x = pooled(meta_batch.support_x, meta_batch.query_x)
    y = pooled(meta_batch.support_y, meta_batch.query_y)
    weights, non_trainable = self._weights()
    with tf.GradientTape() as tape:
      tape.watch(weights)
      outputs = inner_loop.forward(self.model, weights, non_trainable, x, training=True)
      loss = self.objective.loss(y, outputs)
    gradients = tape.gradient(loss, weights)
    return gradients, {"loss": loss, self.objective.metric_name: self.objective.metric(y, outputs)}
