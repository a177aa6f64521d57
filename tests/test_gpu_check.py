"""benchmarks/gpu_check.sh on a machine without a GPU: its arguments, and a clear refusal instead of a run."""
import shutil
import subprocess

import pytest

from tests.pretrain_fixtures import REPO_ROOT

pytestmark = pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has a GPU")


def gpu_check(*args):
    return subprocess.run(["bash", "benchmarks/gpu_check.sh", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120)


def test_an_unknown_argument_is_refused_before_any_work(tmp_path):
    result = gpu_check("--out", str(tmp_path / "out"), "--fast")
    assert result.returncode == 2 and "unknown argument '--fast'" in result.stderr
    assert not (tmp_path / "out").exists()


def test_without_a_gpu_it_stops_at_once_and_says_why(tmp_path):
    result = gpu_check("--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "this check needs a GPU" in result.stderr
    assert not (tmp_path / "out" / "gpu_check.yaml").exists()


def test_help_describes_the_check():
    result = gpu_check("--help")
    assert result.returncode == 0 and "--cpu-smoke" in result.stdout and "under 8 minutes" in result.stdout
