"""tf.distribute strategies for meta-training, and the CPU split that tests them here.

Replicas split each meta-batch of T tasks into R equal slices (replica r: tasks
r*T/R .. (r+1)*T/R - 1, in the one-replica order); each computes the mean meta-gradient
of its slice, and the trainer averages those over the replicas before one update, so an
R-replica step is the one-replica step up to float round-off (mann.training.trainer).
"""

from typing import Optional

import tensorflow as tf

from mann import errors

STRATEGIES = ("default", "one_device", "mirrored", "tpu", "multi_worker")


def split_cpu(num_devices: int) -> None:
  """Splits this machine's CPU into num_devices logical devices (/CPU:0 .. /CPU:N-1),
  so that multi-replica strategies run without accelerators. Must come before
  TensorFlow initialises its devices (before the first op or device query).

  Raises:
    errors.UserInputError: TensorFlow's devices are already initialised with another
      split, or num_devices < 1.
  """
  if num_devices < 1:
    raise errors.UserInputError(f"--num_cpu_devices must be >= 1, got {num_devices}")
  cpu = tf.config.list_physical_devices("CPU")[0]
  wanted = [tf.config.LogicalDeviceConfiguration()] * num_devices
  current = tf.config.get_logical_device_configuration(cpu)
  if current is not None and len(current) == num_devices:
    return
  try:
    tf.config.set_logical_device_configuration(cpu, wanted)
  except RuntimeError as e:
    raise errors.UserInputError(
      f"cannot split the CPU into {num_devices} devices: TensorFlow's devices are "
      f"already initialised ({e}); split it before the first TensorFlow op"
    ) from None


def _local_devices() -> list[str]:
  """Every GPU, else every logical CPU device."""
  gpus = tf.config.list_logical_devices("GPU")
  return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


def make_strategy(name: str, *, tpu: Optional[str] = None) -> tf.distribute.Strategy:
  """The strategy called `name` (one of STRATEGIES).

  default: TensorFlow's default (no distribution: one device, TensorFlow's placement);
  one_device: the first GPU, else the CPU; mirrored: one replica per local GPU (else per
  logical CPU device, see split_cpu); tpu: a TPUStrategy on the TPU at `tpu` (a name or
  grpc:// address; "" or None: the local TPU); multi_worker: MultiWorkerMirroredStrategy
  over the cluster in $TF_CONFIG (one replica per worker's local GPU, else its CPU).
  """
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "one_device":
    return tf.distribute.OneDeviceStrategy(_local_devices()[0])
  if name == "mirrored":
    return tf.distribute.MirroredStrategy(devices=_local_devices())
  if name == "tpu":
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
  if name == "multi_worker":
    return tf.distribute.MultiWorkerMirroredStrategy()
  raise errors.UserInputError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """Whether this process writes the run's files: the only process, or the cluster's
  chief (task 0 of the chief, else of the workers, as TF_CONFIG names them)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.cluster_spec().as_dict():
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  if task_type == "chief":
    return True
  has_chief = "chief" in resolver.cluster_spec().as_dict()
  return task_type == "worker" and task_id == 0 and not has_chief


def check_meta_batch(meta_batch_size: int, strategy: tf.distribute.Strategy) -> int:
  """The tasks per replica; a meta-batch the replicas cannot share equally is refused."""
  replicas = strategy.num_replicas_in_sync
  if meta_batch_size % replicas:
    raise errors.UserInputError(
      f"--meta_batch_size={meta_batch_size} does not split over {replicas} replicas: "
      f"use a multiple of {replicas}"
    )
  return meta_batch_size // replicas
