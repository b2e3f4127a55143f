"""Shutdown: the runtime first (SIGTERM, its grace, SIGKILL), then SHUTDOWN to the extensions
with the phase's deadline, SIGKILL for what still runs then; and the final cleanup.

A mixin of Emulator. Sources: lambda-lifecycle.md (Timing, Shutdown), RIE-STD and RIE-LMI
rapid/shutdown.go; the differences between execution models are in modes.py.
"""

from __future__ import annotations

import signal
import time

from . import modes
from .util import ms_between, now, unix_ms


class Shutdown:
    def _shutdown(self, reason: str) -> None:
        # Make sure nothing is left stopped (e.g. a failure during a freeze).
        for p in self._procs():
            if p.alive:
                p.signal_group(signal.SIGCONT)
        self.thawed.set()
        start_mono = time.monotonic()
        start_ms = unix_ms()
        sd = {"reason": reason, "start": now(), "runtime_sigterm": None, "runtime_sigkill": None,
              "runtime_exit": None, "telemetry_flushed": None, "sent": None, "deadline_ms": None,
              "deadline": None, "complete": None}
        self.shutdown = sd
        self.timeline["shutdown_start"] = sd["start"]
        total_s = self.opts.shutdown_ms / 1000.0
        registered = [e for e in self.extensions if e.id is not None]
        rt = self.runtime
        grace_s = self.model.runtime_shutdown_grace_s
        if rt is not None and rt.alive:
            if not registered:
                # RAPID: "We do not spend any compute time on runtime graceful shutdown if
                # there are no agents" - the runtime is SIGKILLed straight away.
                rt.signal_group(signal.SIGKILL)
                sd["runtime_sigkill"] = now()
            else:
                rt.signal_group(signal.SIGTERM)
                sd["runtime_sigterm"] = now()
                self.say(f"shutdown ({reason}): SIGTERM runtime, grace {grace_s * 1000:.0f} ms")
                if not rt.wait(min(grace_s, total_s)):
                    rt.signal_group(signal.SIGKILL)
                    sd["runtime_sigkill"] = now()
                    self.say("runtime still running after grace period: SIGKILL")
            rt.wait(1.0)
        if rt is not None:
            rt.signal_group(signal.SIGKILL)  # leftovers in the runtime's process group
            sd["runtime_exit"] = rt.exit_time
        if self.model.flush_telemetry_before_shutdown:
            # LMI: Telemetry buffers are flushed before SHUTDOWN (RIE-LMI rapid/shutdown.go).
            for sub in self._subscriptions():
                sub.flush(modes.SHUTDOWN_TELEMETRY_FLUSH_S)
            sd["telemetry_flushed"] = now()

        # Extensions: SHUTDOWN with the deadline at the end of the whole shutdown phase
        # (= shutdown start + shutdown-ms, whatever the runtime used).
        deadline_mono = start_mono + total_s
        sd["deadline_ms"] = start_ms + self.opts.shutdown_ms
        sd["deadline"] = round(sd["start"] + total_s, 6)
        event = {"eventType": "SHUTDOWN", "shutdownReason": reason, "deadlineMs": sd["deadline_ms"]}
        with self.cond:
            waiting = []
            for ext in self.extensions:
                if not ext.alive:
                    continue
                if ext.id is not None and "SHUTDOWN" in ext.events:
                    ext.pending.append(dict(event))
                    waiting.append(ext)
                else:
                    # RAPID: extensions not subscribed to SHUTDOWN are SIGKILLed at once.
                    ext.proc.signal_group(signal.SIGKILL)
                    ext.killed_unsubscribed = True
            sd["sent"] = now()
            self.cond.notify_all()
            if waiting:
                self.say(f"SHUTDOWN ({reason}) sent to {', '.join(e.name for e in waiting)}, "
                         f"deadline in {(deadline_mono - time.monotonic()) * 1000:.0f} ms")
            self.cond.wait_for(lambda: not any(e.alive for e in waiting),
                               timeout=max(0.0, deadline_mono - time.monotonic()))
            late = [e for e in waiting if e.alive]
        for ext in late:
            ext.proc.signal_group(signal.SIGKILL)
            ext.killed_at_deadline = True
            self.error(f"extension {ext.name} still running at the shutdown deadline: SIGKILL")
        for ext in self.extensions:
            if ext.proc:
                ext.proc.wait(2.0)
                ext.proc.signal_group(signal.SIGKILL)  # leftovers in its group
        sd["complete"] = now()
        for ext in waiting:
            if not ext.killed_at_deadline:
                self.say(f"extension {ext.name} exited with code {ext.proc.exit_code} "
                         f"{ms_between(sd['sent'], ext.proc.exit_time)} ms after SHUTDOWN")

    def _cleanup(self) -> None:
        for p in self._procs():
            if p.alive:
                p.signal_group(signal.SIGCONT)
                p.signal_group(signal.SIGKILL)
        with self.cond:
            self.closing = True
            self.cond.notify_all()
        for e in self.extensions:
            if e.subscription:
                e.subscription.stop()
        for p in self._procs():
            p.wait(2.0)
            p.join_output(1.0)
        self.server.shutdown()
        self.server.server_close()
        if self.cpu_share:
            self.throttled_ms = self.cpu_share.throttled_ms()
            self.cpu_share.remove()
        if self.runtime:
            self.function["exit_code"] = self.runtime.exit_code
            self.function["exit_time"] = self.runtime.exit_time
            self.function["output"] = self.runtime.output
