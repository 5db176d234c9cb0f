"""The test kit's database helpers: what a knm under test writes stays in places the run removes."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from knm.testing import database


def test_a_data_dir_left_by_a_run_stopped_by_a_signal_goes_with_the_next() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = Path(tempfile.mkdtemp(prefix=f"knm-test-data-{gone.pid}-"))
    alive = Path(tempfile.mkdtemp(prefix=f"knm-test-data-{os.getpid()}-"))
    made = Path(database.data_dir_for_tests.__wrapped__())  # the uncached function: a new dir
    try:
        assert not stale.exists()
        assert alive.is_dir()  # a run still going keeps its own
        assert made.name.startswith(f"knm-test-data-{os.getpid()}-")
    finally:
        for path in (stale, alive, made):
            shutil.rmtree(path, ignore_errors=True)
