"""Dataset loaders: each turns a source (hub, file, generator) into a `Dataset` of `Item`s.

Built from conf/dataset/*.yaml with `hookbench.evaluation.parts.build`. Every loader takes `split`/`holdout`
(dev or test half by a hash of the item id, `split_items`) and then `limit`, `sample` and `seed`
(`select`), applied the same way, so the same config always yields the same items, and item ids
never depend on splitting or sampling.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hookbench.base.errors import ConfigError, DataError
from hookbench.base.jsonl import jsonl_objects
from hookbench.evaluation.items import Dataset, Item

log = logging.getLogger(__name__)

__all__ = ["arithmetic", "check_split", "gsm8k", "in_test", "jsonl", "packaged", "select", "split_items"]


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


def in_test(item_id: str, holdout: float) -> bool:
    """Whether an item is in the test split: sha256 of its id as a number in [0, 1), below `holdout`.

    Depends on the id alone, so an item lands in the same split on every machine, in any order,
    whatever `limit` or `sample` later keep.
    """
    digest = hashlib.sha256(item_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < holdout


def check_split(split: str, holdout: float) -> None:
    """ConfigError for a `dataset.holdout` outside (0, 1); loaders call it before loading anything.
    The schema (evaluation/config_schema.py) already refused a split outside all/dev/test at compose time."""
    if not 0 < holdout < 1:
        raise ConfigError(f"dataset.holdout (the share of items in the test split) must be a number "
                          f"between 0 and 1 exclusive, got {holdout!r}")


def split_items(items: list[Item], split: str, holdout: float) -> list[Item]:
    """The items of `split` ("all", "dev" or "test"), in their original order."""
    check_split(split, holdout)
    if split == "all":
        return items
    return [item for item in items if in_test(item.id, holdout) == (split == "test")]


def _finish(name: str, items: list[Item], source: str, split: str, holdout: float,
            limit: int | None, sample: int | None, seed: int, skipped: int = 0) -> Dataset:
    """Check ids are unique (results are paired and resumed by id), then split, then sample/limit."""
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise DataError(f"{source}: duplicate item id {item.id!r}; ids must be unique")
        seen.add(item.id)
    if not items:
        raise DataError(f"{source}: no items")
    kept = split_items(items, split, holdout)
    if split != "all":
        source = f"{source} [split={split}, holdout={holdout}]"
        if not kept:
            raise DataError(f"{source}: none of the {len(items)} items is in the {split} split")
    return Dataset(name=name, items=select(kept, limit, sample, seed), source=source,
                   split=split, holdout=holdout, skipped=skipped)


def _read_rows(path: str | Path, fmt: str = "json") -> list[dict]:
    """Rows of a local JSONL/parquet file via `datasets`, with errors that point at the file and line."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"{p}: file not found (check dataset.path)")
    if fmt == "json" and not p.read_text(encoding="utf-8", errors="replace").strip():
        raise DataError(f"{p}: file is empty")
    try:
        import datasets as hf  # here: the generated datasets need no pandas or pyarrow

        # datasets caches on the file's path and mtime, so an edited file is re-read (tested)
        return hf.load_dataset(fmt, data_files=str(p), split="train").to_list()
    except Exception as e:  # noqa: BLE001 - find the bad line, or report the loader's own reason
        if fmt == "json":
            jsonl_objects(p, "expected one JSON object per line")  # names the bad line, if one is
        raise DataError(f"{p}: could not read as {fmt}: {e}") from e


def _line_numbers(p: Path) -> list[int]:
    """1-based line number of each data row; the JSON loader skips blank lines."""
    text = Path(p).expanduser().read_text(encoding="utf-8", errors="replace")
    return [n for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _text(value: Any) -> str:
    """Field value as text: JSON numbers in an answer column are fine, `18` -> "18"."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _no_value_message(p: Path, bad: list[int], n_rows: int, fields: dict[str, str]) -> str:
    """Why rows `bad` have no prompt/answer, per field: null vs missing counted, first line named."""
    raw = [json.loads(line) for line in p.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    lines = _line_numbers(p)
    parts, first_line, misnamed = [], None, []
    for key, field in fields.items():
        null = [i for i in bad if field in raw[i] and raw[i][field] is None]
        missing = [i for i in bad if field not in raw[i]]
        if not null and not missing:
            continue
        first = lines[min(null + missing)]
        first_line = first if first_line is None else min(first_line, first)
        how = ", ".join(f"{kind} in {len(rows)}" for kind, rows in (("null", null), ("missing", missing)) if rows)
        parts.append(f"{len(null) + len(missing)} of {n_rows} rows have no {field!r} ({how}; first at line {first})")
        if missing:
            misnamed.append(f"dataset.{key}_field=")
    fix = "set dataset.skip_missing=true to skip them"
    if misnamed:
        fix += f", or {' / '.join(misnamed)} if the field has another name"
    return f"{p}:{first_line}: {'; '.join(parts)}; {fix}"


def jsonl(
    path: str,
    name: str = "jsonl",
    prompt_field: str = "prompt",
    answer_field: str = "answer",
    id_field: str | None = "id",
    task_field: str | None = "task",
    skip_missing: bool = False,
    split: str = "all",
    holdout: float = 0.5,
    limit: int | None = None,
    sample: int | None = None,
    seed: int = 0,
    read: Callable[[Path], list[dict]] = _read_rows,
) -> Dataset:
    """Any JSONL with a prompt and an answer per row; `id` and `task` are optional per row.

    A row whose prompt or answer is null or missing is an error, or skipped and counted with
    `skip_missing` (an upstream prompt file has rows without an answer). Rows without an id get
    `<name>-<row index>` by their position in the file, skipped rows included, so ids stay put.
    `read` turns the file into rows (the `datasets` library; `packaged` passes plain `json`).
    """
    check_split(split, holdout)
    p = Path(path).expanduser()
    rows = read(p)
    fields = {"prompt": prompt_field, "answer": answer_field}
    bad = [i for i, row in enumerate(rows) if any(row.get(f) is None for f in fields.values())]
    if bad and not skip_missing:
        raise DataError(_no_value_message(p, bad, len(rows), fields))
    if bad:
        log.warning("%s: skipped %d of %d rows with no %s (dataset.skip_missing)", p, len(bad), len(rows),
                    " or ".join(repr(f) for f in fields.values()))
    skip = set(bad)
    items = [_row_item(row, i, name, prompt_field, answer_field, id_field, task_field)
             for i, row in enumerate(rows) if i not in skip]
    if rows and not items:
        raise DataError(f"{p}: all {len(rows)} rows were skipped (no prompt or answer)")
    return _finish(name, items, str(p), split, holdout, limit, sample, seed, skipped=len(bad))


def packaged(path: str, **options: Any) -> Dataset:
    """A JSONL file shipped in the package (conf/dataset/capitals.yaml), with the `jsonl` options:
    well-formed by construction, so read with `json` rather than the `datasets` library, whose import
    would cost the default job seconds before its first request (it is the default guard)."""
    return jsonl(path, **{"name": "packaged", **options}, read=_read_packaged)


def _read_packaged(path: Path) -> list[dict]:
    return jsonl_objects(path, "expected one JSON object per line")


def _row_item(row: dict, i: int, name: str, prompt_field: str, answer_field: str,
              id_field: str | None, task_field: str | None) -> Item:
    """Row `i` of a JSONL file as an Item; without an id it is `<name>-<i>`."""
    rid = row.get(id_field) if id_field else None
    task = row.get(task_field) if task_field else None
    return Item(id=f"{name}-{i}" if rid is None else _text(rid), prompt=_text(row[prompt_field]),
                gold=_text(row[answer_field]).strip(), task=None if task is None else _text(task))


_GSM8K_GOLD = re.compile(r"####\s*(.+?)\s*$", re.S)


def gsm8k_gold(answer: str) -> str | None:
    """The number after `####` in a GSM8K reference answer, commas and whitespace removed."""
    m = _GSM8K_GOLD.search(answer)
    return re.sub(r"[\s,]", "", m.group(1)) if m else None


def gsm8k(
    name: str = "gsm8k",
    hf_id: str = "openai/gsm8k",
    hf_config: str = "main",
    hf_split: str = "test",
    path: str | None = None,
    split: str = "all",
    holdout: float = 0.5,
    limit: int | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> Dataset:
    """GSM8K from the hub, or from a local JSONL/parquet copy of one hub split (`path`).

    `hf_split` is the hub's split (train/test); `split` is hookbench's dev/test split of those items.
    """
    check_split(split, holdout)
    if path is not None:
        p = Path(path).expanduser()
        rows = _read_rows(p, "parquet" if p.suffix == ".parquet" else "json")
        source = str(p)
    else:
        import datasets as hf

        try:
            rows = hf.load_dataset(hf_id, hf_config, split=hf_split).to_list()
        except Exception as e:  # noqa: BLE001 - any hub/network failure means the same to the user
            raise DataError(
                f"could not load {hf_id} ({hf_config}/{hf_split}) from the hub: {e}; "
                f"set dataset.path=/path/to/{hf_split}.jsonl for a local copy"
            ) from e
        source = f"{hf_id}:{hf_config}/{hf_split}"
    items = []
    for i, row in enumerate(rows):
        question, answer = row.get("question"), row.get("answer")
        gold = gsm8k_gold(answer) if isinstance(answer, str) else None
        if not isinstance(question, str) or not gold:
            raise DataError(f"{source} row {i}: expected 'question' and an 'answer' ending in '#### <number>'")
        items.append(Item(id=f"gsm8k-{hf_split}-{i}", prompt=question, gold=gold))
    return _finish(name, items, source, split, holdout, limit, sample, seed)


def _check_arithmetic(n: int, terms: int, min_value: int, max_value: int, template: str, allow_repeats: bool) -> None:
    if n < 1 or terms < 1:
        raise ConfigError(f"dataset.n and dataset.terms must be >= 1, got n={n}, terms={terms}")
    if min_value > max_value:
        raise ConfigError(f"dataset.min_value={min_value} is greater than dataset.max_value={max_value}")
    if "{expr}" not in template:
        raise ConfigError("dataset.template must contain {expr}")
    distinct = (max_value - min_value + 1) ** terms
    if not allow_repeats and n > distinct:
        raise ConfigError(
            f"dataset.n={n} is more than the {distinct} distinct sums of {terms} terms in "
            f"{min_value}..{max_value} (the maximum is dataset.n={distinct}); widen dataset.min_value/max_value, "
            f"add dataset.terms, or set dataset.allow_repeats=true"
        )


def _draw_sums(rng: random.Random, n: int, terms: int, lo: int, hi: int, allow_repeats: bool) -> list[tuple[int, ...]]:
    """n tuples of `terms` integers in lo..hi: the same draws as independent sampling, repeats dropped."""
    seen: set[tuple[int, ...]] = set()
    combos: list[tuple[int, ...]] = []
    while len(combos) < n:
        values = tuple(rng.randint(lo, hi) for _ in range(terms))
        if allow_repeats or values not in seen:
            seen.add(values)
            combos.append(values)
    return combos


def arithmetic(
    name: str = "arithmetic",
    n: int = 200,
    seed: int = 0,
    terms: int = 2,
    min_value: int = 0,
    max_value: int = 14,
    template: str = "What is {expr}? Answer with the number only.",
    allow_repeats: bool = False,
    split: str = "all",
    holdout: float = 0.5,
    limit: int | None = None,
    sample: int | None = None,
) -> Dataset:
    """Sums of `terms` random integers, made offline from `seed`: a task any small model can be run on.

    Expressions are distinct unless `allow_repeats` (a repeated question under greedy decoding is the
    same answer twice, which would make n look larger than it is); with it, draws are independent.
    """
    _check_arithmetic(n, terms, min_value, max_value, template, allow_repeats)
    check_split(split, holdout)
    combos = _draw_sums(random.Random(seed), n, terms, min_value, max_value, allow_repeats)
    items = [
        Item(
            id=f"arith-{seed}-{i}",
            prompt=template.replace("{expr}", " + ".join(str(v) for v in values)),
            gold=str(sum(values)),
            task=f"add{terms}",
        )
        for i, values in enumerate(combos)
    ]
    repeats = ", with repeats" if allow_repeats else ""
    source = f"arithmetic(seed={seed}, n={n}, terms={terms}, range={min_value}..{max_value}{repeats})"
    return _finish(name, items, source, split, holdout, limit, sample, seed)
