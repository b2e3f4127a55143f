"""The report of `make bench`: the summary table of a run's raw results, and the latency plot."""

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import extension_cost  # noqa: E402
from harness import med, spread  # noqa: E402


def summarize(data):
    rounds = data["rounds"]
    rel = [r["relay"] for r in rounds]
    ngx = [r["nginx"] for r in rounds]
    rows = []  # (section, metric, relay values, nginx values, fmt, target text, higher_is_better)

    def fi(x):
        return f"{x:,.0f}"

    def f1(x):
        return f"{x:,.1f}"

    def f2(x):
        return f"{x:,.2f}"

    def mb(x):
        return f"{x / 1024:.1f}"

    def add(metric, get, fmt, target="", nginx=True, ratio=True):
        rv = [get(x) for x in rel]
        nv = [get(x) for x in ngx] if nginx else []
        rows.append((metric, rv, nv, fmt, target, ratio))

    for key, label in (("1k_c1", "1 KB, 1 conn"), ("1k_c32", "1 KB, 32 conns"), ("64k_c1", "64 KB, 1 conn"),
                       ("64k_c32", "64 KB, 32 conns")):
        add(f"ack {label}: req/s answered 200", lambda x, k=key: x["ack"][k]["ok_rps"], fi, "≥ 60% of nginx return 200")
        add(f"ack {label}: req/s answered (any status)", lambda x, k=key: x["ack"][k]["rps"], fi)
        add(f"ack {label}: non-2xx (503) %", lambda x, k=key: 100 * x["ack"][k]["non2xx"] / max(1, x["ack"][k]["requests"]), f1,
            ratio=False)
        add(f"ack {label}: p50 µs", lambda x, k=key: x["ack"][k]["p50_us"], fi)
        add(f"ack {label}: p99 µs", lambda x, k=key: x["ack"][k]["p99_us"], fi)
        add(f"ack {label}: p99.9 µs", lambda x, k=key: x["ack"][k]["p999_us"], fi)
    for b, label in (("1k", "1 KB"), ("64k", "64 KB")):
        add(f"delivered {label}, 32 conns closed loop: to sink/s", lambda x, b=b: x["delivered"][b]["delivered_rps"], fi,
            "≥ nginx proxy_pass")
        add(f"delivered {label}: offered req/s", lambda x, b=b: x["delivered"][b]["rps"], fi)
        add(f"delivered {label}: refused (503) %", lambda x, b=b: 100 * x["delivered"][b]["non2xx"] / max(1, x["delivered"][b]["requests"]), f1,
            ratio=False)
        add(f"delivered {label}: lost (accepted, never at sink)", lambda x, b=b: x["delivered"][b]["loss"], fi, "0", ratio=False)
        add(f"delivered {label}: sink CPU % of a core", lambda x, b=b: 100 * x["delivered"][b]["sink_cpu_util"], fi, ratio=False)
    add("paced 1 KB: max rate with 0 refused, 0 lost, req/s", lambda x: x["max_sustained_rps"], fi, "≥ nginx proxy_pass")
    add("paced 1 KB: lost uploads, all steps", lambda x: sum(max(0, s["loss"]) for s in x["ramp"]), fi, "0", ratio=False)
    add("memory idle: anon MB", lambda x: x["memory"]["idle"]["anon_kb"], mb)
    add("memory idle: file MB", lambda x: x["memory"]["idle"]["file_kb"], mb)
    add("memory idle: total RSS MB", lambda x: x["memory"]["idle"]["total_kb"], mb, "< 8 MB")
    add("memory during load: total RSS MB (median)", lambda x: x["memory"]["during_median"]["total_kb"], mb)
    add("memory after load: anon MB", lambda x: x["memory"]["after"]["anon_kb"], mb)
    add("memory after load: file MB", lambda x: x["memory"]["after"]["file_kb"], mb)
    add("memory peak: anon MB", lambda x: x["memory"]["peak"]["anon_kb"], mb)
    add("memory peak: file MB", lambda x: x["memory"]["peak"]["file_kb"], mb)
    add("memory peak: total RSS MB (VmHWM)", lambda x: x["memory"]["vm_hwm_kb"], mb)
    add("threads", lambda x: x["memory"]["threads"], fi)
    add("start-up: exec → port accepts, ms (median of N)", lambda x: statistics.median(x["startup_us"]) / 1000, f2, "< 3 ms")
    add("CPU per relayed request, µs (utime+stime, ≤2k req/s paced)", lambda x: x["cpu"]["us_per_request"], f1)
    add("scrape time µs: relay /metrics vs nginx stub_status", lambda x: x["scrape"]["median_us"], fi)

    lines = [
        "| metric | relay (A) median (min–max) | nginx (B) median (min–max) | A/B | target |",
        "|---|---|---|---|---|",
    ]
    summary = {}
    for metric, rv, nv, fmt, target, want_ratio in rows:
        ratio = ""
        if want_ratio and nv and med(nv):
            ratio = f"{med(rv) / med(nv):.2f}"
        summary[metric] = {"relay": rv, "nginx": nv, "relay_median": med(rv), "nginx_median": med(nv) if nv else None,
                           "ratio": float(ratio) if ratio else None}
        lines.append(f"| {metric} | {spread(rv, fmt)} | {spread(nv, fmt) if nv else '—'} | {ratio} | {target} |")
    sp = data.get("self_profiling")
    if sp:
        lines.append(f"| self-profiling at 100 Hz, {sp['rate']:,} req/s paced: relay CPU % of a core off → on | "
                     f"{100 * sp['cpu_off']:.1f} → {100 * sp['cpu_on']:.1f} (+{sp['added_cpu_points']:.2f} points, "
                     f"{sp['relative_pct']:+.1f}%) | — | | < 2% CPU |")
    lf = data.get("log_flood")
    if lf:
        lines.append(f"| log flood, remote 503 for {lf['seconds']} s: log bytes per refused upload ({lf['refused']:,} refused, "
                     f"{lf['log_lines']} lines, {lf['log_bytes']:,} bytes) | {lf['log_bytes_per_refused']:.3f} | — | | ≤ 5 lines per reason per 10 s |")
    lb = data.get("logbench") or {}
    if lb:
        lines.append(f"| LogBench text lines/s (relay only) | {lb.get('log_text_lines_per_second', 0):,} | — | | |")
        lines.append(f"| LogBench json lines/s (relay only) | {lb.get('log_json_lines_per_second', 0):,} | — | | |")
    for pb in data.get("pipelinebench") or []:
        if pb:
            lines.append(f"| pipeline CPU per upload, {pb['body_bytes']:,} B: memory only → with the journal (µs) | "
                         f"{pb['pipeline_us_per_upload']:.2f} → {pb['pipeline_journal_us_per_upload']:.2f} | — | | journal < 10% of the CPU per upload |")
    sk = data.get("sink_check")
    fl = data.get("startup_floor_us")
    m = data["machine"]
    notes = [
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), kernel {m['kernel']}, load {' '.join(m['loadavg'])} at start, "
        f"{' '.join(data.get('loadavg_end', []))} at end; {m['nginx']}; {m['wrk'].split(' Copyright')[0]}; git {m['git']}{' (dirty)' if m['git_dirty'] else ''}.",
        f"Rounds: {len(rounds)} (A B A B …), {data['config']['duration']} s per wrk run. Read figures as A/B ratios.",
    ]
    if sk:
        notes.append(f"Sink alone (wrk → sink, 1 KB, 32 conns): {sk['rps']:,.0f} req/s; the highest delivered rate above is "
                     f"{100 * max(med([r['relay']['delivered']['1k']['delivered_rps'] for r in rounds]), med([r['nginx']['delivered']['1k']['delivered_rps'] for r in rounds])) / sk['rps']:.0f}% of it.")
    if fl:
        notes.append(f"Start-up harness floor (fork+exec of a trivial C listener until it accepts): median {statistics.median(fl) / 1000:.2f} ms.")
    if data.get("extension_cost"):
        notes += ["", "Cost to the function (Benchmarks/extension_cost.py):", "", extension_cost.table(data["extension_cost"])]
    return "\n".join(lines + notes), summary


def refused(r):
    return f" ({100 * r['non2xx'] / max(1, r['requests']):.0f}% 503)" if r["non2xx"] else ""


def plot(data, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter

    keys = [("1k_c1", "1 KB body, 1 connection"), ("1k_c32", "1 KB body, 32 connections"),
            ("64k_c1", "64 KB body, 1 connection"), ("64k_c32", "64 KB body, 32 connections")]
    fig, axes = plt.subplots(2, 2, figsize=(13, 9), constrained_layout=True)
    colors = {"relay": "tab:blue", "nginx": "tab:orange"}
    labels = {"relay": "relay (ack, 503 counted as error)", "nginx": "nginx return 200"}
    ticks = [50, 90, 99, 99.9, 99.99]
    for ax, (k, title) in zip(axes.flat, keys):
        for tname in ("relay", "nginx"):
            for i, rnd in enumerate(data["rounds"]):
                r = rnd[tname]["ack"][k]
                pts = [(p, v) for p, v in r["latency_us"]["pct"] if p >= 1]
                xs = [1 / (1 - p / 100) for p, _ in pts]
                ys = [max(v, 1) for _, v in pts]
                ax.plot(xs, ys, color=colors[tname], alpha=0.9 if i == 0 else 0.55, lw=1.6,
                        ls="-" if i % 2 == 0 else "--",
                        label=f"{labels[tname]}, round {i + 1}: {r['rps']:,.0f} req/s{refused(r)}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(FixedLocator([1 / (1 - t / 100) for t in ticks]))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"p{100 * (1 - 1 / x):g}"))
        ax.xaxis.set_minor_locator(FixedLocator([]))
        ax.set_xlim(1.0, 1 / (1 - 99.99 / 100) * 1.05)
        ax.set_xlabel("percentile")
        ax.set_ylabel("latency (µs, log)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    m = data["machine"]
    fig.suptitle(f"Ack-path latency, wrk --latency (no coordinated-omission correction) — {m['nproc']} CPUs, "
                 f"kernel {m['kernel']}, {data['timestamp']}", fontsize=11)
    fig.savefig(path, dpi=110)


# --------------------------------------------------------------------------- main
