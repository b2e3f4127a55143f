"""What each execution model adds to the shared lifecycle (lifecycle.py).

- provisioned-concurrency: init long before the first invoke; meanwhile the environment is
  frozen (--pc-idle-seconds).
- snap-start: after init the whole environment is frozen as the snapshot (--snapshot-seconds);
  the restore then sends platform.restoreStart, releases the runtime's /restore/next, waits
  (10 s at most) for its /invocation/next, and reports platform.restoreRuntimeDone and
  platform.restoreReport. Extensions get no restore event: their /event/next, blocked since
  init, returns the first INVOKE (RIE-STD rendering.go RestoreRenderer renders nothing to them).
- lambda-managed-instances: --workers runtime worker processes (awslambdaric forks
  AWS_LAMBDA_MAX_CONCURRENCY of them) take invocations concurrently, never frozen.

A mixin of Emulator; sources in modes.py.
"""

from __future__ import annotations

import threading
import time

from . import modes, telemetry
from .util import ms_between, now


class ExecutionModels:
    def _before_first_invoke(self) -> str | None:
        """Returns None to go on with the invocations, or a shutdown reason."""
        if self.model.name == modes.PROVISIONED_CONCURRENCY:
            self.timeline["pc_idle_start"], self.timeline["pc_idle_end"], _ = self._freeze(
                self.opts.pc_idle_seconds, "provisioned concurrency: initialized, waiting for the first invoke")
        elif self.model.name == modes.SNAP_START:
            self.timeline["snapshot_start"], self.timeline["snapshot_end"], _ = self._freeze(
                self.opts.snapshot_seconds, "SnapStart snapshot")
            return self._restore()
        return None

    # -- SnapStart ----------------------------------------------------------------
    def _restore(self) -> str | None:
        r = {"start": now(), "runtime_restore_next": self.function["restore_next"], "runtime_released": None,
             "runtime_ready": None, "end": None, "status": None, "error_type": None, "duration_ms": None}
        self.restore = r
        self.timeline["restore_start"] = r["start"]
        self.say("restore: platform.restoreStart")
        self._emit(telemetry.make_event("platform.restoreStart", telemetry.runtime_fields(self.instance_id, self.memory_mb), r["start"]))
        deadline = time.monotonic() + modes.RESTORE_TIMEOUT_S
        with self.cond:
            if r["runtime_restore_next"] is not None:
                r["runtime_released"] = now()
                self.restore_released = True  # the runtime's /restore/next answers 200
                self.cond.notify_all()

                def over():
                    return (r["runtime_ready"] is not None or self.function["restore_error"] is not None
                            or not self.runtime.alive)
                self.cond.wait_for(over, timeout=max(0.0, deadline - time.monotonic()))
                if self.function["restore_error"] is not None:
                    r["status"], r["error_type"] = "error", self.function["restore_error"]["error_type"]
                elif r["runtime_ready"] is not None:
                    r["status"] = "success"
                elif not self.runtime.alive:
                    r["status"], r["error_type"] = "error", "Runtime.ExitError"
                else:
                    r["status"], r["error_type"] = "timeout", "SnapStartTimeoutException"
            else:
                # A runtime that never called /restore/next is released by the first invoke
                # (RIE-STD handlers.go handleRestore: "just return").
                r["status"] = "success"
            done_at = r["runtime_ready"] if r["status"] == "success" and r["runtime_ready"] else now()
        r["duration_ms"] = ms_between(r["start"], done_at)
        self.timeline["restore_runtime_done"] = done_at
        record = {"status": r["status"]}
        if r["error_type"]:
            record["errorType"] = r["error_type"]
        self._emit(telemetry.make_event("platform.restoreRuntimeDone", dict(record), done_at))
        r["end"] = self.timeline["restore_end"] = now()
        self._emit(telemetry.make_event("platform.restoreReport",
                                        dict(record, metrics={"durationMs": r["duration_ms"]}), r["end"]))
        if r["status"] != "success":
            self.error(f"restore failed: {r['status']} {r['error_type']} after {r['duration_ms']} ms")
            return "failure"
        self.say(f"restore done in {r['duration_ms']} ms")
        return None

    # -- Lambda Managed Instances -----------------------------------------------------
    def _run_concurrent(self) -> str:
        """Up to --workers invocations in flight at once, --invoke-interval between starts."""
        workers = self.opts.workers
        wait_until = time.monotonic() + self.opts.init_timeout
        with self.cond:
            # Init ended with the first worker's /next; traffic is sent once every worker
            # waits, so that invocations really overlap (the emulator's choice of when the
            # traffic comes, not a Lambda rule).
            ready = self.cond.wait_for(
                lambda: self.runtime_waiters >= workers or not self.runtime.alive or self._dead_extensions(),
                timeout=max(0.0, wait_until - time.monotonic()))
            if ready and self.runtime.alive and not self._dead_extensions():
                self.timeline["workers_ready"] = now()
                self.say(f"{workers} runtime workers wait on /invocation/next")
            else:
                self.warnings.append(f"only {self.runtime_waiters} of {workers} runtime workers called /invocation/next")
        slots = threading.Semaphore(workers)
        stop = threading.Event()
        outcome = {"reason": "spindown"}

        def one(index: int) -> None:
            try:
                if self._invoke(index) == "failure":
                    outcome["reason"] = "failure"  # LMI: the environment is replaced, no reset
                    stop.set()
            finally:
                slots.release()

        def take_slot() -> bool:
            while not stop.is_set():
                if slots.acquire(timeout=0.1):
                    return True
            return False

        threads = []
        last_start = None
        for index in range(self.opts.invocations):
            if not take_slot():
                break
            if last_start is not None and self.opts.invoke_interval > 0:
                stop.wait(max(0.0, last_start + self.opts.invoke_interval - time.monotonic()))
            if stop.is_set():
                slots.release()
                break
            last_start = time.monotonic()
            thread = threading.Thread(target=one, args=(index,), name=f"invoke-{index + 1}", daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
        return outcome["reason"]
