"""Headless Chromium for the browser tests: what a person sees of MLflow's UI and of hookbench's pages.

Chromium's virtual time runs the page's requests before the DOM is dumped; Debian's chromium is
installed when missing and we are root with apt-get (as CI runs).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

from hookbench.base import mlflow_keys

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RUNS_TABLE = 'data-testid="sort-header-Run Name"'  # the runs table's "Run Name" column header
GENAI_OVERVIEW = ">Overview<"                      # the GenAI overview tab


def rendered(chromium: str, url: str, profile: Path, screenshot: Path | None = None, budget_ms: int = 25000,
             drawn: Callable[[Path], bool] | None = None, window: str = "1600,1000") -> str:
    """The page's DOM once the app has loaded its data (Chromium's virtual time runs the requests);
    with `screenshot`, also a PNG of what a person sees (path printed), taken again (3 tries) while
    `drawn` says it is not yet drawn: a loaded machine can use up the budget before the page paints."""
    dom = ""
    for attempt in range(3):  # a cold start can use up the budget before the data arrives
        p = subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}-{attempt}", f"--virtual-time-budget={budget_ms}",
                            "--dump-dom", url], capture_output=True, text=True, timeout=240)
        dom = p.stdout
        if RUNS_TABLE in dom or GENAI_OVERVIEW in dom or mlflow_keys.TAG_NOTE.removesuffix(".content") in dom or "Description" in dom:
            break
    for attempt in range(3 if screenshot is not None else 0):
        subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}-shot-{attempt}", f"--virtual-time-budget={budget_ms}",
                        f"--window-size={window}", f"--screenshot={screenshot}", url], capture_output=True,
                       timeout=240)
        print(f"screenshot: {screenshot}")
        if drawn is None or (screenshot is not None and drawn(screenshot)):
            break
    return dom


def install_chromium() -> str | None:
    """Debian's chromium, installed when missing and we are root with apt-get (as CI runs)."""
    if CHROMIUM is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        apt = ["flock", "/tmp/hookbench-apt.lock"]  # one apt at a time: scripts/slurm_cluster.sh may be installing
        subprocess.run([*apt, "apt-get", "update", "-qq"], env=env, capture_output=True, timeout=900)
        subprocess.run([*apt, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"], env=env,
                       capture_output=True, timeout=900)
    return shutil.which("chromium") or shutil.which("chromium-browser")




class Sources(HTMLParser):
    """Every URL a page would fetch: src and href attributes, and whether it has a script."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts = 0
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]
