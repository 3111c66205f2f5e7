"""hookbench: does a tensor edit make a model better? Baseline vs patched, with evidence."""

import os

from omegaconf import OmegaConf

__version__ = "0.1.0"

# Output folders are named by time AND process, so two runs started in the same second never share
# one (they would log each other's items and .hydra/): `${hookbench_pid:}` in conf/config.yaml. Cached in
# the config like Hydra's `now`, so the jobs of a parallel sweep see the same value.
if not OmegaConf.has_resolver("hookbench_pid"):
    OmegaConf.register_new_resolver("hookbench_pid", lambda: str(os.getpid()), use_cache=True)

# Data files shipped in the package (hookbench/data/): `${hookbench_data:capitals.jsonl}` in conf/dataset/.
if not OmegaConf.has_resolver("hookbench_data"):
    OmegaConf.register_new_resolver(
        "hookbench_data", lambda name: os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", name))
