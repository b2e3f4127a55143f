"""The JSON report of a run, its verdict (what failed), and the printed summary."""

from __future__ import annotations

from .util import ms_between


def failures(emu) -> list[str]:
    """What makes the run a failure (local_lambda.py then exits 1): the function or an
    extension failed. Empty when everything worked."""
    out = []
    if emu.init_failed:
        # init_timeout and crashes during init are recorded as init_failed too.
        out.append(f"init failed: {emu.init_failed['by']} ({emu.init_failed['error_type']})")
    if emu.restore is not None and emu.restore["status"] != "success":
        out.append(f"restore {emu.restore['status']}: {emu.restore['error_type']}")
    for inv in emu.invocations:
        n = inv["index"] + 1
        if inv["timeout"]:
            out.append(f"invoke #{n} timed out")
        elif inv["failure"]:
            out.append(f"invoke #{n} failed: {inv['failure']}")
        elif inv["runtime_error"]:
            out.append(f"invoke #{n}: the function returned an error ({inv['runtime_error']['error_type']})")
    if len(emu.invocations) < emu.opts.invocations and not out:
        out.append(f"only {len(emu.invocations)} of {emu.opts.invocations} invocations ran")
    for e in emu.extensions:
        p = e.proc
        if e.launch_error:
            out.append(f"extension {e.name} could not start: {e.launch_error}")
        if e.init_error:
            out.append(f"extension {e.name} posted init/error {e.init_error['error_type']}")
        if e.exit_error:
            out.append(f"extension {e.name} posted exit/error {e.exit_error['error_type']}")
        if e.killed_at_deadline:
            out.append(f"extension {e.name} still ran at the shutdown deadline (SIGKILL)")
        elif p is not None and not e.killed_unsubscribed:
            shutdown_sent = emu.shutdown["sent"] if emu.shutdown else None
            if p.exit_code is not None and p.exit_code != 0:
                out.append(f"extension {e.name} exited with code {p.exit_code}")
            if p.exit_time is not None and (shutdown_sent is None or p.exit_time < shutdown_sent) and e.id is not None:
                out.append(f"extension {e.name} exited before SHUTDOWN (crash)")
    for msg in emu.errors:
        if msg.startswith("internal error") or msg == "interrupted":
            out.append(msg.splitlines()[0])
    return out


def _public(record: dict) -> dict:
    return {k: v for k, v in record.items() if not k.startswith("_")}


def build(emu) -> dict:
    sent = emu.shutdown["sent"] if emu.shutdown else None
    fails = failures(emu)
    o = emu.opts
    return {
        "api_port": emu.port,
        "mode": emu.model.name,
        "ok": not fails,
        "failures": fails,
        "options": {
            "extensions": [e.path for e in emu.extensions],
            "function_dir": o.function_dir,
            "handler": o.handler,
            "python": o.python,
            "mode": o.mode,
            "invocations": o.invocations,
            "event": o.event,
            "freeze_seconds": o.freeze_seconds,
            "pc_idle_seconds": o.pc_idle_seconds,
            "snapshot_seconds": o.snapshot_seconds,
            "workers": o.workers,
            "invoke_interval": o.invoke_interval,
            "refuse_invoke_registration": o.refuse_invoke_registration,
            "refuse_telemetry": o.refuse_telemetry,
            "run_as": "%d:%d" % o.run_as if o.run_as else None,
            "invoke_timeout": o.invoke_timeout,
            "init_timeout": o.init_timeout,
            "shutdown_ms": o.shutdown_ms,
            "env": o.env,
        },
        "memory_mb": emu.memory_mb,
        "cpu_quota": emu.cpu_share.share if emu.cpu_share else None,
        "throttled_ms": emu.throttled_ms,
        "init_duration_ms": ms_between(emu.timeline.get("init_start"), emu.timeline.get("init_end")),
        "timeline": emu.timeline,
        "restore": emu.restore,
        "workers": [_public(w) for w in emu.workers],
        "max_in_flight": emu.max_in_flight,
        "registrations": emu.registrations,
        "telemetry_subscriptions": emu.telemetry_subscriptions,
        "extensions": [e.report(sent) for e in emu.extensions],
        "function": emu.function,
        "invocations": [_public(inv) for inv in emu.invocations],
        "shutdown": emu.shutdown,
        "init_timeout": emu.init_timeout,
        "init_failed": emu.init_failed,
        "errors": emu.errors,
        "warnings": emu.warnings,
        "unattributed_requests": emu.unattributed_requests,
        "log": emu.log,
    }


def _t(v) -> str:
    return "-" if v is None else f"{v:.3f}s"


def summary(rep: dict) -> str:
    lines = [f"== local lambda ({rep['mode']}): api port {rep['api_port']}"]
    for e in rep["extensions"]:
        reg = e["register"]
        sub = e["telemetry_subscription"]
        first_next = e["next_calls"][0] if e["next_calls"] else None
        attempts = ", ".join(f"{a['events']}->{a['status']}" for a in e["registrations"])
        lines.append(
            f"extension {e['name']}: registered={'yes @%.3fs' % reg['time'] if reg else 'no'} events={e['events']} "
            f"register_attempts=[{attempts}] first_next={_t(first_next)} "
            f"telemetry={(sub or {}).get('status')} "
            f"deliveries={len((sub or {}).get('deliveries') or [])} "
            f"exit_code={e['exit_code']} killed_at_deadline={e['killed_at_deadline']}"
            + (f" init_error={e['init_error']['error_type']}" if e["init_error"] else "")
            + (f" exit_error={e['exit_error']['error_type']}" if e["exit_error"] else "")
        )
    f = rep["function"]
    lines.append(f"function: init_started={_t(f['init_started'])} first_next={_t(f['first_next'])} exit_code={f['exit_code']}")
    quota = f"CPU quota {rep['cpu_quota'] * 100:.1f} %, throttled {rep['throttled_ms'] or 0:.0f} ms" if rep["cpu_quota"] else "no CPU quota"
    lines.append(f"init: {rep['init_duration_ms']} ms ({rep['memory_mb']} MB, {quota})")
    tl = rep["timeline"]
    marks = " ".join(f"{k}={_t(v)}" for k, v in tl.items() if v is not None)
    lines.append(f"timeline: {marks}")
    if rep["restore"]:
        r = rep["restore"]
        lines.append(f"restore: status={r['status']} duration_ms={r['duration_ms']} "
                     f"runtime_restore_next={_t(r['runtime_restore_next'])} error_type={r['error_type']}")
    if rep["mode"] == "lambda-managed-instances":
        lines.append(f"workers: {len(rep['workers'])} seen, max in flight {rep['max_in_flight']}: "
                     + ", ".join(f"#{w['worker_id']} pid {w['pid']} took {len(w['invocations'])}" for w in rep["workers"]))
    for inv in rep["invocations"]:
        state = "TIMEOUT" if inv["timeout"] else (f"FAILED {inv['failure']}" if inv["failure"] else "ok")
        post = ", ".join(f"{k}+{v:.1f}ms" for k, v in inv["extensions_post_runtime_ms"].items() if v is not None)
        frozen = "%.3fs" % (inv["freeze_end"] - inv["freeze_start"]) if inv["freeze_end"] else "-"
        lines.append(
            f"invoke #{inv['index'] + 1} {inv['request_id']}: {state} duration={inv['duration_ms']}ms "
            f"worker={inv['worker_id']} runtimeDone sent={_t(inv['runtime_done_sent'])} post-runtime[{post}] frozen={frozen}"
        )
    sd = rep["shutdown"]
    if sd:
        lines.append(f"shutdown: reason={sd['reason']} sent={_t(sd['sent'])} deadline_ms={sd['deadline_ms']} "
                     f"runtime_sigterm={_t(sd['runtime_sigterm'])} runtime_sigkill={_t(sd['runtime_sigkill'])}")
    lines.append(f"init_timeout={rep['init_timeout']} init_failed={rep['init_failed']} errors={len(rep['errors'])} "
                 f"warnings={len(rep['warnings'])}")
    for msg in rep["errors"]:
        lines.append(f"  error: {msg.splitlines()[0]}")
    for msg in rep["warnings"]:
        lines.append(f"  warning: {msg}")
    lines.append("verdict: OK" if rep["ok"] else "verdict: FAILED: " + "; ".join(rep["failures"]))
    return "\n".join(lines)
