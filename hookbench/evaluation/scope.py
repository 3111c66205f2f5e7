"""The server's patch state, owned by one job from lease to restore.

Weight edits outlive DELETE /api/hooks (hook-api.md §1), so a job that patched the server must put it
back whatever happens: `ServerScope` is a context manager whose exit restores (and proves the restore
with the probe losses) on every way out — an error, Ctrl-C, SIGTERM via `hookbench.base.signals` — but
never twice. When that restore fails too, the job's own exception still propagates with its own type;
the restore failure is logged and attached to it as a note.

After kill -9 (or a dead node) the next job finds the dead holder's lease record: it says whether
that job left the server patched (hooks active, or probe losses before its clean that differ from
the fingerprint last recorded for the server) and hands the record to `on_takeover` (the job closes
the dead run there).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from typing import Literal

from hookbench.base.errors import PatchError, ServerError
from hookbench.evaluation.patches import PatchSet
from hookbench.hookapi import contract
from hookbench.hookapi.client import (
    HookClient,
    LossUnavailable,
    PatchApplyUncertain,
    ServerUnreachable,
    TensorsUnknownToServer,
)
from hookbench.hookapi.lease import Lease, fingerprint_path, holder_alive, read_json, server_lease, write_json

log = logging.getLogger(__name__)

# Fixed probe texts: their teacher-forced losses show whether a patch is live, and fingerprint the weights.
PROBES = [("The capital of France is", " Paris, a city on the Seine."),
          ("Question: What is 12 + 7?\nAnswer:", " 19"),
          ("def add(a, b):\n    return", " a + b")]
PROBE_DIGITS = 5  # /api/loss is deterministic (§10); rounding absorbs float noise across batch shapes
FOUND_PATCHED = "found the server patched by an earlier job that did not finish; restored"


class ServerScope:
    """Lease → clean → probe → apply → prove live → restore (+ probes), restore guaranteed on exit.

    Inside `with`, the server's patch state is this job's: `begin()` cleans and probes, `apply()` applies
    and proves, `restore()` restores and proves. Leaving the block restores if nothing did since the
    lease was taken or the last `apply()`."""

    def __init__(self, client: HookClient, apply_mode: str, holder: dict | None = None,
                 on_takeover: Callable[[dict, str | None], None] | None = None):
        self.client, self.apply_mode = client, apply_mode
        self.holder, self.on_takeover = holder, on_takeover  # who we are; what to do with a dead holder's record
        self.left_by: dict | None = None
        self.recovered: str | None = None  # FOUND_PATCHED when this job restored a dead job's patch
        self.waited = 0.0  # seconds spent waiting for the lease
        self.probes: dict[str, list[float] | None] = {}
        self.applied: dict = {}
        self.patched_path = "not generated"
        # SHA-256 per rank of every tensor the patch touches, where the server offers weights_digest:
        # {"algorithm", "tensors": {name: {"before", "patched", "restored"}}, "restore": equal | DIFFERENT}
        self.digests: dict = {}
        self._stack = ExitStack()
        self._needs_restore = False
        self.lease: Lease | None = None

    def __enter__(self) -> ServerScope:
        lease = self._stack.enter_context(server_lease(self.client.base_url, self.holder))
        self.lease = lease
        self.waited = lease.waited
        if lease.left_by is not None and holder_alive(lease.left_by):
            lease.left_by = None  # it let go of the lock and lives: not a dead holder
        self.left_by = lease.left_by
        self._needs_restore = True  # the state we found is unknown until a clean and a restore say otherwise
        return self

    def __exit__(self, exc_type, exc, tb) -> Literal[False]:
        try:
            if self._needs_restore:
                if exc is None:
                    self.restore()
                else:
                    self._restore_after(exc)
        finally:
            self._stack.close()  # the lease goes last: another job must not see our patch
        return False  # the body's exception, if any, propagates unchanged

    def _restore_after(self, exc: BaseException) -> None:
        try:
            self.restore()
        except Exception as failure:  # keep the job's exception: it says why we are here
            log.error("%s", failure)
            exc.add_note(str(failure))

    def note(self, **more) -> None:
        """Add to the lease's holder record (the run id, once the job's run exists)."""
        if self.lease is not None:
            self.lease.note(**more)

    # -- the phases -----------------------------------------------------------------------------
    def begin(self) -> None:
        """Restore + delete, check nothing is active, take the clean probe losses (the weights' fingerprint)."""
        found_active = bool(self.client.health().get("hooks_active"))
        before = self.probe() if self.left_by is not None and not found_active else None
        self.client.clean()
        h, hooks = self.client.health(), self.client.hooks()
        if h.get("hooks_active") or hooks.get("active"):
            raise ServerError(f"{self.client.base_url} still reports active hooks after restore + delete; "
                              "refusing to take a baseline on a patched model")
        self.probes["clean"] = self.probe()
        self._fingerprint(found_active, before)

    def _fingerprint(self, found_active: bool, before: list[float] | None) -> None:
        """Compare with, then record, the server's clean fingerprint; report a dead job's leftovers."""
        path = fingerprint_path(self.client.base_url)
        known = read_json(path)
        if self.probes["clean"] is not None:
            write_json(path, self.probes["clean"])
        if found_active or (before is not None and before != (known or self.probes["clean"])):
            self.recovered = FOUND_PATCHED
            log.warning("%s: %s", self.client.base_url, FOUND_PATCHED)
        if self.left_by is not None and self.on_takeover is not None:
            self.on_takeover(self.left_by, self.recovered)

    def restore(self) -> None:
        """Restore + delete, then prove it with the probes; at most once per apply (raises ServerError)."""
        if not self._needs_restore:
            return
        self._needs_restore = False  # a failed restore is reported, never retried
        try:
            self.client.clean()
            self._check_restored_digests()  # the exact bytes first, where the server offers them
            after = self.probe() if self.probes.get("clean") is not None else None
            if after is not None and after != self.probes["clean"]:
                raise ServerError(f"after restore the probe losses {after} differ from the clean state "
                                  f"{self.probes['clean']}")
        except ServerError as e:
            raise ServerError(f"restoring {self.client.base_url} failed ({e}): the server may still be patched") \
                from None

    # -- digests: the exact bytes, where the server offers them ----------------------------------
    def _digest_before(self, p: PatchSet) -> None:
        """Digests of every tensor the patch touches, before it is applied (an unknown name is the patch's fault)."""
        self.digests = {}
        if contract.EXT_WEIGHTS_DIGEST not in self.client.extensions:
            return
        names = sorted({s["tensor_name"] for s in p.suggestions})
        try:
            before = self.client.weight_digests(names)
        except TensorsUnknownToServer as e:
            raise PatchError(f"patch '{p.name}' ({p.hash}) names tensors the model does not have: "
                             f"{', '.join(e.names) or e}") from None
        self.digests = {"algorithm": "sha256", "tensors": {n: {"before": before[n]} for n in names}}

    def _check_patched_digests(self, p: PatchSet) -> None:
        if not self.digests:
            return
        tensors = self._record_digests("patched")
        same = [n for n, d in tensors.items() if d["patched"] == d["before"]]
        if self.apply_mode == contract.MODE_WEIGHTS and same:
            if len(same) == len(tensors):
                raise PatchError(f"the patch is not live: after POST /api/hooks no tensor it touches changed "
                                 f"(SHA-256 of {', '.join(same)}; patch '{p.name}', {p.hash})")
            log.warning("patch '%s': these tensors are byte-identical after applying it: %s", p.name, ", ".join(same))

    def _record_digests(self, stage: str) -> dict:
        """The touched tensors' digests now, kept under `stage` beside "before"."""
        tensors = self.digests["tensors"]
        now = self.client.weight_digests(list(tensors))
        for n, d in tensors.items():
            d[stage] = now[n]
        return tensors

    def _check_restored_digests(self) -> None:
        """Every touched tensor byte-identical to before the patch, on every rank (else ServerError)."""
        if not self.digests:
            return
        tensors = self._record_digests("restored")
        differ = [n for n, d in tensors.items() if d["restored"] != d["before"]]
        self.digests["restore"] = "DIFFERENT" if differ else "equal"
        if differ:
            raise ServerError("after restore the SHA-256 digests of " + "; ".join(
                f"{n} (before {tensors[n]['before']}, now {tensors[n]['restored']})" for n in differ)
                + " differ from before the patch")

    def probe(self) -> list[float] | None:
        """Probe losses, or None when the server has no /api/loss."""
        try:
            losses = self.client.losses(PROBES, answer_prefix="")
        except LossUnavailable:
            return None
        return [round(x, PROBE_DIGITS) if x is not None else None for x in losses]

    def apply(self, p: PatchSet) -> None:
        """Apply the patch once (never retried: §1 compounding), then prove it live with the probes."""
        self._needs_restore = True
        if not p.suggestions:  # patch=none: the A/A job; the patched arm is a second fresh baseline
            self.applied = {"hook_count": 0, "skipped": [], "response": None, "hooks": None}
            self.patched_path = "A/A: a second baseline generation, nothing applied"
            return
        self._digest_before(p)
        self.applied = self._post(p)
        self._check_patched_digests(p)
        if self.probes.get("clean") is None:
            log.warning("%s has no /api/loss, so the patch cannot be proven live: the patched arm asks "
                        "use_hooks=true, which costs two generations per answer on a stock server (§2)",
                        self.client.base_url)
            self.patched_path = "use_hooks=true (no /api/loss to prove the patch live)"
            return
        self.probes["patched"] = self.probe()
        if self.probes["patched"] == self.probes["clean"]:
            raise PatchError(f"the patch is not live: after POST /api/hooks the probe losses {self.probes['clean']} "
                             f"did not change (patch '{p.name}', {p.hash})")
        self.patched_path = "use_hooks=false, `original` read with the patch proven live (one generation per answer)"

    def _post(self, p: PatchSet) -> dict:
        """POST the edits; refuse a patch the server applied none of, warn about skipped edits."""
        try:
            resp = self.client.apply_patch(p.suggestions, self.apply_mode)
        except ServerUnreachable as e:  # the server is gone, not the patch at fault: exit 4, not 5
            raise ServerError(f"{self.client.base_url} stopped answering before patch '{p.name}' ({p.hash}) "
                              f"could be sent, so it is not patched by this job: {e}") from None
        except PatchApplyUncertain as e:
            if not self.client.alive():
                raise ServerError(f"{self.client.base_url} stopped answering while applying patch '{p.name}' "
                                  f"({p.hash}): it may still be patched ({e})") from None
            raise PatchError(f"patch '{p.name}' ({p.hash}) was not applied cleanly: {e}") from None
        except ServerError as e:
            raise PatchError(f"patch '{p.name}' ({p.hash}) was not applied cleanly: {e}") from None
        count = int(resp.get("hook_count") or 0)
        names_ = [s["tensor_name"] for s in p.suggestions]
        applied = (resp.get("applied_tensors") if self.apply_mode == "weights" else resp.get("modules")) or []
        if count == 0:
            raise PatchError(f"patch '{p.name}' ({p.hash}): the server applied none of its {len(names_)} edits "
                             f"(contract §4: unknown tensors and operations are skipped): {names_}")
        skipped = [n for n in names_ if not any(n == a or n.startswith(a + ".") for a in applied)]
        if count < len(names_):
            log.warning("patch '%s': only %d of %d edits applied; skipped: %s", p.name, count, len(names_),
                        skipped or "(server did not say which)")
        return {"response": resp, "hooks": self.client.hooks(), "skipped": skipped, "hook_count": count}
