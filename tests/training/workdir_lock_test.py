"""Tests of mann/training/workdir_lock.py: one holder per workdir, named; a dead holder's
file does not block; nested holds in one process."""

import os
import signal
import subprocess
import sys

import pytest

from mann import errors
from mann.training import workdir_lock

# A second process that takes the lock, says so, and waits to be killed.
_HOLDER = """
import sys, time
from mann.training import workdir_lock
with workdir_lock.hold_workdir(sys.argv[1]):
  print("held", flush=True)
  time.sleep(600)
"""


def _start_holder(workdir):
  repo_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  holder = subprocess.Popen(
    [sys.executable, "-c", _HOLDER, str(workdir)],
    stdout=subprocess.PIPE,
    text=True,
    env={**os.environ, "PYTHONPATH": repo_root},
  )
  assert holder.stdout.readline().strip() == "held"
  return holder


def test_a_second_process_is_refused_naming_the_holder_and_a_killed_holder_does_not_block(
  tmp_path,
):
  holder = _start_holder(tmp_path)
  try:
    with pytest.raises(errors.UserInputError) as refused:
      with workdir_lock.hold_workdir(str(tmp_path)):
        pass
    message = str(refused.value)
    assert f"process {holder.pid} on " in message
    assert str(tmp_path) in message and "\n" not in message
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=60)
  lock_file = tmp_path / workdir_lock.LOCK_FILE
  assert f"process {holder.pid} " in lock_file.read_text()  # left by the killed holder
  with workdir_lock.hold_workdir(str(tmp_path)):
    assert f"process {os.getpid()} " in lock_file.read_text()
  assert not lock_file.exists()  # a holder that ends cleanly leaves nothing


def test_a_nested_hold_in_one_process_keeps_the_lock_until_the_outer_one_ends(tmp_path):
  lock_file = tmp_path / workdir_lock.LOCK_FILE
  with workdir_lock.hold_workdir(str(tmp_path)):
    with workdir_lock.hold_workdir(str(tmp_path / ".")):  # the same folder, spelt otherwise
      pass
    assert lock_file.exists()
    # Still held against another process.
    probe = subprocess.run(
      [
        sys.executable,
        "-c",
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "try:\n  fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except BlockingIOError:\n  sys.exit(7)\n",
        str(lock_file),
      ],
      check=False,
    )
    assert probe.returncode == 7
  assert not lock_file.exists()


def test_an_unwritable_workdir_is_one_line(tmp_path):
  missing = tmp_path / "no" / "such"
  with pytest.raises(errors.UserInputError, match=r"^cannot write to .*no/such \(No such file"):
    with workdir_lock.hold_workdir(str(missing)):
      pass


def test_a_lock_file_removed_between_open_and_lock_is_not_trusted(tmp_path, monkeypatch):
  # The holder's release (unlink, then close) can land between our open and flock: the
  # lock we then get is on a removed file. _acquire must notice and take a fresh one.
  lock_file = tmp_path / workdir_lock.LOCK_FILE
  real_flock, calls = workdir_lock.fcntl.flock, []

  def flock_after_a_release(fd, operation):
    if not calls:
      os.unlink(lock_file)  # what a releasing holder does
    calls.append(os.fstat(fd).st_ino)
    return real_flock(fd, operation)

  monkeypatch.setattr(workdir_lock.fcntl, "flock", flock_after_a_release)
  with workdir_lock.hold_workdir(str(tmp_path)):
    assert len(calls) == 2  # the first lock, on the removed file, was let go
    assert f"process {os.getpid()} " in lock_file.read_text()
