"""Parts a wrong number would come from: the server identity reuse is keyed on, the classification
of an answer as a failure or a real answer, and the p95 latency."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hookbench.evaluation.loop import PROBES, server_identity
from hookbench.evaluation.settings import ModelInfo
from hookbench.hookapi import contract
from hookbench.hookapi.client import HookClient, classify_answer
from hookbench.stats import p95

MODEL = ModelInfo("qwen72b", "Qwen/Qwen2.5-72B-Instruct", "main", "weights")


def probes(url: str) -> list[float]:
    return HookClient(url).losses(PROBES, answer_prefix="")


# ------------------------------------------------------------------ server identity


def test_reference_server_identity_is_what_it_reports_plus_the_probes(tiny):
    health = HookClient(tiny.url).health()
    reported = dict(health["server"])
    fingerprint = probes(tiny.url)
    identity = server_identity(health, MODEL, tiny.url, fingerprint)
    assert identity == {**reported, "weights_probe": fingerprint}
    assert {"weights_sha256", "chat_template", "dtype", "device", "model", "version"} <= set(identity)
    assert health["server"] == reported, "building the identity changed the health answer"
    # the server's own report decides, not how it was reached or what the config calls it
    other = ModelInfo("other", "someone/else", "v2", "hooks")
    assert server_identity(health, other, "http://localhost:1", fingerprint) == identity
    assert server_identity(health, MODEL, tiny.url, None) == reported


def test_stock_server_identity_is_url_config_and_weights_fingerprint(stock_server):
    from hookbench.testing.stock_server import load_model, perturbed_copy

    health = HookClient(stock_server.url).health()
    assert "server" not in health
    before = probes(stock_server.url)
    identity = server_identity(health, MODEL, stock_server.url, before)
    assert identity == {"url": stock_server.url, "hf_id": MODEL.hf_id, "revision": MODEL.revision,
                        "weights_probe": before}
    assert server_identity(health, MODEL, stock_server.url, None) == {
        "url": stock_server.url, "hf_id": MODEL.hf_id, "revision": MODEL.revision}

    stock_server.swap_model(perturbed_copy(load_model("tiny"), scale=0.05))
    swapped = server_identity(HookClient(stock_server.url).health(), MODEL, stock_server.url, probes(stock_server.url))
    assert swapped != identity, "other weights behind the same URL got the same identity"
    assert {k: v for k, v in swapped.items() if k != "weights_probe"} == {
        k: v for k, v in identity.items() if k != "weights_probe"}


def test_a_server_field_that_is_not_an_object_is_not_trusted_as_an_identity():
    health = {"status": "online", "device": "cuda", "hooks_active": False, "server": "uvicorn"}
    assert server_identity(health, MODEL, "http://gpu:8000", [1.0]) == {
        "url": "http://gpu:8000", "hf_id": MODEL.hf_id, "revision": MODEL.revision, "weights_probe": [1.0]}


# ------------------------------------------------------------------ answers


@pytest.mark.parametrize("text,kind", [(None, "no_answer"), ("", "empty"), ("   \n\t ", "empty")])
def test_missing_and_blank_answers_are_failures(text, kind):
    got, detail = classify_answer(text)
    assert got == kind and detail


@pytest.mark.parametrize("prefix", contract.ERROR_TEXT_PREFIXES)
def test_contract_error_texts_are_failures_even_after_leading_spaces(prefix):
    text = f"  \n {prefix} CUDA out of memory. Tried to allocate 20.00 MiB\n"
    assert classify_answer(text) == ("error_text", text.strip())
    assert classify_answer(prefix) == ("error_text", prefix)


def test_error_text_detail_is_capped():
    kind, detail = classify_answer(f"{contract.ERROR_TEXT_PREFIXES[0]} " + "x" * 2000)
    assert kind == "error_text" and len(detail) == 500


@pytest.mark.parametrize("text", ["42", " 12 ", "#### 7", f"I saw '{contract.ERROR_TEXT_PREFIXES[0]}' once; 5"])
def test_real_answers_are_not_failures(text):
    assert classify_answer(text) == (None, None)


# ------------------------------------------------------------------ p95


@pytest.mark.parametrize("values", [
    [3.0], [1.0, 2.0], [5.0, 1.0, 3.0], [0.2, 0.2, 0.2, 9.0], list(range(20)), list(range(21)),
    [2.5, -1.0, 0.0, 7.25, 7.25, 100.0, 3.5], [0.013, 0.011, 0.9, 0.012, 0.014, 0.5, 0.010, 0.015, 0.016, 0.017],
    [float(x) for x in np.random.default_rng(0).lognormal(size=101)],
])
def test_p95_is_numpy_linear_percentile(values):
    assert p95(values) == pytest.approx(float(np.percentile(values, 95)), rel=1e-12, abs=1e-15)


def test_p95_of_nothing_is_nan():
    assert math.isnan(p95([]))
