"""pytest_test: one test file run by pytest under `bazel test`, with the shared harness."""

load("@pypi//:requirements.bzl", "requirement")
load("@rules_python//python:defs.bzl", "py_test")

def pytest_test(name, src, srcs = [], deps = [], data = [], pytest_args = [], **kwargs):
    """A py_test that runs pytest on `src` (a path in this package) with tests/conftest.py.

    Args:
      name: the target name.
      src: the test file.
      srcs: other test files `src` imports (e.g. a shared helper that is itself a test).
      deps: the libraries it imports; the harness (conftest) and pytest are added.
      data: files and binaries it reads or starts as subprocesses.
      pytest_args: more arguments for pytest (e.g. a marker to select).
      **kwargs: py_test's (size, timeout, tags, ...).
    """
    py_test(
        name = name,
        srcs = ["pytest_main.py", src] + srcs,
        main = "pytest_main.py",
        args = ["%s/%s" % (native.package_name(), src)] + pytest_args,
        deps = deps + [":harness", requirement("pytest")],
        data = data + ["//:pytest.ini"],
        **kwargs
    )
