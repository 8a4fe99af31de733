"""One trainer per workdir: an exclusive fcntl lock on workdir/.lock.

The kernel drops the lock when its process ends, however it ends, so the file a killed
process leaves behind does not block the next run. The file names the holder (its
process id, host and start time) for the message that refuses a second trainer.
"""

import contextlib
import fcntl
import os
import socket
import time
from typing import Iterator

from mann import errors

LOCK_FILE = ".lock"

# Locks this process holds: {real path of the workdir: [file descriptor, depth]}. A
# second flock on another descriptor would conflict with our own, so a nested hold
# (experiments.train around training.train) counts up instead.
_held: dict[str, list[int]] = {}


def _holder(fd: int) -> str:
  os.lseek(fd, 0, os.SEEK_SET)
  text = os.read(fd, 512).decode(errors="replace").strip()
  return text or "another process"


def _acquire(workdir: str) -> int:
  path = os.path.join(workdir, LOCK_FILE)
  while True:
    try:
      fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
      raise errors.UserInputError(
        f"cannot write to {workdir} ({e.strerror}); choose a folder you can write to"
      ) from None
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = _holder(fd)
      os.close(fd)
      raise errors.UserInputError(
        f"{workdir} is in use by {holder} (lock {path}); wait for that run to end or "
        f"stop it, or choose another workdir"
      ) from None
    # The holder removes the file as it lets go: a lock taken on the removed file would
    # not exclude the next process, which opens a new one. Then try again.
    try:
      if os.path.samestat(os.fstat(fd), os.stat(path)):
        break
    except FileNotFoundError:
      pass
    os.close(fd)
  os.ftruncate(fd, 0)
  started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
  os.write(fd, f"process {os.getpid()} on {socket.gethostname()} (since {started})\n".encode())
  return fd


@contextlib.contextmanager
def hold_workdir(workdir: str) -> Iterator[None]:
  """Holds workdir's lock for the block; the folder must exist.

  Raises:
    errors.UserInputError: another process holds it (the message names that process),
      or workdir is not writable.
  """
  key = os.path.realpath(workdir)
  if key in _held:
    _held[key][1] += 1
    try:
      yield
    finally:
      _held[key][1] -= 1
    return
  fd = _acquire(workdir)
  _held[key] = [fd, 1]
  try:
    yield
  finally:
    del _held[key]
    # Removed while still locked, so that no process can lock this file after us.
    with contextlib.suppress(FileNotFoundError):
      os.unlink(os.path.join(workdir, LOCK_FILE))
    os.close(fd)
