"""The README stays short and the docs build: every page in the nav, no broken link, no path that
leaves the repository (a user has no `../shared` and no `/work`)."""

import re
import subprocess
import sys

import yaml

from hookbench.testing.repo import REPO

PAGES = sorted((REPO / "docs").glob("*.md"))
USER_TEXT = [REPO / "README.md", *PAGES, *sorted((REPO / "conf" / "hydra" / "help").glob("*.yaml"))]


def test_the_readme_is_read_in_two_minutes():
    assert len((REPO / "README.md").read_text().splitlines()) <= 150


def test_no_user_text_names_a_path_outside_the_repository():
    found = [f"{p.relative_to(REPO)}: {m.group(0)}" for p in USER_TEXT
             for m in re.finditer(r"\.\./shared|/work/|\.\./\.\.", p.read_text())]
    assert found == []


def test_every_page_is_in_the_nav_and_the_readme_links_only_pages_that_exist():
    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]
    assert sorted(page for entry in nav for page in entry.values()) == sorted(p.name for p in PAGES)
    linked = re.findall(r"\]\((docs/[^)#]+)", (REPO / "README.md").read_text())
    assert linked and [link for link in linked if not (REPO / link).is_file()] == []


def test_the_site_builds_strictly(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
