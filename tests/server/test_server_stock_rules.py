"""A patch means the same edit, and /api/loss the same number, on the reference server and the stock
stand-in (hook-api.md: the target rule, rule 10), in float32 and bfloat16."""

from __future__ import annotations

import pytest
import requests
import torch

from hookbench.server import models, targets
from hookbench.server.engine import HFEngine
from hookbench.testing.servers import start_server, stop_server
from hookbench.testing.stock_server import StockServer, stock_edit

MLP = "model.layers.1.mlp.up_proj.weight"
PROBE = {"prompt": "Question: What is 7 + 5?\nAnswer:", "answer": "12"}
REL = 1e-5  # two code paths (batched decoder + head vs one full forward); seen equal to the bit on CPU


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("target", [("top", 20.0), ("bottom", 10.0), ("top", 0.01)])
def test_ties_at_the_threshold_are_all_edited(dtype, target):
    w = (torch.randint(-8, 9, (64, 48), generator=torch.Generator().manual_seed(0)) / 16).to(dtype)
    ours = targets.edited_weight(w, "scale", 3.0, target)
    assert torch.equal(ours, stock_edit(w, "scale", 3.0, target))
    edited = int((ours != w).sum())
    k = targets.share_k(w.numel(), target[1])
    assert edited > k or target[1] == 0.01  # 17 distinct values: the threshold value repeats


@pytest.fixture(scope="module", params=["float32", "bfloat16"])
def both(request):
    """(dtype, reference server on tiny, stock stand-in on tiny) in that dtype, with the reference engine in-process."""
    dtype = request.param
    ref = start_server("tiny", "--dtype", dtype)
    with StockServer(models.load("tiny", dtype, "cpu")) as stock:
        yield dtype, ref, stock, HFEngine(models.load("tiny", dtype, "cpu"))
    stop_server(ref)


def sug(op="scale", value=1.5, target="top 20%"):
    return {"tensor_name": MLP, "operation": op, "value": value, "target": target}


def test_same_suggestion_edits_the_same_entries(both):
    dtype, _, stock, engine = both
    for s in (sug(), sug("add", 0.05, "bottom 10%"), sug("clamp_max", 0.01, "top 10%")):
        stock.patcher.restore()
        engine.restore()
        engine.apply_weights(engine.validate([s], "weights"))
        assert requests.post(stock.url + "/api/hooks", json={"suggestions": [s]}, timeout=60).status_code == 200
        assert torch.equal(stock.patcher.params[MLP], engine.patcher.params[MLP]), (dtype, s)
        before = engine.patcher.originals[MLP]
        assert int((engine.patcher.params[MLP] != before).sum()) > 0
    stock.patcher.restore()
    engine.restore()


def loss(server_url: str, body: dict = PROBE) -> dict:
    r = requests.post(server_url + "/api/loss", json=body, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("mode", ["weights", "hooks"])
def test_loss_is_the_same_on_both_clean_and_patched(both, mode):
    _, ref, stock, _ = both
    for url in (ref.url, stock.url):
        requests.post(url + "/api/restore", json={}, timeout=60)
        requests.delete(url + "/api/hooks", timeout=60)
    base_ref, base_stock = loss(ref.url), loss(stock.url)
    assert base_ref["loss"] == pytest.approx(base_stock["loss"], rel=REL)
    assert {k: v for k, v in base_ref.items() if k != "loss"} == {k: v for k, v in base_stock.items() if k != "loss"}
    assert base_ref["prompt_tokens"] == len(stock.lm.tokenizer.encode(PROBE["prompt"] + " #### ",
                                                                      add_special_tokens=False)) + 1  # + BOS
    body = {"suggestions": [sug(value=4.0), sug("add", 0.5, "all")], "apply_mode": mode}
    for url in (ref.url, stock.url):
        assert requests.post(url + "/api/hooks", json=body, timeout=60).status_code == 200
    patched_ref, patched_stock = loss(ref.url)["loss"], loss(stock.url)["loss"]
    assert patched_ref == pytest.approx(patched_stock, rel=REL)
    assert patched_ref != pytest.approx(base_ref["loss"], rel=1e-3)
    for url in (ref.url, stock.url):
        requests.post(url + "/api/restore", json={}, timeout=60)
        requests.delete(url + "/api/hooks", timeout=60)
    assert loss(ref.url) == base_ref and loss(stock.url) == base_stock
