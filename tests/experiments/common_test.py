"""Tests of experiments/common.py: which errors become one line, and with what status."""

import pytest

from experiments import common
from mann import errors


def _raising(error):
  def build(*args, **kwargs):
    raise error

  return build


def test_a_library_value_error_becomes_one_user_input_line():
  checked = common.library_checks("the learner these flags build")(
    _raising(ValueError("inner_lr must be >= 0\n(a second line)"))
  )
  with pytest.raises(errors.UserInputError) as raised:
    checked(inner_lr=-1)
  assert str(raised.value) == "the learner these flags build: inner_lr must be >= 0"


def test_user_input_errors_and_bugs_pass_through_unchanged():
  user_error = errors.UserInputError("--seeds needs at least one seed")
  with pytest.raises(errors.UserInputError) as raised:
    common.library_checks("x")(_raising(user_error))()
  assert raised.value is user_error
  with pytest.raises(TypeError):  # a bug keeps its type (and traceback)
    common.library_checks("x")(_raising(TypeError("bug")))()


def test_library_checks_keeps_the_functions_name_and_result():
  def make_thing(size):
    """Makes a thing."""
    return [0] * size

  checked = common.library_checks("thing")(make_thing)
  assert checked(size=2) == [0, 0] and checked.__name__ == "make_thing"


@pytest.mark.parametrize(
  "error, status",
  [
    (errors.UserInputError("bad flag"), 2),
    (errors.RunDiverged("nan at step 3"), 3),
    (KeyboardInterrupt(), 130),
  ],
)
def test_run_main_exit_statuses(error, status, capsys):
  with pytest.raises(SystemExit) as exited:
    common.run_main(_raising(error), [])
  assert exited.value.code == status
  if status != 130:
    assert capsys.readouterr().err == f"error: {error}\n"


@pytest.mark.parametrize("values", [["0.1", "fast"], ["0"], [], ["-0.1", "0.2"]])
def test_positive_rates_refuses_what_is_not_a_rate_above_0(values):
  with pytest.raises(errors.UserInputError, match=r"^--tune_lrs=.*: give numbers above 0"):
    common.positive_rates("tune_lrs", values)


def test_positive_rates_reads_numbers():
  assert common.positive_rates("tune_lrs", ["0.01", "1e-1"]) == [0.01, 0.1]
