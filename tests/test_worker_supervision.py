"""The tests' worker supervisor: like deploy/supervise.sh, only the stall watchdog's exit code 3 restarts."""

import subprocess
import sys
from types import SimpleNamespace

from tests.conftest import STALL_EXIT_CODE, WorkerProcess


class ExitingWorker(WorkerProcess):
    """A "worker" that exits at once with a given code, so the supervisor's decision is all there is."""

    code = STALL_EXIT_CODE

    def _start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", f"raise SystemExit({self.code})"])
        self.proc.wait()


def test_a_supervised_worker_that_exits_with_code_3_is_started_again(tmp_path):
    worker = ExitingWorker(SimpleNamespace(tmp=tmp_path), 1, {}, supervised=True)
    worker._revive()
    worker._revive()
    assert worker.restarts == 2 and worker.proc.returncode == STALL_EXIT_CODE


def test_other_exits_and_unsupervised_workers_stay_down(tmp_path):
    crashed = type("Crashed", (ExitingWorker,), {"code": 1})(SimpleNamespace(tmp=tmp_path), 2, {}, supervised=True)
    crashed._revive()
    unsupervised = ExitingWorker(SimpleNamespace(tmp=tmp_path), 3, {})
    unsupervised._revive()
    assert (crashed.restarts, unsupervised.restarts) == (0, 0)
