"""Your own config options, found from the directory you run hookbench in: ./hookbench/model/NAME.yaml
is `model=NAME`, likewise ./hookbench/dataset/, ./hookbench/patch/ ... (docs/your-server.md).

Hydra finds this SearchPathPlugin in the `hydra_plugins` namespace. It adds the folder only where it
exists and only to hookbench's own config (a shipped option of the same name still wins).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

USER_DIR = "hookbench"  # beside where you run: ./hookbench/<group>/<option>.yaml


def _shipped_conf() -> Path | None:
    """hookbench's own conf/ (a checkout's conf/ too: the package's is a link to it), not imported."""
    spec = importlib.util.find_spec("hookbench")
    return Path(spec.origin).parent.joinpath("conf").resolve() if spec and spec.origin else None


class HookbenchUserConf(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        conf = _shipped_conf()
        ours = conf is not None and any(e.path is not None and "://" not in e.path.removeprefix("file://")
                                        and Path(e.path.removeprefix("file://")).resolve() == conf
                                        for e in search_path.get_path())
        folder = Path.cwd() / USER_DIR
        if ours and folder.is_dir() and not (folder / "__init__.py").exists():  # not the package itself
            search_path.append("hookbench-user", f"file://{folder}")
