"""A run's log: log.jsonl, one JSON line per record, mirrored to TensorBoard.

Every record has a "step"; a train record (from the loop's logging steps) holds
train_<metric> means, train_seconds and rss_mib, a validation record validation_<metric>.
Opening the log of a resumed run drops the records past the resumed step (the run redoes
those steps) and a record torn by a crash mid-write, from log.jsonl and TensorBoard
alike; the latest train and validation records, kept or new, are what results.json
reports.
"""

import json
import os
from typing import Optional

import tensorflow as tf

from mann import files

LOG_FILE = "log.jsonl"
TENSORBOARD_FOLDER = "tensorboard"


def _parse_record(line: str) -> Optional[dict]:
  """A log record, or None for a line torn by a crash mid-write (the file's last)."""
  try:
    record = json.loads(line)
  except json.JSONDecodeError:
    return None
  return record if isinstance(record, dict) and "step" in record else None


def _validation_part(record: dict) -> dict:
  return {k: v for k, v in record.items() if k.startswith("validation_")}


def _cut_events(folder: str, last_step: int) -> None:
  """Drops the TensorBoard events past `last_step` (and a record torn by a kill) from
  every event file in `folder`, each rewritten atomically, so that the steps a resumed
  run redoes show once."""
  if not os.path.isdir(folder):
    return
  for name in sorted(os.listdir(folder)):
    path = os.path.join(folder, name)
    if "tfevents" not in name or not os.path.isfile(path):
      continue
    kept, cut = [], False
    try:
      for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        if tf.compat.v1.Event.FromString(record).step > last_step:
          cut = True
        else:
          kept.append(record)
    except tf.errors.DataLossError:  # the last record, torn
      cut = True
    if cut:
      with files.atomic_write(path) as tmp_path, tf.io.TFRecordWriter(tmp_path) as writer:
        for record in kept:
          writer.write(record)


class RunLog:
  """workdir/log.jsonl and workdir/tensorboard, opened at the step a run starts from.

  Attributes:
    last_train: the latest train record ({} before the first), with its "step".
    last_validation: the latest validation record's validation_* entries ({} before the
      first).
  """

  def __init__(self, workdir: str, *, first_step: int, enabled: bool = True):
    """enabled=False (a cluster's non-chief worker): nothing is read or written."""
    self.path = os.path.join(workdir, LOG_FILE)
    self._enabled = enabled
    self.last_train: dict = {}
    self.last_validation: dict = {}
    if enabled:
      for record in self._truncate(first_step):
        self._remember(record)
      _cut_events(os.path.join(workdir, TENSORBOARD_FOLDER), first_step)
    self._writer = (
      tf.summary.create_file_writer(os.path.join(workdir, TENSORBOARD_FOLDER))
      if enabled
      else tf.summary.create_noop_writer()
    )

  def _truncate(self, last_step: int) -> list[dict]:
    """Drops records past `last_step` and any torn line; returns the records kept."""
    if not os.path.exists(self.path):
      return []
    with open(self.path) as f:
      kept = [
        (line if line.endswith("\n") else line + "\n", record)
        for line in f
        if (record := _parse_record(line)) is not None and record["step"] <= last_step
      ]
    with files.atomic_write(self.path) as tmp_path, open(tmp_path, "w") as f:
      f.writelines(line for line, _ in kept)
    return [record for _, record in kept]

  def _remember(self, record: dict) -> None:
    if "train_loss" in record:
      self.last_train = record
    if validation := _validation_part(record):
      self.last_validation = validation

  def write(self, record: dict) -> None:
    """Appends `record` (with its "step") to log.jsonl and its float entries to
    TensorBoard."""
    if not self._enabled:
      return
    self._remember(record)
    with open(self.path, "a") as f:
      f.write(json.dumps(files.json_safe(record)) + "\n")
    with self._writer.as_default(step=record["step"]):
      for name, value in record.items():
        if name != "step" and isinstance(value, float):
          tf.summary.scalar(name, value)
    self._writer.flush()
