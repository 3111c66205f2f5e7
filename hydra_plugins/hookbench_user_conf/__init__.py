"""Your own config options, found from the directory you run hookbench in: ./hookbench/model/NAME.yaml
is `model=NAME`, likewise ./hookbench/dataset/, ./hookbench/patch/ ... (docs/your-server.md).

Hydra finds this SearchPathPlugin in the `hydra_plugins` namespace. It adds the folder only where it
exists and only to hookbench's own config (a shipped option of the same name still wins).
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

USER_DIR = "hookbench"  # beside where you run: ./hookbench/<group>/<option>.yaml


class HookbenchUserConf(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        ours = any(e.path is not None and Path(e.path.removeprefix("file://")).parts[-2:] == ("hookbench", "conf")
                   for e in search_path.get_path())
        folder = Path.cwd() / USER_DIR
        if ours and folder.is_dir() and not (folder / "__init__.py").exists():  # not the package itself
            search_path.append("hookbench-user", f"file://{folder}")
