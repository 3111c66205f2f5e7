"""A non-editable install ships conf/ and the `hookbench` command: `pip install .` into a fresh venv,
then `hookbench --cfg job` and `python -m hookbench --cfg job` from another directory compose the
default job, and every command's help runs there (reusing this env's dependencies)."""

import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from hookbench.testing.repo import REPO


def bare_env(home) -> dict:
    return {"PATH": "/usr/bin:/bin", "HOME": str(home)}


@pytest.mark.slow
def test_a_non_editable_install_composes_the_default_job_from_elsewhere(tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    own = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    # this env's dependencies, seen after the venv's own site-packages (like --system-site-packages)
    (Path(own) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # from a copy of the tree: setuptools builds in it (build/, *.egg-info), and make test may be
    # installing the vLLM venv from the checkout at the same time
    src = shutil.copytree(REPO, tmp_path / "src", ignore=shutil.ignore_patterns(
        ".git", ".venv*", "build", "*.egg-info", "site", "mlruns", "multirun", "outputs", "*_cache", "*.log"))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                    "--no-build-isolation", "--no-index", "-q", str(src)], check=True, timeout=300,
                   cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = env_dir / "bin" / "hookbench"
    for command in ([str(script)], [str(python), "-P", "-m", "hookbench"]):  # the same program
        done = subprocess.run([*command, "--cfg", "job", "stats.correction=bh"],
                              cwd=elsewhere, capture_output=True, text=True, timeout=300, env=bare_env(tmp_path))
        assert done.returncode == 0, done.stderr
        assert "name: smollm2" in done.stdout and "correction: bh" in done.stdout
    for sub in ("study", "reproduce", "confirm", "plan", "server", "ui"):
        done = subprocess.run([str(script), sub, "--help"], cwd=elsewhere, capture_output=True, text=True,
                              timeout=300, env=bare_env(tmp_path))
        assert done.returncode == 0 and "hookbench" in done.stdout, (sub, done.stderr[-2000:])
    where = subprocess.run([str(python), "-P", "-c", "import hookbench; print(hookbench.__file__)"], cwd=elsewhere,
                           capture_output=True, text=True, timeout=60, env=bare_env(tmp_path)).stdout
    assert str(env_dir) in where  # the installed copy ran, not the checkout
    assert (Path(where.strip()).parent / "data" / "capitals.jsonl").is_file()  # the default guard's items ship
