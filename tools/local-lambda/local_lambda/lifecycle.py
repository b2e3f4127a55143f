"""The lifecycle every execution model shares: init, one invocation, the freeze (shutdown: shutdown.py).

A mixin of Emulator. What happens between init and the first invocation (provisioned
concurrency's idle, SnapStart's snapshot and restore) and the concurrent dispatch of Lambda
Managed Instances are in execution_models.py.
"""

from __future__ import annotations

import math
import signal
import subprocess
import time
import uuid

from . import modes, telemetry
from .processes import ManagedProcess
from .runtime_api import responded
from .util import FUNCTION_ARN, FUNCTION_VERSION, iso_at, ms_between, now, unix_ms

# Freeze: how long after SIGSTOP we sample /proc to record that every thread is stopped.
FREEZE_SAMPLE_DELAY_S = 0.1


class Lifecycle:
    def run(self) -> None:
        self._server_thread.start()
        self.say(f"sandbox API listening on 127.0.0.1:{self.port} (mode {self.model.name})")
        if self.cpu_share:
            self.say(f"{self.memory_mb} MB: CPU quota {self.cpu_share.share * 100:.1f} % of one CPU (20 ms periods), "
                     f"memory limit {self.memory_mb} MB, for the extensions and the runtime together")
        try:
            if self._init():
                reason = self._before_first_invoke()
                if reason is None:
                    reason = self._run_concurrent() if self.model.concurrent else self._run_sequential()
                self._shutdown(reason)
            elif not self.init_timeout:
                self._shutdown("failure")
        except KeyboardInterrupt:
            self.error("interrupted")
        finally:
            self._cleanup()

    def _run_sequential(self) -> str:
        for i in range(self.opts.invocations):
            outcome = self._invoke(i)
            if outcome != "ok":
                return outcome  # "timeout" | "failure": AWS resets the environment
            if self.model.freezes:
                inv = self.invocations[-1]
                inv["freeze_start"], inv["freeze_end"], inv["freeze_states"] = self._freeze(
                    self.opts.freeze_seconds, f"after invoke #{i + 1}")
        return "spindown"

    # -- init -------------------------------------------------------------------
    def _all_exts_ready(self) -> bool:
        return all(e.next_calls for e in self.extensions)

    def _all_exts_registered(self) -> bool:
        return all(e.id is not None or e.next_calls for e in self.extensions)

    def _runtime_ready(self) -> bool:
        # SnapStart: a runtime that supports it ends its init with /restore/next, others with
        # /invocation/next (RIE-STD handlers.go initFlow.AwaitRuntimeRestoreReady).
        return self.function["first_next"] is not None or self.function["restore_next"] is not None

    def _init_problem(self) -> str | None:
        """What failed the init, if anything; also recorded as init_failed."""
        if self.init_failed:
            return self.init_failed.get("message") or f"init failed: {self.init_failed['by']} ({self.init_failed['error_type']})"
        for e in self.extensions:
            if e.launch_error:
                return f"extension {e.name} failed to launch: {e.launch_error}"
            if e.proc and not e.proc.alive and not e.next_calls:
                self.init_failed = {"time": e.proc.exit_time, "by": f"extension {e.name}", "error_type": "Extension.Crash",
                                    "message": f"extension {e.name} exited during init (code {e.proc.exit_code}) - Extension.Crash"}
                return self.init_failed["message"]
        if self.runtime and not self.runtime.alive and not self._runtime_ready():
            self.init_failed = {"time": self.runtime.exit_time, "by": "runtime", "error_type": "Runtime.ExitError",
                                "message": f"runtime exited during init (code {self.runtime.exit_code}) - Runtime.ExitError"}
            return self.init_failed["message"]
        return None

    def _init_wait(self, ready, deadline: float, what: str) -> bool:
        """Waits for `ready()` within the init deadline; False (recorded) on a problem or timeout."""
        with self.cond:
            ok = self.cond.wait_for(lambda: self._init_problem() or ready(), timeout=max(0.0, deadline - time.monotonic()))
            problem = self._init_problem()
        if problem:
            self.error(problem)
            return False
        return True if ok else self._init_timed_out(what)

    def _init(self) -> bool:
        init_start = time.monotonic()
        deadline = init_start + self.opts.init_timeout
        self.init_metrics["start"] = self.timeline["init_start"] = now()
        ext_env = self.extension_env()
        for ext in self.extensions:
            try:
                ext.proc = ManagedProcess(f"extension {ext.name}", [ext.path], ext_env, None, self._on_line, self._on_exit,
                                          run_as=self.opts.run_as, join=self.cpu_share_join)
                as_user = f" as {self.opts.run_as[0]}:{self.opts.run_as[1]}" if self.opts.run_as else ""
                self.say(f"started extension {ext.name} (pid {ext.proc.pid}){as_user}")
            except OSError as e:
                ext.launch_error = str(e)
                self.init_failed = {"time": now(), "by": f"extension {ext.name}", "error_type": "Extension.LaunchError"}
        # Extension init: every launched extension registers and calls /event/next.
        # The docs (and lambda-lifecycle.md) say the function's init starts once every
        # extension has called /next. (RAPID, the open-source core, actually starts the
        # runtime once all extensions have *registered* and only gates the first invoke on
        # their /next; the documented, stricter order is the one emulated here.)
        # --runtime-start registered models RAPID instead: the runtime starts once every
        # extension registered, and the init phase ends when everyone called /next.
        rapid = getattr(self.opts, "runtime_start", "next") == "registered"
        if rapid:
            if not self._init_wait(self._all_exts_registered, deadline, "extensions did not all register"):
                return False
        elif not self._init_wait(self._all_exts_ready, deadline, "extensions did not all reach /event/next"):
            return False

        # Runtime init.
        self.function["init_started"] = now()
        argv = [self.opts.python, "-m", "awslambdaric", self.opts.handler]
        self._emit(telemetry.make_event("platform.initStart", {
            "initializationType": self.model.name,
            "phase": "init",
            **telemetry.runtime_fields(self.instance_id, self.memory_mb),
        }))
        try:
            self.runtime = ManagedProcess("runtime", argv, self.runtime_env(), self.opts.function_dir,
                                          self._on_line, self._on_exit, join=self.cpu_share_join)
        except OSError as e:
            self.init_failed = {"time": now(), "by": "runtime", "error_type": "Runtime.InvalidEntrypoint"}
            self.error(f"could not start runtime {argv}: {e}")
            return False
        self.function["pid"] = self.runtime.pid
        self.say(f"started runtime: {' '.join(argv)} (pid {self.runtime.pid}, cwd {self.opts.function_dir})")
        with self.cond:
            ok = self.cond.wait_for(lambda: self._init_problem() or self._runtime_ready(),
                                    timeout=max(0.0, deadline - time.monotonic()))
            problem = self._init_problem()
        if problem:
            self.error(problem)
            self._emit_init_done("error")
            return False
        if not ok:
            return self._init_timed_out("runtime did not reach /invocation/next")
        if rapid:
            # The function's init is done: say so now; extensions may still be initializing.
            self._emit_runtime_init_done("success")
            if not self._init_wait(self._all_exts_ready, deadline, "extensions did not all reach /event/next"):
                return False
        with self.cond:
            self.init_done = True  # closes registration and telemetry subscriptions
        self.init_metrics["done"] = self.timeline["init_end"] = now()
        self._emit_init_done("success", runtime_done_sent=rapid)
        return True

    def _emit_runtime_init_done(self, status: str) -> None:
        base = {"initializationType": self.model.name, "phase": "init", "status": status}
        self._emit(telemetry.make_event("platform.initRuntimeDone", dict(base), now()))

    def _emit_init_done(self, status: str, runtime_done_sent: bool = False) -> None:
        t = now()
        base = {"initializationType": self.model.name, "phase": "init", "status": status}
        if not runtime_done_sent:
            self._emit(telemetry.make_event("platform.initRuntimeDone", dict(base), t))
        rep = dict(base, metrics={"durationMs": ms_between(self.init_metrics.get("start"), t)})
        self._emit(telemetry.make_event("platform.initReport", rep, t))

    def _init_timed_out(self, what: str) -> bool:
        self.init_timeout = True
        self.init_failed = self.init_failed or {"time": now(), "by": what, "error_type": "Sandbox.Timeout"}
        self.error(f"init timeout after {self.opts.init_timeout}s: {what}; SIGKILL everything")
        for p in self._procs():
            p.signal_group(signal.SIGKILL)
        return False

    # -- invoke -----------------------------------------------------------------
    def _new_invocation(self, index: int) -> dict:
        rid = str(uuid.uuid4())
        trace_id = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0;Lineage=1:{uuid.uuid4().hex[:8]}:0"
        return {
            "index": index,
            "request_id": rid,
            "trace_id": trace_id,
            "start": now(),
            "deadline_ms": unix_ms() + int(self.opts.invoke_timeout * 1000),
            "worker_id": None,
            "worker_pid": None,
            "runtime_received": None,
            "runtime_response": None,
            "runtime_error": None,
            "runtime_next": None,
            "runtime_done_emitted": None,
            "runtime_done_sent": None,
            "runtime_done_status": None,
            "runtime_done_subscribers": 0,
            "extensions_received": {},
            "extensions_next": {},
            "extensions_post_runtime_ms": {},
            "complete": None,
            "duration_ms": None,
            "timeout": False,
            "failure": None,
            "closed": False,
            "freeze_start": None,
            "freeze_end": None,
            "freeze_states": None,
            "response_body": None,
            "response_bytes": None,
            "_event_bytes": self.opts.event.encode(),
            "_tracing": {"spanId": telemetry.new_span_id(), "type": "X-Amzn-Trace-Id", "value": trace_id},
        }

    def _dead_extensions(self) -> list[str]:
        return [e.name for e in self.extensions if e.id is not None and not e.alive]

    def _invoke(self, index: int) -> str:
        dead = self._dead_extensions()
        if dead or not self.runtime.alive:
            # A process died between invocations: AWS resets the environment (Extension.Crash /
            # Runtime.ExitError) instead of invoking - or, on LMI, replaces it. We stop and
            # shut down with reason failure.
            self.error(f"before invoke #{index + 1}: "
                       + (f"extension(s) {dead} exited" if dead else "runtime exited") + "; shutting down")
            return "failure"
        inv = self._new_invocation(index)
        invoke_event = {
            "eventType": "INVOKE",
            "deadlineMs": inv["deadline_ms"],
            "requestId": inv["request_id"],
            "invokedFunctionArn": FUNCTION_ARN,
            "tracing": {"type": "X-Amzn-Trace-Id", "value": inv["trace_id"]},
        }
        deadline = time.monotonic() + self.opts.invoke_timeout
        self.say(f"invoke #{index + 1} request {inv['request_id']}")
        self._emit(telemetry.make_event("platform.start", {
            "requestId": inv["request_id"], "version": FUNCTION_VERSION, "tracing": inv["_tracing"]}))
        with self.cond:
            if self.timeline["first_invoke_start"] is None:
                self.timeline["first_invoke_start"] = inv["start"]
            self.invocations.append(inv)
            self.by_request_id[inv["request_id"]] = inv
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            # RAPID releases the extensions first, then the runtime (handlers.go doInvoke).
            waiting_for = [e for e in self.extensions if "INVOKE" in e.events and e.alive]
            watched = [e for e in self.extensions if e.id is not None] if self.model.concurrent else waiting_for
            for ext in waiting_for:
                ext.pending.append(dict(invoke_event))
            self.pending_runtime.append(inv)
            self.cond.notify_all()

            def done() -> bool:
                if self.model.concurrent:
                    return responded(inv)  # LMI: no extension takes part in an invocation
                runtime_done = inv["runtime_next"] is not None
                exts_done = all(e.name in inv["extensions_next"] for e in waiting_for if e.alive)
                return runtime_done and exts_done

            def failed() -> str | None:
                if not self.runtime.alive:
                    return "Runtime.ExitError"
                for e in watched:
                    if not e.alive and e.name not in inv["extensions_next"]:
                        return f"Extension.Crash ({e.name})"
                return None

            self.cond.wait_for(lambda: done() or failed(), timeout=max(0.0, deadline - time.monotonic()))
            fail = failed() if not done() else None
            if done():
                # LMI: the invocation ends with the runtime's answer; elsewhere once the runtime
                # and every INVOKE extension called /next.
                inv["complete"] = (inv["runtime_response"] or inv["runtime_error"]["time"]) if self.model.concurrent else now()
            elif fail:
                inv["failure"] = fail
            else:
                inv["timeout"] = True
            # Post-runtime time of each extension (billed as PostRuntimeExtensionsDuration).
            ref = inv["runtime_next"] or inv["runtime_response"]
            for name, t in inv["extensions_next"].items():
                inv["extensions_post_runtime_ms"][name] = max(0.0, ms_between(ref, t)) if ref is not None else None
            if inv["timeout"] or inv["failure"]:
                inv["closed"] = True
                if inv in self.pending_runtime:
                    self.pending_runtime.remove(inv)
                if self.model.runtime_done:
                    # AWS emits runtimeDone with status timeout/error/failure on reset (handlers.go handleReset).
                    status = "timeout" if inv["timeout"] else "error"
                    self._emit_runtime_done(inv, status, None if inv["timeout"] else fail.split(" ")[0])
            self.in_flight -= 1
        end = inv["complete"] or now()
        inv["duration_ms"] = ms_between(inv["start"], end)
        self._emit(telemetry.make_event("platform.report", self._platform_report(inv)))
        if inv["timeout"]:
            self.error(f"invoke #{index + 1} timed out after {self.opts.invoke_timeout}s "
                       f"(runtime_next={inv['runtime_next']}, extensions_next={inv['extensions_next']})")
            return "timeout"
        if inv["failure"]:
            self.error(f"invoke #{index + 1} failed: {inv['failure']}")
            return "failure"
        post = ", ".join(f"{k} +{v:.1f} ms" for k, v in inv["extensions_post_runtime_ms"].items() if v is not None)
        worker = f" on worker {inv['worker_id']}" if self.model.concurrent else ""
        self.say(f"invoke #{index + 1} complete{worker} in {inv['duration_ms']:.1f} ms"
                 f" (response {ms_between(inv['start'], inv['runtime_response'] or inv['runtime_next'])} ms"
                 + (f"; post-runtime {post}" if post else "") + ")")
        return "ok"

    def _platform_report(self, inv: dict) -> dict:
        status = "timeout" if inv["timeout"] else ("error" if (inv["failure"] or inv["runtime_error"]) else "success")
        report = {"requestId": inv["request_id"], "status": status, "tracing": inv["_tracing"]}
        if self.model.concurrent:
            # LMI: metrics only durationMs; spans responseLatency/responseDuration, no
            # extensionOverhead (AWS telemetry-schema-reference, platform.report).
            report["metrics"] = {"durationMs": inv["duration_ms"]}
            answered = inv["runtime_response"] or (inv["runtime_error"] or {}).get("time")
            if answered is not None:
                report["spans"] = [
                    {"name": "responseLatency", "start": iso_at(inv["start"]), "durationMs": ms_between(inv["start"], answered)},
                    {"name": "responseDuration", "start": iso_at(answered), "durationMs": 0.0},
                ]
            return report
        metrics = {
            "durationMs": inv["duration_ms"],
            "billedDurationMs": int(math.ceil(inv["duration_ms"] or 0)),
            "memorySizeMB": self.memory_mb,
            "maxMemoryUsedMB": self.runtime.max_rss_mb() or 0,
        }
        if inv["index"] == 0:
            # The first REPORT carries the cold start: Init Duration on demand, Restore
            # Duration after a SnapStart restore; none with provisioned concurrency, whose
            # init is not part of any invocation.
            if self.model.name == modes.ON_DEMAND and self.init_metrics.get("done") is not None:
                metrics["initDurationMs"] = ms_between(self.init_metrics["start"], self.init_metrics["done"])
            if self.restore is not None and self.restore["duration_ms"] is not None:
                metrics["restoreDurationMs"] = self.restore["duration_ms"]
        report["metrics"] = metrics
        if inv["extensions_next"] and inv["runtime_next"] is not None:
            last = max(inv["extensions_next"].values())
            report["spans"] = [{"name": "extensionOverhead", "start": iso_at(inv["runtime_next"]),
                                "durationMs": max(0.0, ms_between(inv["runtime_next"], last))}]
        return report

    # -- freeze -----------------------------------------------------------------
    def _freeze(self, seconds: float, why: str):
        """SIGSTOP every process group for `seconds`; returns (start, end, /proc states)."""
        procs = [p for p in self._procs() if p.alive]
        self.thawed.clear()
        start = now()
        network = NetworkFreeze(self.opts.freeze_network_port)
        network.stop()
        for p in procs:
            p.signal_group(signal.SIGSTOP)
        sample = min(FREEZE_SAMPLE_DELAY_S, seconds / 2)
        time.sleep(sample)
        states = {p.label: p.group_states() for p in procs}
        not_stopped = [
            f"{label} pid {pid} state {st['state']} threads {st['threads']}"
            for label, group in states.items() for pid, st in group.items()
            if st["state"] != "T" or any(s != "T" for s in st["threads"])
        ]
        if not_stopped:
            self.warnings.append(f"freeze {why}: not all threads stopped: {not_stopped}")
        time.sleep(max(0.0, seconds - sample))
        network.resume()
        for p in procs:
            p.signal_group(signal.SIGCONT)
        end = now()
        self.thawed.set()
        self.say(f"froze {len(procs)} process group(s) for {end - start:.3f}s ({why})")
        return start, end, states


class NetworkFreeze:
    """While the environment is frozen, its TCP traffic to and from the given ports is
    dropped, both ways, as a paused microVM neither sends nor acknowledges: the peer (a
    remote, a load balancer) sees silence and retransmits or gives up, and at the thaw the
    environment finds what it left. The processes' own kernel keeps retransmitting meanwhile
    (a paused VM's would not), into the same silence."""

    def __init__(self, ports):
        self.rules = [["-p", "tcp", flag, str(port), "-j", "DROP"] for port in ports for flag in ("--dport", "--sport")]

    def stop(self):
        for rule in self.rules:
            subprocess.run(["iptables", "-w", "-I", "OUTPUT", *rule], check=True)

    def resume(self):
        for rule in self.rules:
            subprocess.run(["iptables", "-w", "-D", "OUTPUT", *rule], check=False)

