import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from hookbench.base.errors import ConfigError, DataError
from hookbench.evaluation import datasets as ds
from hookbench.evaluation.parts import build_dataset
from hookbench.evaluation.scorers import ExactScorer, NormalizedScorer, NumericScorer
from hookbench.testing.config import option_cfg
from hookbench.testing.repo import GSM8K

REPO = Path(__file__).parents[1]
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


@pytest.mark.slow
def test_gsm8k_hub_error_names_dataset_and_fix(tmp_path):
    """No network here: offline mode must turn the hub failure into a DataError with the fix."""
    code = (
        "from hookbench.evaluation.datasets import gsm8k\n"
        "from hookbench.base.errors import DataError\n"
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
    d = ds.gsm8k(hf_id=str(repo), hf_config="main", hf_split="test", sample=50, seed=3)
    local = ds.gsm8k(path=str(GSM8K), sample=50, seed=3)
    assert d.items == local.items and d.source == f"{repo}:main/test"
    assert len(ds.gsm8k(hf_id=str(repo), hf_config="socratic").items) == 3
    with pytest.raises(DataError, match="train"):
        ds.gsm8k(hf_id=str(repo), hf_split="train")


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
    with pytest.raises(DataError, match=rf"{p}:3: 1 of 2 rows have no 'answer' \(missing in 1; first at line 3\)"
                                        r".*skip_missing=true.*dataset.answer_field="):
        ds.jsonl(str(p))
    p2 = write_jsonl(tmp_path / "m2.jsonl", [{"question": "a", "answer": "1"}])
    with pytest.raises(DataError, match=rf"{p2}:1: 1 of 1 rows have no 'prompt' .*dataset.prompt_field="):
        ds.jsonl(str(p2))


def upstream_rows(n: int = 30) -> list[dict]:
    """Like the upstream prompt file: prompt/answer/task, no id, every third answer null."""
    return [{"prompt": f"What is {k} + 1?", "answer": None if k % 3 == 1 else str(k + 1),
             "task": "math" if k % 2 else "general"} for k in range(n)]


def test_upstream_style_jsonl_with_null_answers_is_an_error_that_counts_them(tmp_path):
    p = write_jsonl(tmp_path / "upstream.jsonl", upstream_rows())
    with pytest.raises(DataError) as e:
        ds.jsonl(str(p))
    msg = str(e.value)
    assert msg.startswith(f"{p}:2: 10 of 30 rows have no 'answer' (null in 10; first at line 2)")
    assert "set dataset.skip_missing=true" in msg
    assert "missing" not in msg.split(";")[0].split("(")[1]  # the field is there: null, not "missing"
    assert "answer_field" not in msg  # the field is named right; renaming it would not help


def test_upstream_style_jsonl_skips_null_answers_with_the_option_and_counts_them(tmp_path):
    p = write_jsonl(tmp_path / "upstream.jsonl", upstream_rows())
    d = ds.jsonl(str(p), skip_missing=True)
    assert d.skipped == 10 and len(d.items) == 20
    assert all(i.gold and i.prompt for i in d.items)
    assert d.items[1].id == "jsonl-2" and d.items[1].gold == "3"  # ids keep the row's place in the file
    assert ds.jsonl(str(write_jsonl(tmp_path / "ok.jsonl", upstream_rows()[:1]))).skipped == 0
    cfg = option_cfg("dataset", "jsonl")
    assert cfg.skip_missing is False
    cfg.path, cfg.skip_missing = str(p), True
    assert build_dataset(cfg, "dataset").skipped == 10


def test_jsonl_null_and_missing_prompts_are_told_apart(tmp_path):
    rows = [{"prompt": "a", "answer": "1"}, {"answer": "2"}, {"prompt": None, "answer": "3"},
            {"prompt": None, "answer": None}]
    p = write_jsonl(tmp_path / "mixed.jsonl", rows)
    with pytest.raises(DataError, match=rf"{p}:2: 3 of 4 rows have no 'prompt' \(null in 2, missing in 1; first at "
                                        r"line 2\); 1 of 4 rows have no 'answer' \(null in 1; first at line 4\)"):
        ds.jsonl(str(p))
    assert ds.jsonl(str(p), skip_missing=True).skipped == 3
    with pytest.raises(DataError, match="all 4 rows were skipped"):
        ds.jsonl(str(write_jsonl(tmp_path / "none.jsonl", rows[1:] + [{"prompt": "x"}])), skip_missing=True)


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
        assert len(terms) == 2 and all(0 <= t <= 14 for t in terms)
        assert item.gold == str(sum(terms))
    three = ds.arithmetic(n=5, terms=3, min_value=10, max_value=20, template="{expr} =")
    assert all(len(i.prompt.split(" + ")) == 3 and i.task == "add3" for i in three.items)
    with pytest.raises(ConfigError, match="min_value"):
        ds.arithmetic(min_value=5, max_value=1)


def test_default_arithmetic_set_has_no_repeated_questions():
    cfg = option_cfg("dataset", "arithmetic")
    d = build_dataset(cfg, "dataset")
    prompts = [i.prompt for i in d.items]
    assert len(prompts) == cfg.n and len(set(prompts)) == len(prompts)
    assert [i.id for i in d.items] == [f"arith-{cfg.seed}-{k}" for k in range(cfg.n)]
    # every possible sum of two digits, once each, in a seeded order
    full = ds.arithmetic(n=100, max_value=9)
    assert len({i.prompt for i in full.items}) == 100


def test_arithmetic_repeats_only_when_asked():
    repeated = ds.arithmetic(n=200, max_value=9, allow_repeats=True)  # the draws of the old default set
    assert len({i.prompt for i in repeated.items}) < 200
    assert "with repeats" in repeated.source and "repeats" not in ds.arithmetic(n=50).source


def test_arithmetic_n_beyond_distinct_sums_names_n_and_the_maximum():
    with pytest.raises(ConfigError, match=r"dataset\.n=101 .*100 distinct.*maximum is dataset\.n=100"):
        ds.arithmetic(n=101, max_value=9)
    with pytest.raises(ConfigError, match=r"dataset\.n=9 .*maximum is dataset\.n=8"):
        ds.arithmetic(n=9, terms=3, min_value=0, max_value=1)
    assert len(ds.arithmetic(n=8, terms=3, min_value=0, max_value=1).items) == 8


def ids(d) -> list[str]:
    return [i.id for i in d.items]


def test_split_is_stable_under_reordering_and_limit_and_covers_the_items(tmp_path):
    rows = [{"id": f"q{k}", "prompt": f"p{k}", "answer": str(k)} for k in range(60)]
    p = write_jsonl(tmp_path / "a.jsonl", rows)
    shuffled = write_jsonl(tmp_path / "b.jsonl", rows[::-1])
    dev, test = ds.jsonl(str(p), split="dev"), ds.jsonl(str(p), split="test")
    assert set(ids(dev)) == set(ids(ds.jsonl(str(shuffled), split="dev")))
    assert set(ids(test)) == set(ids(ds.jsonl(str(shuffled), split="test")))
    assert not set(ids(dev)) & set(ids(test))
    assert sorted(ids(dev) + ids(test)) == sorted(ids(ds.jsonl(str(p))))
    assert 0 < len(dev.items) < 60
    # the split applies before limit/sample: a limited dev set is the start of the dev set
    assert ids(ds.jsonl(str(p), split="dev", limit=5)) == ids(dev)[:5]
    assert set(ids(ds.jsonl(str(p), split="test", sample=5, seed=1))) <= set(ids(test))
    # the documented rule, so any machine puts the same id in the same split
    rule = {r["id"] for r in rows if int(hashlib.sha256(r["id"].encode()).hexdigest()[:16], 16) / 2**64 < 0.5}
    assert set(ids(test)) == rule


@needs_gsm8k
def test_holdout_is_the_share_of_items_in_test():
    test = ds.gsm8k(path=str(GSM8K), split="test", holdout=0.3)
    dev = ds.gsm8k(path=str(GSM8K), split="dev", holdout=0.3)
    assert len(test.items) + len(dev.items) == 1319
    assert 0.25 < len(test.items) / 1319 < 0.35
    assert set(ids(test)) < set(ids(ds.gsm8k(path=str(GSM8K), split="test", holdout=0.6)))


def test_fingerprint_and_source_cover_split_and_holdout():
    whole = ds.arithmetic(n=100)
    dev, test = ds.arithmetic(n=100, split="dev"), ds.arithmetic(n=100, split="test")
    assert (dev.split, dev.holdout, whole.split) == ("dev", 0.5, "all")
    assert len({whole.fingerprint, dev.fingerprint, test.fingerprint}) == 3
    assert dev.fingerprint != ds.arithmetic(n=100, split="dev", holdout=0.3).fingerprint
    # same items, other split declaration: still another fingerprint
    first = dev.items[0].id
    one_dev = ds.arithmetic(n=100, split="dev", limit=1)
    one_dev_other_share = ds.arithmetic(n=100, split="dev", holdout=0.4, limit=1)
    assert ids(one_dev) == ids(one_dev_other_share) == [first]
    assert one_dev.fingerprint != one_dev_other_share.fingerprint
    assert whole.fingerprint == ds.arithmetic(n=100, holdout=0.3).fingerprint  # no split: holdout is moot
    assert "split=dev, holdout=0.5" in dev.source and "split" not in whole.source


@pytest.mark.parametrize("kwargs, key", [
    ({"split": "dev", "holdout": 0}, "dataset.holdout"), ({"split": "test", "holdout": 1.5}, "dataset.holdout")])
def test_bad_split_or_holdout_names_the_key(kwargs, key, tmp_path):
    with pytest.raises(ConfigError, match=key):
        ds.arithmetic(n=10, **kwargs)
    with pytest.raises(ConfigError, match=key):  # before any file is read
        ds.jsonl(str(tmp_path / "not-there.jsonl"), **kwargs)


def test_gsm8k_local_file_loads_with_hf_split_and_a_dev_split(gsm8k_path):
    cfg = option_cfg("dataset", "gsm8k")
    assert cfg.hf_split == "test" and cfg.split == "all" and cfg.holdout == 0.5
    cfg.path, cfg.split, cfg.limit = str(gsm8k_path), "dev", 3
    d = build_dataset(cfg, "dataset")
    assert len(d.items) == 3 and all(i.id.startswith("gsm8k-test-") for i in d.items)
    assert d.split == "dev" and "split=dev" in d.source
    assert not set(ids(d)) & set(ids(ds.gsm8k(path=str(gsm8k_path), split="test")))


def test_numeric_scorer_checks_golds_before_any_generation(tmp_path):
    rows = [{"id": f"r{k}", "prompt": "p", "answer": a} for k, a in enumerate(["4", "four", "12.5", "", "n/a"])]
    d = ds.jsonl(str(write_jsonl(tmp_path / "g.jsonl", rows)))
    with pytest.raises(DataError) as e:
        NumericScorer().check_golds(d.items)
    msg = str(e.value)
    assert "3 of 5 gold answers have no number" in msg
    assert "r1 (gold 'four')" in msg and "r3 (gold '')" in msg and "r4 (gold 'n/a')" in msg
    assert "r0" not in msg and "r2" not in msg and "scorer=exact or scorer=normalized" in msg
    ExactScorer().check_golds(d.items)
    NormalizedScorer().check_golds(d.items)
    NumericScorer().check_golds(ds.arithmetic(n=20).items)


@pytest.mark.parametrize("name", ["arithmetic", "gsm8k", "jsonl"])
def test_yaml_instantiates(name, tmp_path):
    cfg = option_cfg("dataset", f"{name}")
    assert cfg._target_ == f"hookbench.evaluation.datasets.{name}"
    assert cfg.name == name and cfg.limit is None and cfg.sample is None and cfg.seed == 0
    if name == "gsm8k":
        if not GSM8K.is_file():
            pytest.skip(f"GSM8K copy not found at {GSM8K}")
        cfg.path = str(GSM8K)
    if name == "jsonl":
        cfg.path = str(write_jsonl(tmp_path / "d.jsonl", [{"prompt": "p", "answer": "1"}]))
    cfg.limit = 2
    d = build_dataset(cfg, "dataset")
    assert d.name == name and 1 <= len(d.items) <= 2


def test_jsonl_yaml_without_path_says_what_to_set():
    cfg = OmegaConf.create({"dataset": option_cfg("dataset", "jsonl")})
    with pytest.raises(ConfigError, match=r"set dataset\.path="):
        build_dataset(cfg.dataset, "dataset")


def test_build_unwraps_loader_errors(tmp_path):
    cfg = option_cfg("dataset", "jsonl")
    cfg.path = str(tmp_path / "missing.jsonl")
    with pytest.raises(DataError, match="missing.jsonl"):
        build_dataset(cfg, "dataset")
