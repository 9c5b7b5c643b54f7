"""CPython's own ``test_concurrent_futures``, run against ``parpy.Executor``.

Run with ``parpy tests/contract/run_stdlib_cf.py [-v] [-k PATTERN]``. The
stdlib's generic test mixins (executor, wait, as_completed, shutdown,
initializer, deadlock and future tests) accept any executor type; this
builds one test class per mixin with ``parpy.Executor`` in place of
``ProcessPoolExecutor``. Tests that only make sense for processes (they
look at ``executor._processes``, crash a worker with a segfault, or check
the class of ``concurrent.futures.process`` internals) are skipped, each
with its reason in ``SKIPS``. The last line says
``stdlib-cf: N run, F failures, E errors, S skipped``; the exit status is 0
only when nothing failed.

Needs the ``test`` package of the Python parpy embeds (pyenv's 3.13 ships
it, pyenv's 3.12.1 lacks test_concurrent_futures: exit status 77 there;
Debian's is in ``libpython3.X-testsuite``).
"""
import multiprocessing
import sys
import time
import unittest

import parpy

try:
    from test.test_concurrent_futures import util
except ImportError as e:
    print(f"stdlib-cf: the test package of Python {sys.version.split()[0]} is missing ({e}); "
          f"install it (Debian: libpython{sys.version_info[0]}.{sys.version_info[1]}-testsuite)",
          file=sys.stderr)
    # pyenv's 3.12.1 ships a test package without test_concurrent_futures:
    # there the run is skipped (77); anywhere else a missing suite fails.
    sys.exit(77 if sys.version_info[:2] == (3, 12) else 2)

from test import support  # noqa: E402
from test.test_concurrent_futures import (  # noqa: E402
    executor, test_as_completed, test_deadlock, test_future, test_init,
    test_process_pool, test_shutdown, test_wait)

PROCESS = "process-only: it looks at ProcessPoolExecutor's processes (executor._processes, mp_context.Process)"
CRASH = ("a segfault or os._exit in a worker ends the whole process under parpy (workers are "
         "sub-interpreters in this process, not child processes), so there is no BrokenProcessPool to see")
MAX_TASKS = "process-only: max_tasks_per_child (parpy's workers are never recycled)"

# Test name -> why it does not apply to parpy.Executor. Every entry is a
# process-only test or a documented, deliberate difference (see README,
# "concurrent.futures compatibility").
SKIPS = {
    # executor.py / test_process_pool.py
    "test_killed_child": PROCESS,
    "test_broken_process_pool_traceback": CRASH,
    "test_traceback_when_child_process_terminates_abruptly": CRASH,  # 3.15
    "test_traceback": "checks that __cause__ is concurrent.futures.process._RemoteTraceback; "
                      "parpy attaches parpy.RemoteTraceback, with the same .tb text",
    "test_saturation": PROCESS,
    "test_idle_process_reuse_one": PROCESS,
    "test_idle_process_reuse_multiple": PROCESS,
    "test_max_tasks_per_child": MAX_TASKS,
    "test_max_tasks_per_child_defaults_to_spawn_context": MAX_TASKS,
    "test_max_tasks_per_child_pending_tasks_gh115634": MAX_TASKS,
    "test_shutdown_no_wait_max_tasks_gh119592": MAX_TASKS,
    "test_gc_during_max_tasks_worker_exit_gh152967": MAX_TASKS,
    "test_force_shutdown_during_max_tasks_worker_exit": MAX_TASKS,
    "test_failed_worker_replacement_breaks_pool": MAX_TASKS,
    "test_max_tasks_early_shutdown": MAX_TASKS,
    "test_python_finalization_error": PROCESS,
    "test_force_shutdown_workers": PROCESS,
    "test_force_shutdown_workers_dead_workers": CRASH,
    "test_force_shutdown_workers_stops_pool": PROCESS,
    "test_max_workers_too_large": "Windows only",
    # test_deadlock.py
    "test_error_at_task_pickle": "deliberate: an argument that cannot be pickled raises TypeError "
                                 "(naming the argument, chained from the pickling error) from "
                                 "submit(), not from result()",
    "test_exit_at_task_unpickle": CRASH,
    "test_error_at_task_unpickle": "expects BrokenProcessPool: parpy raises the unpickling error "
                                   "itself from result() and the pool stays usable",
    "test_crash_at_task_unpickle": CRASH,
    "test_crash_during_func_exec_on_worker": CRASH,
    "test_crash_during_result_pickle_on_worker": CRASH,
    "test_error_during_result_unpickle_in_result_handler": "expects BrokenProcessPool: parpy raises "
                                                           "the unpickling error itself from result()",
    "test_exit_during_result_unpickle_in_result_handler": "expects BrokenProcessPool: a SystemExit "
                                                          "while unpickling a result is raised by result()",
    "test_shutdown_deadlock": CRASH,
    "test_shutdown_deadlock_pickle": PROCESS,
    "test_crash_big_data": CRASH,
    "test_gh105829_should_not_deadlock_if_wakeup_pipe_full": PROCESS,
    # test_shutdown.py
    "test_processes_terminate": PROCESS,
    "test_context_manager_shutdown": PROCESS,
    "test_del_shutdown": PROCESS,
    "test_shutdown_no_wait": PROCESS,
    "test_shutdown_gh_132969_case_1": MAX_TASKS,
    "test_shutdown_gh_132969_case_2": MAX_TASKS,
}

# Tests that fail today because of a defect another piece of work fixes.
# They run as expected failures; once fixed, they pass "unexpectedly", which
# fails the run: then delete the entry.
KNOWN_DEFECTS = {
}

# Tests run in a changed form, each with why.
ADAPTED = {
    "test_cancel_futures": "its shutdown(cancel_futures=True) waits until one of the 50 tasks "
                           "has started: parpy's workers start on first use and take a job only "
                           "once up, so shutdown right after submit() can cancel all 50 (none has "
                           "started) where the test wants some to run; ProcessPoolExecutor marks "
                           "max_workers+1 futures running as soon as it queues them",
    "test_interpreter_shutdown, test_submit_after_interpreter_shutdown, test_hang_gh83386":
        "their child script imports parpy.Executor instead of concurrent.futures.Executor",
}


class ParpyMixin(util.ExecutorMixin):
    """``ProcessPoolSpawnMixin`` with ``parpy.Executor``: no ``ctx`` (so the
    executor gets no ``mp_context``), and a spawn Manager for the events that
    tasks wait on, as the process-pool mixins use."""
    executor_type = parpy.Executor

    def setUp(self):
        self.manager = None
        super().setUp()

    def get_context(self):
        return multiprocessing.get_context("spawn")

    def create_event(self):
        if getattr(self, "manager", None) is None:
            self.manager = self.get_context().Manager()
        return self.manager.Event()

    def tearDown(self):
        manager = getattr(self, "manager", None)
        super().tearDown()
        if getattr(self, "manager", None) is not None:
            manager.shutdown()
            self.manager = None


def _started_first(test):
    """``test`` with a shutdown() that first waits until one of the
    submitted tasks has started (see ADAPTED)."""
    def run(self):
        ex = self.executor
        submitted = []
        submit, shutdown = ex.submit, ex.shutdown

        def recording_submit(*args, **kwargs):
            fut = submit(*args, **kwargs)
            submitted.append(fut)
            return fut

        def shutdown_once_started(*args, **kwargs):
            deadline = time.monotonic() + support.SHORT_TIMEOUT
            while not any(f.running() or f.done() for f in submitted) and time.monotonic() < deadline:
                time.sleep(0.001)
            return shutdown(*args, **kwargs)

        ex.submit, ex.shutdown = recording_submit, shutdown_once_started
        try:
            test(self)
        finally:
            del ex.submit, ex.shutdown
    run.__name__ = test.__name__
    return run


def _parpy_script(code):
    """The stdlib's child scripts import ``{executor_type.__name__}`` from
    concurrent.futures; for parpy it is parpy.Executor."""
    return code.replace("from concurrent.futures import Executor\n",
                        "from parpy import Executor\n")


def _patch_child_scripts(module):
    orig = module.assert_python_ok

    def assert_python_ok(*args, **env):
        args = list(args)
        if len(args) >= 2 and args[0] == "-c":
            args[1] = _parpy_script(args[1])
        return orig(*args, **env)

    module.assert_python_ok = assert_python_ok


def _parpy_future_tests():
    """test_future's FutureTests with parpy's Future subclass in place of
    concurrent.futures.Future (a future with no pool behind it)."""
    base = parpy._future_class()

    class ParpyFuture(base):
        def __init__(self):
            base.__init__(self, None, 0, None)

    class ParpyFutureTests(test_future.FutureTests):
        def setUp(self):
            super().setUp()
            self._saved = test_future.Future
            test_future.Future = ParpyFuture

        def tearDown(self):
            test_future.Future = self._saved
            super().tearDown()

    return ParpyFutureTests


def build_suite(pattern=None):
    _patch_child_scripts(test_shutdown)
    mixins = [
        test_process_pool.ProcessPoolExecutorTest,  # ExecutorTest plus the process pool's own
        test_wait.WaitTests,
        test_as_completed.AsCompletedTests,
        test_shutdown.ProcessPoolShutdownTest,  # ExecutorShutdownTest plus the process pool's own
        test_init.InitializerMixin,
        test_init.FailingInitializerMixin,
        test_deadlock.ExecutorDeadlockTest,
    ]
    classes = []
    for mixin in mixins:
        name = "Parpy" + mixin.__name__
        body = {"__module__": __name__}
        if hasattr(mixin, "test_cancel_futures"):
            body["test_cancel_futures"] = _started_first(mixin.test_cancel_futures)
        cls = type(name, (mixin, ParpyMixin, util.BaseTestCase), body)
        classes.append(cls)
    classes.append(test_future.FutureTests)
    classes.append(_parpy_future_tests())
    loader = unittest.TestLoader()
    if pattern:
        loader.testNamePatterns = [f"*{pattern}*"]
    suite = unittest.TestSuite()
    for cls in classes:
        for name, reason in SKIPS.items():
            if hasattr(cls, name):
                setattr(cls, name, unittest.skip(reason)(getattr(cls, name)))
        if cls.__name__.startswith("Parpy"):
            for name in KNOWN_DEFECTS:
                if hasattr(cls, name):
                    setattr(cls, name, unittest.expectedFailure(getattr(cls, name)))
        suite.addTests(loader.loadTestsFromTestCase(cls))
    return suite


def main():
    verbose = "-v" in sys.argv
    pattern = None
    if "-k" in sys.argv:
        pattern = sys.argv[sys.argv.index("-k") + 1]
    util.setup_module()
    suite = build_suite(pattern)
    result = unittest.TextTestRunner(verbosity=2 if verbose else 1, stream=sys.stdout).run(suite)
    unittest.case.doModuleCleanups()
    for test in result.unexpectedSuccesses:
        name = test.id().rsplit(".", 1)[-1]
        print(f"stdlib-cf: {name} passes now: delete its KNOWN_DEFECTS entry ({KNOWN_DEFECTS.get(name)})")
    print(f"stdlib-cf: {result.testsRun} run, {len(result.failures)} failures, "
          f"{len(result.errors)} errors, {len(result.skipped)} skipped, "
          f"{len(result.expectedFailures)} known defects, "
          f"{len(result.unexpectedSuccesses)} unexpected successes")
    sys.stdout.flush()
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
