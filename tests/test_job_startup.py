"""A job reaches the server before it loads MLflow and the report's libraries (issue: fixed cost per
job). What a job imports on the way to its first request is checked in a fresh interpreter; MLflow,
pandas, statsmodels, scipy and matplotlib are loaded beside the server's set-up instead
(hookbench.job.PendingRun), so they must not be on that path."""

import subprocess
import sys

HEAVY = ("mlflow", "pandas", "statsmodels", "scipy", "matplotlib", "datasets", "torch")


def loaded_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    return eval(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout)


def test_the_path_to_a_jobs_first_request_loads_no_heavy_library():
    code = """
import os
from pathlib import Path
os.environ["QWEN72B_URL"] = "http://127.0.0.1:9"  # a user's server (never contacted: this stops before the first request)
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hookbench.cli.callbacks import LazySweepCallback
import hookbench.cli, hookbench.job
from hookbench.evaluation.parts import check_inputs
with initialize_config_dir(config_dir=str(Path(hookbench.__file__).parent / "conf"), version_base="1.3"):
    cfg = compose("config", ["model=qwen72b", "patch=math", "dataset.n=12"], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
check_inputs(cfg)
LazySweepCallback()
"""
    assert loaded_after(code) == []


def test_a_sweep_loads_the_real_callback_when_it_starts():
    code = """
from hookbench.cli.callbacks import LazySweepCallback
cb = LazySweepCallback()
cb.on_multirun_end(None)  # no sweep started: nothing to close, nothing loaded
"""
    assert loaded_after(code) == []
