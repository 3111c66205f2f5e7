"""An inspect_ai eval log (`.eval` or `.json`), read with inspect's own `read_eval_log` (extra `inspect`).

Each sample's id is the item id and its epoch the draw; each scorer is a metric (a scorer returning a
dict gives `scorer/key` metrics), its value made a number by inspect's own `value_to_float`
(C/I/P/N -> 1/0/0.5/0). The input and target are hashed, so two logs of different items refuse to pair.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from hookbench.base.errors import ConfigError, DataError
from hookbench.compare.logs import Log, Score, number


def is_eval_log(path: Path) -> bool:
    """An `.eval` file, or a `.json` file with inspect's top-level `eval` and `samples` (first 64 kB looked at)."""
    if path.is_file() and path.suffix == ".eval":
        return True
    if not (path.is_file() and path.suffix == ".json"):
        return False
    with path.open(encoding="utf-8", errors="replace") as f:
        head = f.read(65536)
    return '"eval"' in head and '"version"' in head


def _digest(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read(path: Path) -> Log:
    try:
        from inspect_ai.log import read_eval_log
        from inspect_ai.scorer import value_to_float
    except ImportError:
        raise ConfigError(f"{path}: reading inspect_ai logs needs the extra: pip install 'hookbench[inspect]'") from None
    try:
        eval_log = read_eval_log(str(path))
    except Exception as e:  # inspect's reader raises its own errors for a file that is not its log
        raise DataError(f"{path}: not an inspect_ai eval log ({e})") from None
    to_float = value_to_float()
    task = str(eval_log.eval.task)
    log = Log(str(path), "inspect")
    for sample in eval_log.samples or []:
        input_text = sample.input if isinstance(sample.input, str) else [m.text for m in sample.input]
        hashes = (("prompt_hash", _digest(input_text)), ("target_hash", _digest(sample.target)))
        for scorer, score in (sample.scores or {}).items():
            values = score.value if isinstance(score.value, dict) else {"": score.value}
            for key, value in values.items():
                metric = f"{scorer}/{key}" if key else scorer
                x = number(to_float(value))
                if x is None:
                    log.skipped[(task, metric)] = "not a number per sample"
                    continue
                log.scores.append(Score(task, metric, str(sample.id), x, int(sample.epoch), None, hashes))
                log.higher_is_better[(task, metric)] = True
    if not log.scores:
        raise DataError(f"{path}: an inspect_ai log (status {eval_log.status}) with no scored sample")
    return log
