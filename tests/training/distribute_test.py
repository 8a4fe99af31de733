"""Multi-replica meta-training equals one replica: mann/training/distribute.py and the
trainer's gradient averaging, on the CPU split into logical devices (tests/conftest.py).
"""

import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from mann import data
from mann import errors
from mann import training
from mann.data import episode as episode_lib
from mann.training import distribute
from tests import conftest
from tests.meta import conformance_test

META_BATCH_SIZE = 4
NUM_STEPS = 3


class _ShiftedTasks:
  """Episode i: the row's task i % 2 with its inputs shifted by 0.01 * i, so that the
  four tasks of a meta-batch, and the replicas' slices of it, all differ."""

  def __init__(self, tasks: episode_lib.Episode):
    self._tasks = tasks

  def episode(self, index):
    task = tf.nest.map_structure(lambda field: tf.gather(field, index % 2), self._tasks)
    shift = 0.01 * tf.cast(index, task.support_x.dtype)
    return task._replace(support_x=task.support_x + shift, query_x=task.query_x + shift)


def _train(row, strategy, optimizer_name, workdir, num_steps=NUM_STEPS, tasks_per_chunk=0):
  """The row's learner trained num_steps meta-steps under `strategy`: its weights."""
  sampler = _ShiftedTasks(row.tasks())
  with strategy.scope():
    learner = row.make(0)
    # Adam's epsilon well above round-off: a gradient that is zero up to round-off (a
    # bias before batch norm) would otherwise take steps of lr size in a random
    # direction, different on every summation order.
    optimizer = {
      "sgd": lambda: keras.optimizers.SGD(0.1),
      "adam": lambda: keras.optimizers.Adam(1e-2, epsilon=1e-4),
      "fused_adam": lambda: training.FusedAdam(1e-2, epsilon=1e-4),
    }[optimizer_name]()
  training.train(
    learner=learner,
    optimizer=optimizer,
    make_batches=lambda start, shard: data.meta_batches(
      sampler, meta_batch_size=META_BATCH_SIZE, start_step=start, shard=shard
    ),
    num_steps=num_steps,
    workdir=str(workdir),
    log_every=1,
    checkpoint_every=1,
    strategy=strategy,
    tasks_per_chunk=tasks_per_chunk,
  )
  # MAML++'s per-step batch-norm statistics are the learner's, not the model's.
  step_statistics = learner.checkpoint_items().get("step_statistics", [])
  return [
    (_name(v), np.asarray(v.numpy()))
    for v in learner.trainable_variables + learner.model.non_trainable_variables + step_statistics
  ]


def _name(variable) -> str:
  """A Keras variable's path; a tf.Variable's name (a learner's own, e.g. a head)."""
  return getattr(variable, "path", variable.name)


# A conv bias before batch norm has a gradient that is zero up to round-off, so its
# value is round-off too (about 1e-7 after SGD steps; Adam turns the round-off into
# steps of about lr * 1e-9 / epsilon), with a sign that depends on the summation order:
# it is compared to the step size only.
_ZERO_GRADIENT_BY_CONSTRUCTION = "_conv/bias"


# Float32 round-off of a few MAML steps (inner rate 0.4) whose grouped convolutions
# split the tasks differently: below 1e-5 relative on an AMD EPYC; 1.09e-5 and 1.36e-5
# (conv4 block0 kernel, block0 beta) on a Xeon with AMX, where oneDNN picks other
# kernels. A wrong split of the tasks moves the weights by far more.
_RELATIVE_TOLERANCE = 3e-5


def _assert_close(got, expected):
  """Every weight within _RELATIVE_TOLERANCE (by tensor norm) of the one-replica run's
  (in order: Keras numbers some names by how many models the process has built)."""
  assert len(got) == len(expected)
  for (_, value), (name, want) in zip(got, expected):
    difference = np.linalg.norm(value - want)
    if _ZERO_GRADIENT_BY_CONSTRUCTION in name:
      assert difference < 1e-4, name
      continue
    assert difference <= _RELATIVE_TOLERANCE * np.linalg.norm(want) + 1e-7, (
      f"{name}: |difference| {difference:.3g}, |weight| {np.linalg.norm(want):.3g}"
    )


@pytest.fixture(
  params=conformance_test.LEARNERS, ids=[row.name for row in conformance_test.LEARNERS]
)
def conformance_row(request):
  return request.param


def _image_tasks():
  return conformance_test.LEARNERS[0].tasks()


@pytest.fixture(scope="module")
def mirrored():
  return distribute.make_strategy("mirrored")


def test_the_cpu_is_split_into_two_replicas(mirrored):
  assert mirrored.num_replicas_in_sync == 2


def test_mirrored_on_two_devices_equals_one_replica(conformance_row, mirrored, tmp_path):
  """SGD: its update is the meta-gradient itself, so any error in combining the
  replicas' gradients shows in full (Keras alone sums them: twice the step)."""
  _check_mirrored_equals_one_replica(conformance_row, "sgd", mirrored, tmp_path)


# Adam's state is a function of the gradients the SGD test checks (every row, MAML over
# the MANN included); these rows add what else Adam meets: batch norm, per-step
# statistics, a sequence model, the interpolation outer step, the transfer head.
_ADAM_ROWS = (
  "maml_conv4",
  "maml++_conv4",
  "reptile_conv4",
  "transfer_conv4",
  "episodic_mann",
)


@pytest.mark.parametrize("name", _ADAM_ROWS)
def test_mirrored_with_adam_equals_one_replica(name, mirrored, tmp_path):
  row = next(r for r in conformance_test.LEARNERS if r.name == name)
  _check_mirrored_equals_one_replica(row, "adam", mirrored, tmp_path)


def test_mirrored_with_fused_adam_equals_one_replica(mirrored, tmp_path):
  # The binaries' Adam (FusedAdam against Keras's: tests/training/optimizers_test.py).
  row = next(r for r in conformance_test.LEARNERS if r.name == "maml_conv4")
  _check_mirrored_equals_one_replica(row, "fused_adam", mirrored, tmp_path)


def _check_mirrored_equals_one_replica(conformance_row, optimizer_name, mirrored, tmp_path):
  one = _train(conformance_row, tf.distribute.get_strategy(), optimizer_name, tmp_path / "one")
  two = _train(conformance_row, mirrored, optimizer_name, tmp_path / "two")
  initial = conformance_row.make(0)
  moved = [
    not np.allclose(value, v.numpy()) for (_, value), v in zip(one, initial.trainable_variables)
  ]
  assert sum(moved) > len(moved) / 2  # the comparison is between trained weights
  _assert_close(two, one)


def test_replicas_computing_a_task_at_a_time_equal_one_replica(mirrored, tmp_path):
  """--tasks_per_chunk under two replicas: each splits its own 2 tasks."""
  row = next(r for r in conformance_test.LEARNERS if r.name == "maml_conv4")
  one = _train(row, tf.distribute.get_strategy(), "sgd", tmp_path / "one")
  two = _train(row, mirrored, "sgd", tmp_path / "two", tasks_per_chunk=1)
  _assert_close(two, one)
  with pytest.raises(ValueError, match="does not divide the 2 tasks a replica computes"):
    _train(row, mirrored, "sgd", tmp_path / "bad", tasks_per_chunk=3)


def test_replicas_take_their_slices_of_each_meta_batch_in_order(mirrored):
  """What each replica's dataset element holds: tasks r*T/R .. of meta-batch s."""
  sampler = _ShiftedTasks(_image_tasks())
  whole = list(data.meta_batches(sampler, meta_batch_size=META_BATCH_SIZE, num_steps=2))
  distributed = iter(
    mirrored.distribute_datasets_from_function(
      lambda context: data.meta_batches(
        sampler,
        meta_batch_size=META_BATCH_SIZE,
        num_steps=2,
        shard=data.Shard(0, context.num_replicas_in_sync, context.num_replicas_in_sync),
      )
    )
  )
  for step in range(2):
    per_replica = mirrored.experimental_local_results(next(distributed).support_x)
    np.testing.assert_array_equal(
      np.concatenate([np.asarray(x) for x in per_replica]), whole[step].support_x.numpy()
    )


def test_a_shard_of_other_workers_replicas_holds_their_episodes():
  """Worker w of a cluster makes the slices of its own replicas only."""
  sampler = _ShiftedTasks(_image_tasks())
  whole = next(iter(data.meta_batches(sampler, meta_batch_size=META_BATCH_SIZE, start_step=1)))
  # 4 replicas over 2 workers: the second worker's are replicas 2 and 3.
  second = list(
    data.meta_batches(
      sampler, meta_batch_size=META_BATCH_SIZE, start_step=1, num_steps=1, shard=data.Shard(2, 2, 4)
    )
  )
  assert len(second) == 2
  np.testing.assert_array_equal(second[0].support_x.numpy(), whole.support_x[2:3].numpy())
  np.testing.assert_array_equal(second[1].support_x.numpy(), whole.support_x[3:4].numpy())


def test_a_meta_batch_the_replicas_cannot_share_is_refused(mirrored):
  with pytest.raises(errors.UserInputError, match="multiple of 2"):
    distribute.check_meta_batch(5, mirrored)
  assert distribute.check_meta_batch(4, mirrored) == 2


def test_a_two_replica_checkpoint_resumes_on_one_replica(mirrored, tmp_path):
  row = next(r for r in conformance_test.LEARNERS if r.name == "maml_conv4")
  whole = _train(row, tf.distribute.get_strategy(), "adam", tmp_path / "whole", 4)
  _train(row, mirrored, "adam", tmp_path / "split", 2)
  resumed = _train(row, tf.distribute.get_strategy(), "adam", tmp_path / "split", 4)
  _assert_close(resumed, whole)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _checkpoint_values(workdir) -> dict:
  """{name: array} of the latest checkpoint's model weights and optimiser slots."""
  reader = tf.train.load_checkpoint(os.path.join(workdir, "checkpoints"))
  return {
    name: reader.get_tensor(name)
    for name, _ in tf.train.list_variables(os.path.join(workdir, "checkpoints"))
    if name.startswith(("model/", "optimizer/_var"))
  }


_SINUSOID = [
  "--flagfile=experiments/configs/maml_sinusoid.flags",
  "--num_steps=6",
  "--log_every=3",
  "--num_validation_tasks=0",
  "--meta_batch_size=4",
  "--checkpoint_every=3",
]


def test_two_workers_on_this_machine_equal_one_process(tmp_path):
  """multi_worker as two processes on 127.0.0.1 ports (each its TF_CONFIG), bounded in
  time; the chief alone writes the run's files, and its weights equal a default run's."""
  command = [sys.executable, "-m", "experiments.train", *_SINUSOID]
  subprocess.run(
    [*command, f"--workdir={tmp_path / 'one'}"],
    cwd=conftest.REPO_ROOT,
    check=True,
    capture_output=True,
    timeout=300,
  )
  cluster = {"worker": [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]}
  workers = []
  try:
    for index in range(2):
      environment = dict(
        os.environ,
        TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
      )
      workers.append(
        subprocess.Popen(
          [*command, "--strategy=multi_worker", f"--workdir={tmp_path / 'two'}"],
          cwd=conftest.REPO_ROOT,
          env=environment,
          stdout=subprocess.PIPE,
          stderr=subprocess.STDOUT,
          text=True,
        )
      )
    outputs = [worker.communicate(timeout=300)[0] for worker in workers]
  finally:
    for worker in workers:
      worker.kill()
  for worker, output in zip(workers, outputs):
    assert worker.returncode == 0, output[-3000:]
  one, two = _checkpoint_values(tmp_path / "one"), _checkpoint_values(tmp_path / "two")
  assert sorted(one) == sorted(two) and one
  for name in one:
    np.testing.assert_allclose(two[name], one[name], rtol=1e-5, atol=1e-7, err_msg=name)
  with open(tmp_path / "two" / "results.json") as f:
    assert json.load(f)["num_replicas"] == 2
  with open(tmp_path / "two" / "log.jsonl") as f:
    assert [json.loads(line)["step"] for line in f] == [3, 6]  # the chief's lines only
  assert sorted(os.listdir(tmp_path / "two" / "workers" / "1")) == ["checkpoints"]
