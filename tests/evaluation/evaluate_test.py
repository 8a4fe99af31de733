"""Tests of mann/evaluation/evaluate.py: scoring tasks in order, the protocols' reports,
the digest of which tasks were scored."""

import numpy as np
import pytest
import tensorflow as tf

from mann import evaluation
from mann.data import sampler as sampler_lib
from mann.data import santoro
from tests import class_images


def _sampler(seed=0):
  return sampler_lib.FewShotSampler(
    class_images.random_class_images(20, 10), num_ways=5, num_shots=1, num_queries=2, seed=seed
  )


class _MeanPixelLearner:
  """Scores a task by its query images' mean pixel (+ s per step s): a known function
  of each task, to check which tasks score_tasks scored, in what order."""

  def evaluate_tasks(self, meta_batch, num_steps):
    mean = tf.reduce_mean(tf.cast(meta_batch.query_x, tf.float64), axis=[1, 2, 3, 4])
    steps = tf.range(num_steps + 1, dtype=tf.float64)
    return {"loss": mean[:, None] + steps, "accuracy": -mean[:, None] - steps}


def test_score_tasks_scores_the_given_tasks_in_order_whatever_the_batch_size():
  sampler = _sampler()
  expected = [float(np.mean(sampler.episode(i).query_x)) for i in range(3, 10)]
  for batch_size in (2, 7):
    scores = evaluation.score_tasks(
      _MeanPixelLearner(),
      sampler,
      num_tasks=7,
      num_inner_steps=2,
      batch_size=batch_size,
      first_task=3,
    )
    assert scores["loss"].shape == (7, 3) and scores["loss"].dtype == np.float64
    np.testing.assert_allclose(scores["loss"][:, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(scores["loss"][:, 2], np.add(expected, 2), rtol=1e-6)


def test_summary_reports_the_last_step_and_every_step():
  scores = {"accuracy": np.array([[0.2, 0.8], [0.4, 1.0]])}
  summary = evaluation.summarise(scores, "accuracy")
  assert summary["accuracy"] == pytest.approx(0.9) and summary["num_tasks"] == 2
  assert summary["accuracy_by_steps"]["0"]["mean"] == pytest.approx(0.3)
  assert summary["ci95"] == pytest.approx(1.96 * 0.1 / np.sqrt(2))


def test_a_few_shot_report_holds_the_metric_after_each_step():
  scores = {
    "loss": np.zeros((4, 3)),
    "mse": np.array([[4.0, 2.0, 1.0], [2.0, 1.0, 0.0], [4.0, 2.0, 1.0], [2.0, 1.0, 0.0]]),
  }
  report = evaluation.report(scores, metric_name="mse")
  ci95 = 1.96 * 0.5 / 2  # population std of (1, 0, 1, 0) over sqrt(4)
  assert report == {
    "protocol": "few_shot",
    "metric": "mse",
    "num_tasks": 4,
    "mse": 0.5,
    "ci95": pytest.approx(ci95),
    "mse_by_steps": {"0": 3.0, "1": 1.5, "2": 0.5},
    "ci95_by_steps": {
      "0": pytest.approx(1.96 * 1.0 / 2),
      "1": pytest.approx(ci95),
      "2": pytest.approx(ci95),
    },
  }
  assert evaluation.report_scalars(report) == {"mse": 0.5, "mse_ci95": pytest.approx(ci95)}
  assert evaluation.report_line(report) == "mse 0.5 +- 0.49 over 4 tasks after 2 steps"


def test_an_online_report_holds_the_accuracy_by_instance():
  by_instance = np.tile(np.linspace(0.1, 1.0, 10), (3, 1))
  by_instance[0] = 0.0
  report = evaluation.report({"accuracy_by_instance": by_instance}, metric_name="accuracy")
  assert report["protocol"] == "online" and report["num_tasks"] == 3
  assert report["accuracy"] == pytest.approx(by_instance.mean())
  np.testing.assert_allclose(report["accuracy_by_instance"], by_instance.mean(axis=0))
  np.testing.assert_allclose(
    report["ci95_by_instance"], 1.96 * by_instance.std(axis=0) / np.sqrt(3)
  )
  scalars = evaluation.report_scalars(report)
  assert list(scalars) == [f"accuracy_instance_{i}" for i in (1, 2, 5, 10)]
  assert scalars["accuracy_instance_5"] == pytest.approx(2 * 0.5 / 3)
  assert evaluation.report_line(report).startswith(
    "accuracy by instance 6.7 / 13.3 / 20.0 / "
  )  # (0 + 0.1 + 0.1) / 3, ...


def test_an_accuracy_report_reads_in_percent():
  report = evaluation.report(
    {"accuracy": np.array([[0.5, 1.0], [0.5, 0.8]])}, metric_name="accuracy"
  )
  assert evaluation.report_line(report) == ("accuracy 90.00 +- 13.86 % over 2 tasks after 1 steps")


def test_equal_digests_mean_the_same_tasks():
  digest = evaluation.tasks_digest(_sampler(), 20)
  assert digest == evaluation.tasks_digest(_sampler(), 20) and len(digest) == 16
  assert digest != evaluation.tasks_digest(_sampler(), 20, first_task=1)
  assert digest != evaluation.tasks_digest(_sampler(seed=1), 20)


def test_the_digest_draws_its_tasks_without_pfor_s_fallback_warnings(capfd):
  evaluation.tasks_digest(_sampler(), 4)
  assert "while_loop for converting" not in capfd.readouterr().err


def test_an_online_sequence_has_a_digest_of_the_images_it_shows():
  source = class_images.random_class_images(20, 10)
  sequences = santoro.SequenceSampler(source, num_ways=3, num_instances=4, seed=0)
  _, rows = sequences.episode_image_indices(2)
  shown = np.round(255 * np.asarray(sequences.episode(2).support_x)).astype(np.uint8)
  expected = source.images[np.asarray(rows).ravel()]
  assert sorted(map(bytes, shown)) == sorted(map(bytes, expected))  # the same 12 images
  digest = evaluation.tasks_digest(sequences, 20)
  assert digest is not None and digest == evaluation.tasks_digest(sequences, 20)
  other_seed = santoro.SequenceSampler(source, num_ways=3, num_instances=4, seed=1)
  assert digest != evaluation.tasks_digest(other_seed, 20)


def test_the_paired_difference_is_the_per_task_difference_after_the_last_step():
  rng = np.random.default_rng(0)
  scores = {"loss": rng.random((50, 3)), "accuracy": rng.random((50, 3))}
  control = {"loss": rng.random((50, 3)), "accuracy": scores["accuracy"] - 0.1}
  control["accuracy"][:, :2] = 0.0  # only the last step's score is compared
  difference = evaluation.paired_difference(scores, control, metric_name="accuracy")
  assert difference["mean"] == pytest.approx(0.1)
  assert difference["ci95"] == pytest.approx(0.0, abs=1e-12)
  assert difference["excludes_zero"]
  # Scores no different from their control's but for noise: the interval holds 0.
  noise = {"accuracy": scores["accuracy"] + rng.normal(0, 0.1, (50, 3))}
  difference = evaluation.paired_difference(scores, noise, metric_name="accuracy")
  per_task = scores["accuracy"][:, -1] - noise["accuracy"][:, -1]
  assert difference["mean"] == pytest.approx(per_task.mean())
  assert difference["ci95"] == pytest.approx(1.96 * per_task.std() / np.sqrt(50))
  assert difference["excludes_zero"] == (abs(per_task.mean()) > difference["ci95"])


def test_an_online_paired_difference_is_per_episode_and_per_instance():
  rng = np.random.default_rng(1)
  scores = {"accuracy_by_instance": rng.random((40, 4))}
  control = {"accuracy_by_instance": rng.random((40, 4))}
  difference = evaluation.paired_difference(scores, control, metric_name="accuracy")
  per_episode = scores["accuracy_by_instance"].mean(1) - control["accuracy_by_instance"].mean(1)
  assert difference["mean"] == pytest.approx(per_episode.mean())
  assert difference["ci95"] == pytest.approx(1.96 * per_episode.std() / np.sqrt(40))
  by_instance = scores["accuracy_by_instance"] - control["accuracy_by_instance"]
  assert difference["mean_by_instance"] == pytest.approx(list(by_instance.mean(0)))
  assert difference["ci95_by_instance"] == pytest.approx(
    list(1.96 * by_instance.std(0) / np.sqrt(40))
  )
