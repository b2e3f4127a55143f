#!/usr/bin/env python3
"""The relay's figures over a run, from Prometheus, as one PNG.

Usage: relay_chart.py --prometheus http://127.0.0.1:9090 --start UNIX --end UNIX
           [--step SECONDS] --out DIR [--dashboard dashboards/grafana-relay.json]

Runs the Grafana dashboard's own PromQL (read from the dashboard file; `$instance`
and `$job` set to `.*`, `$__rate_interval` to what Grafana would make of it:
max(step + scrape interval, 4 x scrape interval)) for the panels below through
Prometheus's /api/v1/query_range, writes what Prometheus answered to
DIR/relay-metrics.json (start, end, step, the variables, and per query its
expression and result), and draws it with
matplotlib into DIR/relay-metrics.png. The JSON is what the PNG shows: anyone can
run the same query_range against the same Prometheus data (make observe keeps it
in DIR/prometheus-data) and compare.
"""

import argparse
import json
import math
import os
import re
import sys
import urllib.parse
import urllib.request

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DASHBOARD = os.path.join(REPOSITORY, "dashboards", "grafana-relay.json")

# The dashboard panels drawn, by title: what a person debugging throughput looks at first.
PANELS = [
    "Uploads received, delivered and dropped /s",
    "Answer time to profilers (p50, p99)",
    "Upload latency to the remote (p50, p99)",
    "Queue and spool",
]


def grafana_variables(step, scrape_interval):
    """The dashboard's variables for one scraped relay, as Grafana fills them in."""
    return {"instance": ".*", "job": ".*", "__rate_interval": "%gs" % max(step + scrape_interval, 4 * scrape_interval)}


def fill(expr, variables):
    return re.sub(r"\$(\w+)", lambda m: variables.get(m.group(1), m.group(0)), expr)


def dashboard_queries(variables, path=DASHBOARD, titles=PANELS):
    """[(title, unit, [(expr, legendFormat)])] for the named panels, in that order,
    with the dashboard's variables filled in."""
    with open(path, encoding="utf-8") as f:
        panels = {p.get("title"): p for p in json.load(f)["panels"]}
    missing = [t for t in titles if t not in panels]
    if missing:
        raise SystemExit("relay_chart: %s has no panel titled %s" % (path, missing))
    chosen = []
    for title in titles:
        panel = panels[title]
        targets = [(fill(t["expr"], variables), t.get("legendFormat", ""))
                   for t in panel.get("targets", [])]
        chosen.append((title, panel.get("fieldConfig", {}).get("defaults", {}).get("unit", ""), targets))
    return chosen


def query_range(prometheus, expr, start, end, step):
    """Prometheus's /api/v1/query_range answer's result: [{metric, values: [[t, "v"]]}]."""
    query = urllib.parse.urlencode({"query": expr, "start": repr(start), "end": repr(end), "step": repr(step)})
    with urllib.request.urlopen("%s/api/v1/query_range?%s" % (prometheus.rstrip("/"), query), timeout=30) as answer:
        body = json.load(answer)
    if body.get("status") != "success":
        raise RuntimeError("query_range %r: %s" % (expr, body))
    return body["data"]["result"]


def collect(prometheus, start, end, step, scrape_interval, dashboard=DASHBOARD):
    """Every chosen panel's queries, answered by Prometheus, as one JSON-ready dict."""
    variables = grafana_variables(step, scrape_interval)
    return {
        "prometheus": prometheus,
        "dashboard": os.path.relpath(dashboard, REPOSITORY),
        "start": start,
        "end": end,
        "step": step,
        "variables": variables,
        "panels": [
            {"title": title, "unit": unit,
             "queries": [{"expr": expr, "legendFormat": legend, "result": query_range(prometheus, expr, start, end, step)}
                         for expr, legend in targets]}
            for title, unit, targets in dashboard_queries(variables, dashboard)
        ],
    }


def legend(fmt, metric):
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m.group(1), ""), fmt) or json.dumps(metric)


def draw(figures, png_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = figures["panels"]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.8 * len(panels)), sharex=True, squeeze=False)
    start = figures["start"]
    for ax, panel in zip(axes[:, 0], panels):
        # Latencies are sub-millisecond to seconds: milliseconds read best.
        scale, unit = (1000.0, "ms") if panel["unit"] == "s" else (1.0, {"ops": "per second", "short": "uploads"}.get(panel["unit"], panel["unit"]))
        drawn = 0
        for query in panel["queries"]:
            for series in query["result"]:
                xs = [float(t) - start for t, _ in series["values"]]
                ys = [float(v) * scale if not math.isnan(float(v)) else math.nan for _, v in series["values"]]
                ax.plot(xs, ys, marker=".", markersize=3, linewidth=1.2, label=legend(query["legendFormat"], series["metric"]))
                drawn += 1
        ax.set_title(panel["title"], fontsize=10, loc="left")
        ax.set_xlim(0, figures["end"] - start)
        ax.set_ylabel(unit)
        ax.grid(True, alpha=0.3)
        if drawn:
            ax.legend(fontsize=7, loc="upper left", ncol=4)
        else:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="gray")
    axes[-1, 0].set_xlabel("seconds since the start of the run (step %gs, rates over %s)"
                           % (figures["step"], figures["variables"]["__rate_interval"]))
    fig.suptitle("Relay figures from Prometheus query_range (queries of %s)" % figures["dashboard"], fontsize=11)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def write(prometheus, start, end, step, scrape_interval, out_dir, dashboard=DASHBOARD):
    """Queries, writes relay-metrics.json and relay-metrics.png; returns both paths."""
    figures = collect(prometheus, start, end, step, scrape_interval, dashboard)
    json_path = os.path.join(out_dir, "relay-metrics.json")
    png_path = os.path.join(out_dir, "relay-metrics.png")
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(figures, f, indent=1)
    draw(figures, png_path)
    return json_path, png_path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prometheus", required=True)
    ap.add_argument("--start", type=float, required=True)
    ap.add_argument("--end", type=float, required=True)
    ap.add_argument("--step", type=float, default=1.0)
    ap.add_argument("--scrape-interval", type=float, default=15.0, help="Prometheus's, in seconds")
    ap.add_argument("--out", required=True)
    ap.add_argument("--dashboard", default=DASHBOARD)
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    for path in write(args.prometheus, args.start, args.end, args.step, args.scrape_interval, args.out, args.dashboard):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
