"""The server scope's guarantees, against the stock-server stand-in: whatever phase a job stops in
(clean, probe, apply, prove, its own body; an error, Ctrl-C or a real SIGTERM), the server is restored
exactly once, and a restore that fails too never hides why the job stopped."""

from __future__ import annotations

import pytest

from hookbench.base.errors import DataError, PatchError
from hookbench.base.signals import Terminated, graceful_signals
from hookbench.evaluation.patches import PatchSet
from hookbench.evaluation.scope import PROBES, ServerScope
from hookbench.hookapi.client import HookClient

MLP = "model.layers.1.mlp.up_proj.weight"
RESTORE = "POST /api/restore"


def patch(value: float = 1.5) -> PatchSet:
    return PatchSet("p", [{"tensor_name": MLP, "operation": "scale", "value": value, "target": "all"}], "test")


def scope_for(server) -> ServerScope:
    return ServerScope(HookClient(server.url, retries=1, backoff_s=0.05), "weights")


def restores_after(server, route: str, nth: int = 1) -> int:
    """How many restores the server saw after the nth request to `route`."""
    log = server.request_log
    at = [i for i, r in enumerate(log) if r == route][nth - 1]
    return log[at + 1:].count(RESTORE)


@pytest.mark.parametrize("phase, route, nth", [
    ("clean", "DELETE /api/hooks", 1),
    ("probe", "POST /api/loss", 1),
    ("apply", "POST /api/hooks", 1),
    ("prove", "POST /api/loss", 4),  # 3 clean probes, then the first with the patch live
])
def test_sigterm_in_each_phase_restores_the_server_once(stock_server, phase, route, nth):
    stock_server.sigterm_after = {route: nth}
    with pytest.raises(Terminated), graceful_signals():
        with scope_for(stock_server) as scope:
            scope.begin()
            scope.apply(patch())
            scope.restore()
    assert restores_after(stock_server, route, nth) == 1, stock_server.request_log
    assert stock_server.is_clean()


def test_a_patch_proven_dead_is_restored(stock_server):
    with pytest.raises(PatchError, match="not live"), scope_for(stock_server) as scope:
        scope.begin()
        scope.apply(patch(1.0))
    assert restores_after(stock_server, "POST /api/hooks") == 1
    assert stock_server.is_clean()


@pytest.mark.parametrize("error", [RuntimeError("a bug in the body"), KeyboardInterrupt()])
def test_an_error_in_the_body_restores_and_propagates_unchanged(stock_server, error):
    with pytest.raises(type(error)) as caught, scope_for(stock_server) as scope:
        scope.begin()
        scope.apply(patch())
        raise error
    assert caught.value is error and not getattr(error, "__notes__", None)
    assert restores_after(stock_server, "POST /api/hooks") == 1
    assert stock_server.is_clean()
    log = stock_server.request_log
    assert log[log.index("POST /api/hooks") + 1:] == ["GET /api/hooks", *["POST /api/loss"] * len(PROBES), RESTORE,
                                                       "DELETE /api/hooks", *["POST /api/loss"] * len(PROBES)], \
        "after the patch was proven live: restore, delete, and the probes proving the restore"


def test_restored_once_on_success_and_again_only_after_a_new_apply(stock_server):
    with scope_for(stock_server) as scope:
        scope.begin()
        for _ in range(2):  # the loss screen: apply, restore; then the arms: apply, restore
            scope.apply(patch())
            scope.restore()
            scope.restore()
    assert stock_server.request_log.count(RESTORE) == 3  # begin's clean and one per apply
    assert stock_server.is_clean()


def test_leaving_without_restoring_restores(stock_server):
    with scope_for(stock_server) as scope:
        scope.begin()
        scope.apply(patch())
    assert restores_after(stock_server, "POST /api/hooks") == 1
    assert stock_server.is_clean()


def test_a_failed_restore_is_not_retried_on_the_way_out(stock_server):
    with pytest.raises(Exception, match="may still be patched"), scope_for(stock_server) as scope:
        scope.begin()
        scope.apply(patch())
        stock_server.broken_routes = {RESTORE: 500}
        try:
            scope.restore()
        finally:
            tried = stock_server.request_log.count(RESTORE)
            stock_server.broken_routes = {}
    assert stock_server.request_log.count(RESTORE) == tried
    assert not stock_server.is_clean(), "the server stays patched (and the error says so)"


@pytest.mark.parametrize("error", [DataError("the dataset broke"), RuntimeError("a bug in the body")])
def test_when_restore_fails_too_the_original_error_is_kept(stock_server, error):
    with pytest.raises(type(error)) as caught, scope_for(stock_server) as scope:
        scope.begin()
        scope.apply(patch())
        stock_server.broken_routes = {RESTORE: 500}
        raise error
    assert caught.value is error
    assert any("may still be patched" in n for n in error.__notes__)
    if isinstance(error, DataError):  # what the user reads (str) names both
        assert str(error).startswith("the dataset broke\n") and "may still be patched" in str(error)
