"""Tests of mann/training/run_log.py: truncation on resume, the latest records, TensorBoard."""

import json
import math
import os

import tensorflow as tf

from mann.training import run_log


def _lines(path):
  with open(path) as f:
    return [json.loads(line) for line in f]


def _write_lines(path, text):
  with open(path, "w") as f:
    f.write(text)


def test_a_new_log_appends_records_as_json_lines(tmp_path):
  log = run_log.RunLog(str(tmp_path), first_step=0)
  log.write({"step": 2, "train_loss": 1.5, "train_seconds": 0.1, "rss_mib": None})
  log.write({"step": 2, "validation_accuracy": float("nan")})
  assert _lines(tmp_path / run_log.LOG_FILE) == [
    {"step": 2, "train_loss": 1.5, "train_seconds": 0.1, "rss_mib": None},
    {"step": 2, "validation_accuracy": None},
  ]  # strict JSON: nan as null
  assert log.last_train["train_loss"] == 1.5
  assert math.isnan(log.last_validation["validation_accuracy"])
  assert os.listdir(tmp_path / "tensorboard")


def test_opening_at_a_resumed_step_drops_later_records_and_a_torn_line(tmp_path):
  path = tmp_path / run_log.LOG_FILE
  _write_lines(
    path,
    '{"step": 2, "train_loss": 3.0}\n'
    '{"step": 2, "validation_mse": 0.5}\n'
    '{"step": 4, "train_loss": 2.0}\n'
    '{"step": 6, "train_loss": 1.0}\n'
    '{"step": 6, "validation_mse": 0.25}\n'
    '{"step": 8, "train_lo',
  )
  log = run_log.RunLog(str(tmp_path), first_step=4)
  assert [r["step"] for r in _lines(path)] == [2, 2, 4]
  # What results.json reports of a run resumed at its end: the kept records' latest.
  assert log.last_train == {"step": 4, "train_loss": 2.0}
  assert log.last_validation == {"validation_mse": 0.5}


def test_a_last_line_without_its_newline_is_kept_whole(tmp_path):
  path = tmp_path / run_log.LOG_FILE
  _write_lines(path, '{"step": 2, "train_loss": 3.0}\n{"step": 4, "train_loss": 2.0}')
  log = run_log.RunLog(str(tmp_path), first_step=4)
  log.write({"step": 6, "train_loss": 1.0})
  assert [r["step"] for r in _lines(path)] == [2, 4, 6]


def test_a_disabled_log_reads_and_writes_nothing(tmp_path):
  path = tmp_path / run_log.LOG_FILE
  _write_lines(path, '{"step": 2, "train_loss": 3.0}\n{"step": 4, "train_loss": 2.0}\n')
  log = run_log.RunLog(str(tmp_path), first_step=2, enabled=False)
  log.write({"step": 4, "train_loss": 1.0})
  assert [r["step"] for r in _lines(path)] == [2, 4]
  assert log.last_train == {} and not (tmp_path / "tensorboard").exists()


def _scalar_events(folder):
  """(tag, step, value) of every scalar event in folder's event files, duplicates kept."""
  events = []
  for name in os.listdir(folder):
    for event in tf.compat.v1.train.summary_iterator(os.path.join(folder, name)):
      for value in event.summary.value:
        events.append((value.tag, event.step, float(tf.make_ndarray(value.tensor))))
  return sorted(events)


def test_a_resumed_log_cuts_the_tensorboard_events_it_redoes_and_a_torn_record(tmp_path):
  killed = run_log.RunLog(str(tmp_path), first_step=0)
  for step in range(1, 7):
    killed.write({"step": step, "train_loss": float(step)})
  del killed  # the writer closes
  folder = tmp_path / run_log.TENSORBOARD_FOLDER
  (written,) = os.listdir(folder)
  with open(folder / written, "ab") as f:
    f.write(b"\x30\x00\x00")  # the first bytes of a record's length: torn by the kill
  resumed = run_log.RunLog(str(tmp_path), first_step=3)
  for step in (4, 5):
    resumed.write({"step": step, "train_loss": 10.0 * step})
  del resumed
  assert len(os.listdir(folder)) == 2
  assert _scalar_events(folder) == [
    ("train_loss", 1, 1.0),
    ("train_loss", 2, 2.0),
    ("train_loss", 3, 3.0),
    ("train_loss", 4, 40.0),
    ("train_loss", 5, 50.0),
  ]
