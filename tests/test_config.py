"""Every config group option composes, and the swappable parts instantiate from `_target_`."""

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from hookbench.base.errors import ConfigError
from hookbench.evaluation.parts import build_dataset, check_inputs, settings_from
from hookbench.testing.config import compose_cfg
from hookbench.testing.repo import CONF


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_groups_have_the_options_the_docs_promise():
    assert {"smollm2", "qwen72b", "llama70b", "tiny"} <= set(options("model"))
    assert {"gsm8k", "jsonl", "arithmetic"} <= set(options("dataset"))
    assert {"general", "math", "reasoning", "file"} <= set(options("patch"))
    assert {"exact", "normalized", "numeric", "judge"} <= set(options("scorer"))


@pytest.mark.parametrize("group", ["model", "dataset", "patch", "scorer"])
def test_every_option_composes(group):
    for option in options(group):
        cfg = compose_cfg([f"{group}={option}"])
        node = cfg[group]
        assert node.name, f"{group}={option} has no name"
        # everything but deliberately mandatory fields resolves
        OmegaConf.to_container(node, resolve=True, throw_on_missing=False)


def test_default_run_is_the_embedded_model_on_its_own_server():
    cfg = compose_cfg([])
    assert cfg.model.name == "smollm2" and cfg.model.server.launch.enabled
    assert cfg.scorer._target_.endswith("NumericScorer")
    assert cfg.mlflow.tracking_uri.startswith("sqlite:///") and cfg.mlflow.tracking_uri.endswith("mlruns/mlflow.db")


def test_big_models_read_their_server_from_env(monkeypatch):
    monkeypatch.setenv("QWEN72B_URL", "http://127.0.0.1:9999")
    cfg = compose_cfg(["model=qwen72b"])
    assert cfg.model.server.url == "http://127.0.0.1:9999"
    monkeypatch.delenv("QWEN72B_URL")
    assert compose_cfg(["model=qwen72b"]).model.server.url is None, "never a silent localhost"


@pytest.mark.parametrize(("option", "variable"), [("qwen72b", "QWEN72B_URL"), ("llama70b", "LLAMA70B_URL")])
def test_an_unset_url_variable_is_named_before_anything_runs(option, variable, monkeypatch):
    monkeypatch.delenv(variable, raising=False)
    with pytest.raises(ConfigError, match=f"\\${variable}, which is not set") as e:
        check_inputs(compose_cfg([f"model={option}", "guards=[]"]))
    assert e.value.exit_code == 2


def test_model_remote_needs_its_url_and_logs_the_name_given():
    with pytest.raises(ConfigError, match="model.server.url is not set"):
        check_inputs(compose_cfg(["model=remote", "guards=[]"]))
    cfg = compose_cfg(["model=remote", "model.server.url=http://gpu-node:8000", "model.name=my-70b",
                       "model.hf_id=org/my-70b"])
    model = settings_from(cfg).model
    assert (model.name, model.hf_id) == ("my-70b", "org/my-70b")


def test_own_model_options_are_found_from_the_directory_run_in(tmp_path, monkeypatch):
    option = tmp_path / "hookbench" / "model" / "mine.yaml"
    option.parent.mkdir(parents=True)
    option.write_text("defaults: [remote, _self_]\nname: mine\nserver: {url: 'http://gpu-node:8000'}\n")
    monkeypatch.chdir(tmp_path)
    cfg = compose_cfg(["model=mine"])
    assert (cfg.model.name, cfg.model.server.url, cfg.model.generation.preset) == ("mine", "http://gpu-node:8000", "benchmark")


@pytest.mark.parametrize("option", ["general", "math", "reasoning"])
def test_suggestion_patches_instantiate(option, tmp_path):
    source = instantiate(compose_cfg([f"patch={option}", f"patch.freeze_dir={tmp_path}"]).patch)
    assert source.capability == option
    assert source.frozen_path("m") == Path(tmp_path) / "m" / f"{option}.json"


@pytest.mark.parametrize("option", ["exact", "normalized", "numeric", "judge"])
def test_scorers_instantiate(option):
    scorer = instantiate(compose_cfg([f"scorer={option}"]).scorer)
    assert scorer.name == option


def test_arithmetic_dataset_builds_from_its_yaml():
    ds = build_dataset(compose_cfg(["dataset=arithmetic", "dataset.n=5"]).dataset, "dataset")
    assert len(ds.items) == 5


@pytest.mark.parametrize("launcher, target", [
    ("joblib", "JoblibLauncher"), ("submitit_local", "LocalLauncher"), ("slurm_gpu", "SlurmLauncher")])
def test_sweep_launchers_compose(launcher, target):
    cfg = compose_cfg([f"hydra/launcher={launcher}"])
    assert cfg.hydra.launcher._target_.endswith(target)
    if launcher == "slurm_gpu":
        assert cfg.hydra.launcher.gpus_per_node >= 1 and cfg.hydra.launcher.partition == "gpu"


@pytest.mark.parametrize("override, key", [
    ("stats.correction=holmm", "stats.correction"), ("metric=bogus", "metric"),
    ("model.apply_mode=bogus", "model.apply_mode"), ("dataset.split=train", "dataset.split"),
    ("patch.strength=abc", "patch.strength"), ("patch.strength=null", "patch.strength"),
    ("scorer=judge scorer.backend=grpc", "scorer.backend"), ("model.generation.batch_size=many",
                                                            "model.generation.batch_size")])
def test_schema_refuses_a_wrong_value_at_compose_time_naming_the_key(override, key):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException) as caught:
        compose_cfg(override.split())
    assert f"full_key: {key}" in str(caught.value.__cause__)


def test_schema_values_read_back_as_their_plain_words():
    cfg = compose_cfg(["stats.correction=bh", "metric=loss", "model.apply_mode=hooks", "patch.strength=2"])
    assert (cfg.stats.correction, cfg.metric, cfg.model.apply_mode) == ("bh", "loss", "hooks")
    assert cfg.patch.strength == 2.0 and isinstance(cfg.patch.strength, float)
    assert OmegaConf.to_yaml(cfg.stats).split() == ["alpha:", "0.05", "correction:", "bh", "target_effect:", "0.03"]
