"""Dataset loaders: each turns a source (hub, file, generator) into a `Dataset` of `Item`s.

Built from conf/dataset/*.yaml with `hookbench.config.build`. Every loader takes
`limit`, `sample` and `seed` and applies them the same way (`select`), so the same config always
yields the same items, and item ids never depend on sampling.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import datasets as hf

from hookbench.errors import ConfigError, DataError
from hookbench.items import Dataset, Item

__all__ = ["arithmetic", "gsm8k", "jsonl", "select"]


def select(items: list[Item], limit: int | None, sample: int | None, seed: int) -> list[Item]:
    """`sample` = seeded random subset (kept in file order), then `limit` = the first N of that."""
    for key, value in (("sample", sample), ("limit", limit)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ConfigError(f"dataset.{key} must be a positive integer or null, got {value!r}")
    if sample is not None:
        if sample > len(items):
            raise ConfigError(f"dataset.sample={sample} is more than the {len(items)} items available")
        keep = sorted(random.Random(seed).sample(range(len(items)), sample))
        items = [items[i] for i in keep]
    if limit is not None:
        items = items[:limit]
    return items


def _finish(name: str, items: list[Item], source: str, limit, sample, seed) -> Dataset:
    """Check ids are unique (results are paired and resumed by id), then sample/limit."""
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise DataError(f"{source}: duplicate item id {item.id!r}; ids must be unique")
        seen.add(item.id)
    if not items:
        raise DataError(f"{source}: no items")
    return Dataset(name=name, items=select(items, limit, sample, seed), source=source)


def _read_rows(path: str | Path, fmt: str = "json") -> list[dict]:
    """Rows of a local JSONL/parquet file via `datasets`, with errors that point at the file and line."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"{p}: file not found (check dataset.path)")
    if fmt == "json" and not p.read_text(encoding="utf-8", errors="replace").strip():
        raise DataError(f"{p}: file is empty")
    try:
        # datasets caches on the file's path and mtime, so an edited file is re-read (tested)
        return hf.load_dataset(fmt, data_files=str(p), split="train").to_list()
    except Exception as e:  # noqa: BLE001 - find the bad line, or report the loader's own reason
        if fmt == "json":
            _raise_bad_json_line(p)
        raise DataError(f"{p}: could not read as {fmt}: {e}") from e


def _raise_bad_json_line(p: Path) -> None:
    for lineno, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{p}:{lineno}: not valid JSON: {e}") from None
        if not isinstance(row, dict):
            raise DataError(f"{p}:{lineno}: expected a JSON object, got {type(row).__name__}")


def _line_numbers(p: Path) -> list[int]:
    """1-based line number of each data row; the JSON loader skips blank lines."""
    text = Path(p).expanduser().read_text(encoding="utf-8", errors="replace")
    return [n for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _text(value: Any) -> str:
    """Field value as text: JSON numbers in an answer column are fine, `18` -> "18"."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def jsonl(
    path: str,
    name: str = "jsonl",
    prompt_field: str = "prompt",
    answer_field: str = "answer",
    id_field: str | None = "id",
    task_field: str | None = "task",
    limit: int | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> Dataset:
    """Any JSONL with a prompt and an answer per row; `id` and `task` are optional per row."""
    p = Path(path).expanduser()
    rows = _read_rows(p)
    lines: list[int] | None = None
    items = []
    for i, row in enumerate(rows):
        for field, key in ((prompt_field, "prompt_field"), (answer_field, "answer_field")):
            if row.get(field) is None:
                lines = lines or _line_numbers(p)
                where = f"{p}:{lines[i]}" if i < len(lines) else f"{p} row {i}"
                raise DataError(
                    f"{where}: missing field {field!r} (set dataset.{key}= to the field that holds it)"
                )
        rid = row.get(id_field) if id_field else None
        task = row.get(task_field) if task_field else None
        items.append(
            Item(
                id=f"{name}-{i}" if rid is None else _text(rid),
                prompt=_text(row[prompt_field]),
                gold=_text(row[answer_field]).strip(),
                task=None if task is None else _text(task),
            )
        )
    return _finish(name, items, str(p), limit, sample, seed)


_GSM8K_GOLD = re.compile(r"####\s*(.+?)\s*$", re.S)


def gsm8k_gold(answer: str) -> str | None:
    """The number after `####` in a GSM8K reference answer, commas and whitespace removed."""
    m = _GSM8K_GOLD.search(answer)
    return re.sub(r"[\s,]", "", m.group(1)) if m else None


def gsm8k(
    name: str = "gsm8k",
    hf_id: str = "openai/gsm8k",
    hf_config: str = "main",
    split: str = "test",
    path: str | None = None,
    limit: int | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> Dataset:
    """GSM8K from the hub, or from a local JSONL/parquet copy of one split (`path`)."""
    if path is not None:
        p = Path(path).expanduser()
        rows = _read_rows(p, "parquet" if p.suffix == ".parquet" else "json")
        source = str(p)
    else:
        try:
            rows = hf.load_dataset(hf_id, hf_config, split=split).to_list()
        except Exception as e:  # noqa: BLE001 - any hub/network failure means the same to the user
            raise DataError(
                f"could not load {hf_id} ({hf_config}/{split}) from the hub: {e}; "
                f"set dataset.path=/path/to/{split}.jsonl for a local copy"
            ) from e
        source = f"{hf_id}:{hf_config}/{split}"
    items = []
    for i, row in enumerate(rows):
        question, answer = row.get("question"), row.get("answer")
        gold = gsm8k_gold(answer) if isinstance(answer, str) else None
        if not isinstance(question, str) or not gold:
            raise DataError(f"{source} row {i}: expected 'question' and an 'answer' ending in '#### <number>'")
        items.append(Item(id=f"gsm8k-{split}-{i}", prompt=question, gold=gold))
    return _finish(name, items, source, limit, sample, seed)


def arithmetic(
    name: str = "arithmetic",
    n: int = 200,
    seed: int = 0,
    terms: int = 2,
    min_value: int = 0,
    max_value: int = 9,
    template: str = "What is {expr}? Answer with the number only.",
    limit: int | None = None,
    sample: int | None = None,
) -> Dataset:
    """Sums of `terms` random integers, made offline from `seed`: a task any small model can be run on."""
    if n < 1 or terms < 1:
        raise ConfigError(f"dataset.n and dataset.terms must be >= 1, got n={n}, terms={terms}")
    if min_value > max_value:
        raise ConfigError(f"dataset.min_value={min_value} is greater than dataset.max_value={max_value}")
    if "{expr}" not in template:
        raise ConfigError("dataset.template must contain {expr}")
    rng = random.Random(seed)
    items = []
    for i in range(n):
        values = [rng.randint(min_value, max_value) for _ in range(terms)]
        expr = " + ".join(str(v) for v in values)
        items.append(
            Item(
                id=f"arith-{seed}-{i}",
                prompt=template.replace("{expr}", expr),
                gold=str(sum(values)),
                task=f"add{terms}",
            )
        )
    source = f"arithmetic(seed={seed}, n={n}, terms={terms}, range={min_value}..{max_value})"
    return _finish(name, items, source, limit, sample, seed)
