"""What reaches the MLflow store: no secret in any param, tag, config copy or artifact, and one run
directory and one recorded run per job, even for two jobs started at the same moment."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from hookbench.testing.cli import run_cli
from hookbench.tracking import MASK, MlflowRun, Redactor, child_runs, flatten, redact_url

CONFIG = {
    "token": "tok-1", "secret": "sec-2", "password": "pw-3", "api_key": "key-4",
    "model": {"name": "qwen72b", "server": {
        "url": "http://bench:urlpw-5@gpu-node:8000", "token_env": "QWEN72B_TOKEN",
        "launch": {"env": {"HF_TOKEN": "hf-6", "MODEL_PATH": "/data/models/qwen72b", "OPENAI_API_KEY": "oa-7"},
                   "command": ["uvicorn", "server.api:app"]}}},
    "judge": {"deep": {"deeper": {"Password": "pw-8", "client_secret": "cs-9"}}},
}
SECRETS = ["tok-1", "sec-2", "pw-3", "key-4", "urlpw-5", "hf-6", "oa-7", "pw-8", "cs-9"]


def test_flatten_drops_secret_keys_at_any_depth_and_keeps_env_names():
    params = flatten(CONFIG)
    holding = {k for k, v in params.items() if any(s in v for s in SECRETS)}
    assert holding == {"model.server.url"}, "only the URL may hold one (its password is redact_url's job)"
    for dropped in ("token", "secret", "password", "api_key", "model.server.launch.env.HF_TOKEN",
                    "model.server.launch.env.OPENAI_API_KEY", "judge.deep.deeper.Password",
                    "judge.deep.deeper.client_secret"):
        assert dropped not in params
    assert params["model.server.token_env"] == "QWEN72B_TOKEN"
    assert params["model.server.launch.env.MODEL_PATH"] == "/data/models/qwen72b"
    assert params["model.server.launch.command"] == '["uvicorn", "server.api:app"]'


def test_redactor_masks_every_secret_wherever_it_appears_in_the_config_text():
    r = Redactor(CONFIG)
    text = yaml.safe_dump(CONFIG)
    assert all(s in text for s in SECRETS)
    masked = r.text(text)
    assert not [s for s in SECRETS if s in masked]
    assert "QWEN72B_TOKEN" in masked and "/data/models/qwen72b" in masked and "gpu-node:8000" in masked
    # the same secret quoted elsewhere (an error message, a report) is masked too
    assert r.text("server said: bad token tok-1 for hf-6") == f"server said: bad token {MASK} for {MASK}"
    assert r.value({"a": ["x hf-6", 3, {"b": "pw-8"}]}) == {"a": [f"x {MASK}", 3, {"b": MASK}]}


def test_redactor_finds_secrets_in_override_strings_and_query_strings():
    cfg = {"hydra": {"overrides": {"task": ["+model.server.launch.env.HF_TOKEN=abc123", "dataset.n=2",
                                            "~judge.api_key=zzz999"]}},
           "judge": {"url": "https://judge.example/v1?token=qs-secret"}}
    r = Redactor(cfg)
    assert r.text(yaml.safe_dump(cfg)).count(MASK) == 3
    assert r.text("abc123 zzz999 qs-secret dataset.n=2") == f"{MASK} {MASK} {MASK} dataset.n=2"

    cli = Redactor()
    cli.add_overrides(["+model.server.launch.env.HF_TOKEN=abc", "model.server.token_env=MY_TOKEN", "dataset.n=2"])
    assert cli.secrets == {"abc"}, "a *_env override names a variable, it is no secret"


def test_redact_url():
    assert redact_url("http://user:pw@host:8000/api") == f"http://{MASK}@host:8000/api"
    assert redact_url("https://user@host/x") == f"https://{MASK}@host/x"
    assert redact_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000"
    assert "pw" not in redact_url("http://user:pw@host")


def test_job_run_params_config_and_tags_hold_no_secret(tmp_path, monkeypatch):
    """The params path, including a secret flatten keeps (inside a list), goes through the redactor."""
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # mlflow.set_tracking_uri sets it; put back afterwards
    cfg = OmegaConf.create({**CONFIG, "servers": [{"url": "http://h", "token": "listed-10"}],
                            "mlflow": {"tracking_uri": uri,
                                       "artifact_location": str(tmp_path / "mlruns" / "artifacts"),
                                       "experiment": "t"}})
    run = MlflowRun(cfg, "job")
    run.end("FAILED", error="could not reach http://bench:urlpw-5@gpu-node:8000 with token tok-1")
    stored = MlflowClient().get_run(run.run_id)
    logged = " ".join(list(stored.data.params.values()) + list(stored.data.tags.values()))
    assert stored.data.params["model.server.url"] == f"http://{MASK}@gpu-node:8000"
    assert not [s for s in SECRETS + ["listed-10"] if s in logged]
    assert_secrets_absent(tmp_path / "mlruns", SECRETS + ["listed-10"])


# ------------------------------------------------------------------ end to end


def assert_secrets_absent(root: Path, secrets: list[str]) -> None:
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files, f"nothing was logged under {root}"
    leaks = [(str(p.relative_to(root)), s) for p in files for s in secrets if s.encode() in p.read_bytes()]
    assert not leaks, f"secrets in the store: {leaks}"


@pytest.fixture
def local_store(monkeypatch):
    """`python -m hookbench` logs to mlruns/ in its working directory, not to an inherited tracking URI."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def recording_launch(tmp_path: Path) -> tuple[str, Path]:
    """A launch command override that starts the tiny reference server as usual and writes down the
    bearer token hookbench generated for it, so a test can look for its bytes."""
    seen = tmp_path / "launched-token"
    script = tmp_path / "launch.sh"
    script.write_text(f'printf %s "$HOOKBENCH_SERVER_TOKEN" > {seen}\nexec "$1" -m hookbench.server --model tiny --port "$2"\n')
    return f"model.server.launch.command=['sh','{script}','{{python}}','{{port}}']", seen


@pytest.mark.slow
def test_a_secret_given_to_a_launched_server_reaches_no_file_of_the_store(tmp_path, local_store):
    secrets = ["s3cr3t-value", "urlpw-s3cr3t"]
    launch, seen = recording_launch(tmp_path)
    r = run_cli(["model=tiny", "dataset.n=2", f"+model.server.launch.env.HF_TOKEN={secrets[0]}",
                 f"model.server.url=http://bench:{secrets[1]}@127.0.0.1:9", launch, "guards=[]"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    token = seen.read_text()
    assert len(token) >= 32, "the launched server got no bearer token"
    assert token not in r.stdout + r.stderr
    assert_secrets_absent(tmp_path / "outputs", [token])
    store = tmp_path / "mlruns"
    missing = {"mlflow.db", "config_resolved.yaml", "context.json", "report.md", "overrides.yaml"} - {
        p.name for p in store.rglob("*")}
    assert not missing, f"not logged: {missing}"
    assert secrets[0] in (next((tmp_path / "outputs").rglob("overrides.yaml"))).read_text(), \
        "the secret was not given at all (the test would prove nothing)"
    assert_secrets_absent(store, [*secrets, token])


@pytest.mark.slow
def test_two_first_runs_started_together_in_a_fresh_directory(tmp_path, local_store):
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: run_cli(["model=tiny", "dataset.n=2", "guards=[]"], cwd=tmp_path), range(2)))
    for r in results:
        assert r.returncode == 0, r.stderr[-3000:]
        assert "duplicate column name" not in r.stderr
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    reports = sorted((tmp_path / "outputs").glob("*/*/report-*"))
    assert len(reports) == 2 and reports[0].parent != reports[1].parent, "the two runs shared a run directory"
    assert {p.name for p in reports} == {f"report-{r.info.run_id[:8]}" for r in runs}


@pytest.mark.slow
def test_a_parents_jobs_are_found_by_its_tag_and_in_stores_written_before_it(tmp_path):
    """confirm and study read a sweep's jobs through child_runs: jobs tagged hookbench.parent, and jobs
    MLflow-nested (mlflow.parentRunId) as sweeps logged them before that tag, but no other run."""
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.create_experiment("hookbench")
    parent = client.create_run(exp).info.run_id
    tagged = client.create_run(exp, tags={"hookbench.parent": parent}).info.run_id
    nested = client.create_run(exp, tags={"mlflow.parentRunId": parent}).info.run_id
    client.create_run(exp, tags={"hookbench.parent": "another-parent"})
    assert {r.info.run_id for r in child_runs(client, exp, parent)} == {tagged, nested}
