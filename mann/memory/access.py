"""One step of the MANN's memory access (Santoro et al. 2016): address, write, read, usage.

The function the Keras MANN cell (mann.models.recurrent) and its task-batched form
(mann.models.task_batched_sequence) both call, so that the two run the same equations.
"""

from typing import Optional

import tensorflow as tf

from mann.memory import addressing
from mann.memory import lrua


def lrua_step(
  memory: tf.Tensor,
  usage: tf.Tensor,
  read_weights: tf.Tensor,
  keys: tf.Tensor,
  gate_logits: tf.Tensor,
  strengths: Optional[tf.Tensor],
  *,
  usage_decay: float,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
  """Reads and writes one step, equations (3)-(8).

  The read weights address the memory as it was before this step's write (addressed
  after it, each key would find the row it has just written, cosine 1, and the read
  would return the key itself); the read vectors take the written memory. Each write
  head writes the key of the read head of the same index.

  Args:
    memory: [B, memory_size, word_size], M_{t-1}.
    usage: [B, memory_size], w_u_{t-1}.
    read_weights: [B, num_reads, memory_size], w_r_{t-1}.
    keys: [B, num_reads, word_size], k_t.
    gate_logits: [B, num_reads], alpha_t.
    strengths: [B, num_reads] key strengths, or None (the paper's equation (3)).
    usage_decay: gamma.

  Returns:
    (read vectors [B, num_reads, word_size], M_t, w_u_t, w_r_t).
  """
  num_reads = keys.shape[1]
  write_weights = lrua.write_weights(
    gate_logits, read_weights, lrua.least_used_weights(usage, num_reads)
  )
  read_weights = addressing.content_weights(memory, keys, strengths)
  memory = lrua.write(memory, write_weights, keys, lrua.least_used_weights(usage, 1))
  read_vectors = addressing.read(memory, read_weights)
  usage = lrua.update_usage(usage, read_weights, write_weights, usage_decay)
  return read_vectors, memory, usage, read_weights
