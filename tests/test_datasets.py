import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hookbench.config import build
from omegaconf import OmegaConf

from hookbench import datasets as ds
from hookbench.errors import ConfigError, DataError

REPO = Path(__file__).parents[1]
GSM8K = Path(__file__).parents[2] / "shared/data/gsm8k/test.jsonl"
needs_gsm8k = pytest.mark.skipif(not GSM8K.is_file(), reason=f"GSM8K copy not found at {GSM8K}")


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@needs_gsm8k
def test_gsm8k_from_path():
    d = ds.gsm8k(path=str(GSM8K))
    assert len(d.items) == 1319
    assert d.items[0].gold == "18"
    assert d.items[0].id == "gsm8k-test-0"
    assert d.items[0].prompt.startswith("Janet")
    assert d.source == str(GSM8K)
    assert all(i.gold.lstrip("-").replace(".", "").isdigit() for i in d.items)


@needs_gsm8k
def test_limit_and_sample():
    assert [i.id for i in ds.gsm8k(path=str(GSM8K), limit=3).items] == [f"gsm8k-test-{k}" for k in range(3)]
    a = ds.gsm8k(path=str(GSM8K), sample=20, seed=1)
    b = ds.gsm8k(path=str(GSM8K), sample=20, seed=1)
    c = ds.gsm8k(path=str(GSM8K), sample=20, seed=2)
    assert [i.id for i in a.items] == [i.id for i in b.items]
    assert a.fingerprint == b.fingerprint != c.fingerprint
    idx = [int(i.id.rsplit("-", 1)[1]) for i in a.items]
    assert idx == sorted(idx)  # kept in file order
    limited = ds.gsm8k(path=str(GSM8K), sample=20, seed=1, limit=5)
    assert limited.items == a.items[:5]  # limit applies after sampling


def test_select_rejects_bad_values():
    items = ds.arithmetic(n=5).items
    with pytest.raises(ConfigError, match="dataset.sample"):
        ds.select(items, None, 6, 0)
    with pytest.raises(ConfigError, match="dataset.limit"):
        ds.select(items, 0, None, 0)
    assert ds.select(items, 10, None, 0) == items


def test_gsm8k_missing_path(tmp_path):
    with pytest.raises(DataError, match="nope.jsonl"):
        ds.gsm8k(path=str(tmp_path / "nope.jsonl"))


def test_gsm8k_hub_error_names_dataset_and_fix(tmp_path):
    """No network here: offline mode must turn the hub failure into a DataError with the fix."""
    code = (
        "from hookbench.datasets import gsm8k\n"
        "from hookbench.errors import DataError\n"
        "try:\n    gsm8k()\n"
        "except DataError as e:\n    print('DATAERROR', e)\n"
    )
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "DATAERROR" in out.stdout, out.stderr
    assert "openai/gsm8k" in out.stdout and "(main/test)" in out.stdout
    assert "dataset.path=" in out.stdout


HUB_README = """---
configs:
- config_name: main
  data_files:
  - split: test
    path: main/test-*
- config_name: socratic
  data_files:
  - split: test
    path: socratic/test-*
---
"""


@needs_gsm8k
def test_gsm8k_hub_loader_on_a_local_mirror_of_the_hub_repo(tmp_path):
    """The hub code path (load_dataset(id, config, split=...)) on a repo laid out like openai/gsm8k."""
    import datasets as hf

    repo = tmp_path / "gsm8k-mirror"
    (repo / "main").mkdir(parents=True)
    (repo / "socratic").mkdir()
    (repo / "README.md").write_text(HUB_README)
    rows = hf.load_dataset("json", data_files=str(GSM8K), split="train")
    rows.to_parquet(str(repo / "main" / "test-00000-of-00001.parquet"))
    rows.select(range(3)).to_parquet(str(repo / "socratic" / "test-00000-of-00001.parquet"))
    d = ds.gsm8k(hf_id=str(repo), hf_config="main", split="test", sample=50, seed=3)
    local = ds.gsm8k(path=str(GSM8K), sample=50, seed=3)
    assert d.items == local.items and d.source == f"{repo}:main/test"
    assert len(ds.gsm8k(hf_id=str(repo), hf_config="socratic").items) == 3
    with pytest.raises(DataError, match="train"):
        ds.gsm8k(hf_id=str(repo), split="train")


def test_gsm8k_row_without_hashes(tmp_path):
    p = write_jsonl(tmp_path / "g.jsonl", [{"question": "q", "answer": "no marker"}])
    with pytest.raises(DataError, match="row 0"):
        ds.gsm8k(path=str(p))


def test_jsonl_custom_fields(tmp_path):
    p = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"q": "2+2?", "a": "4", "key": "x1", "kind": "add"},
            {"q": "3*3?", "a": 9},  # no id, no task; a JSON number answer
        ],
    )
    d = ds.jsonl(str(p), name="mine", prompt_field="q", answer_field="a", id_field="key", task_field="kind")
    assert [(i.id, i.prompt, i.gold, i.task) for i in d.items] == [
        ("x1", "2+2?", "4", "add"),
        ("mine-1", "3*3?", "9", None),
    ]
    assert d.name == "mine" and d.source == str(p)


def test_jsonl_malformed_line_names_file_and_line(tmp_path):
    p = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "a", "answer": "1"}, "", '{"prompt": "b", "answer": '])
    with pytest.raises(DataError, match=rf"{p}:3: not valid JSON"):
        ds.jsonl(str(p))


def test_jsonl_missing_field_names_file_line_field_and_key(tmp_path):
    p = write_jsonl(tmp_path / "m.jsonl", [{"prompt": "a", "answer": "1"}, "", {"prompt": "b"}])
    with pytest.raises(DataError, match=rf"{p}:3: missing field 'answer'.*dataset.answer_field"):
        ds.jsonl(str(p))
    p2 = write_jsonl(tmp_path / "m2.jsonl", [{"question": "a", "answer": "1"}])
    with pytest.raises(DataError, match=rf"{p2}:1: missing field 'prompt'.*dataset.prompt_field"):
        ds.jsonl(str(p2))


def test_jsonl_missing_and_empty_file(tmp_path):
    with pytest.raises(DataError, match="absent.jsonl: file not found"):
        ds.jsonl(str(tmp_path / "absent.jsonl"))
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="empty.jsonl: file is empty"):
        ds.jsonl(str(tmp_path / "empty.jsonl"))


def test_jsonl_duplicate_ids(tmp_path):
    p = write_jsonl(tmp_path / "dup.jsonl", [{"id": "a", "prompt": "p", "answer": "1"}] * 2)
    with pytest.raises(DataError, match="duplicate item id 'a'"):
        ds.jsonl(str(p))


def test_jsonl_edited_file_is_reread(tmp_path):
    """datasets caches json loads; an edit (same size, right away) must still be seen."""
    p = tmp_path / "e.jsonl"
    for answer in ("11", "22", "33"):
        write_jsonl(p, [{"prompt": "p", "answer": answer}])
        assert ds.jsonl(str(p)).items[0].gold == answer


def test_arithmetic_deterministic_and_correct():
    a, b = ds.arithmetic(n=50, seed=3), ds.arithmetic(n=50, seed=3)
    assert a.items == b.items and a.fingerprint != ds.arithmetic(n=50, seed=4).fingerprint
    for i, item in enumerate(a.items):
        assert item.id == f"arith-3-{i}" and item.task == "add2"
        expr = item.prompt.removeprefix("What is ").removesuffix("? Answer with the number only.")
        terms = [int(t) for t in expr.split(" + ")]
        assert len(terms) == 2 and all(0 <= t <= 9 for t in terms)
        assert item.gold == str(sum(terms))
    three = ds.arithmetic(n=5, terms=3, min_value=10, max_value=20, template="{expr} =")
    assert all(len(i.prompt.split(" + ")) == 3 and i.task == "add3" for i in three.items)
    with pytest.raises(ConfigError, match="min_value"):
        ds.arithmetic(min_value=5, max_value=1)


@pytest.mark.parametrize("name", ["arithmetic", "gsm8k", "jsonl"])
def test_yaml_instantiates(name, tmp_path):
    cfg = OmegaConf.load(REPO / f"conf/dataset/{name}.yaml")
    assert cfg._target_ == f"hookbench.datasets.{name}"
    assert cfg.name == name and cfg.limit is None and cfg.sample is None and cfg.seed == 0
    if name == "gsm8k":
        if not GSM8K.is_file():
            pytest.skip(f"GSM8K copy not found at {GSM8K}")
        cfg.path = str(GSM8K)
    if name == "jsonl":
        cfg.path = str(write_jsonl(tmp_path / "d.jsonl", [{"prompt": "p", "answer": "1"}]))
    cfg.limit = 2
    d = build(cfg, "dataset")
    assert d.name == name and 1 <= len(d.items) <= 2


def test_jsonl_yaml_without_path_says_what_to_set():
    cfg = OmegaConf.create({"dataset": OmegaConf.load(REPO / "conf/dataset/jsonl.yaml")})
    with pytest.raises(ConfigError, match=r"set dataset\.path="):
        build(cfg.dataset, "dataset")


def test_build_unwraps_loader_errors(tmp_path):
    cfg = OmegaConf.load(REPO / "conf/dataset/jsonl.yaml")
    cfg.path = str(tmp_path / "missing.jsonl")
    with pytest.raises(DataError, match="missing.jsonl"):
        build(cfg, "dataset")
