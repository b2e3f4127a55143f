#!/usr/bin/env python3
"""Summarize a capture_server.py JSONL file as Markdown.

Usage:
  python3 tools/summarize_capture.py PATH.jsonl

  python3 tools/summarize_capture.py --lambda-labels PATH.jsonl

Prints: requests by kind and path, total bytes, distinct service_name / app
names, the Lambda labels the extension added (PYROSCOPE_LAMBDA_LABELS), auth
schemes seen (credentials masked), and for every push body whether it was
valid gzip. Exits 1 with "no uploads received" if the file is missing or holds
no records. With --lambda-labels: prints the Lambda labels seen, one line, and
exits 1 when some profile upload lacks faas_name. Stdlib only (with
Tests/Peers/capture.py, which reads the records).
"""

import collections
import os
import sys

# capture.py (Tests/Peers), the one reader of what capture_server.py records.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Tests", "Peers"))
from capture import header_values, read_records, upload_labels  # noqa: E402


def scheme_of(value):
    v = (value or "").strip()
    return (v.split(" ", 1)[0] if v else "(empty)") + " ***"


def fail(msg):
    print("summarize_capture: %s" % msg, file=sys.stderr)
    return 1


# The labels PYROSCOPE_LAMBDA_LABELS can add (README, "Lambda labels").
LAMBDA_LABELS = ("faas_name", "faas_version", "cloud_provider", "cloud_platform", "cloud_region", "host_arch",
                 "faas_max_memory", "aws_lambda_initialization_type", "faas_instance")


def lambda_labels(records):
    """Counter of the Lambda labels seen, and how many profile uploads lack faas_name."""
    seen, missing = collections.Counter(), 0
    for r in records:
        if r.get("kind") not in ("push", "ingest", "otlp"):
            continue
        labels = upload_labels(r)
        for n, v in labels:
            if n in LAMBDA_LABELS:
                seen["%s=%s" % (n, v)] += 1
        if not any(n == "faas_name" for n, _ in labels):
            missing += 1
    return seen, missing


def md_escape(s):
    return str(s).replace("|", "\\|").replace("\n", " ")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    labels_only = argv[:1] == ["--lambda-labels"]
    if labels_only:
        argv = argv[1:]
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    path = argv[0]
    if not os.path.exists(path):
        return fail("no uploads received: %s does not exist" % path)
    records, bad = read_records(path)
    if not records:
        return fail("no uploads received: %s is empty%s"
                    % (path, " (%d unparseable lines)" % bad if bad else ""))

    seen_labels, unlabelled = lambda_labels(records)
    if labels_only:
        print(", ".join(sorted(seen_labels)) or "none")
        return 1 if unlabelled or not seen_labels else 0

    by_kind = collections.Counter()
    by_path = collections.OrderedDict()
    total_bytes = 0
    services = collections.Counter()
    app_names = collections.Counter()
    auth = collections.Counter()
    no_auth = 0
    tenants = 0
    errors = []
    push_rows = []

    for i, r in enumerate(records, 1):
        kind = r.get("kind", "other")
        key = (kind, r.get("method", "?"), r.get("path", "?"))
        n = int(r.get("body_len") or 0)
        by_kind[kind] += 1
        cnt, b = by_path.get(key, (0, 0))
        by_path[key] = (cnt + 1, b + n)
        total_bytes += n
        s = r.get("summary") or {}
        for name in s.get("service_names") or []:
            services[name] += 1
        if s.get("app_name"):
            app_names[s["app_name"]] += 1
        headers = r.get("headers") or []
        vals = header_values(headers, "authorization")
        if vals:
            auth[" + ".join(scheme_of(v) for v in vals)] += 1
        else:
            no_auth += 1
        if header_values(headers, "x-scope-orgid"):
            tenants += 1
        if s.get("error"):
            errors.append((i, kind, r.get("path"), s["error"]))
        if kind == "push":
            if s.get("gzip") and s.get("gzip_valid"):
                gz = "yes (%s B decompressed)" % s.get("decompressed_len", "?")
            elif s.get("gzip"):
                gz = "**NO** (gzip magic but invalid)"
            else:
                gz = "**NO** (not gzip)"
            push_rows.append((i, r.get("ts", ""), n,
                              ",".join(header_values(headers, "content-encoding")) or "-",
                              gz, ",".join(s.get("service_names") or []) or "-",
                              r.get("client", ""), r.get("conn_seq", "")))

    out = []
    out.append("# Capture summary: `%s`" % path)
    out.append("")
    out.append("- Requests: **%d** (%s)" % (len(records), ", ".join(
        "%s: %d" % (k, by_kind[k]) for k in ("push", "ingest", "otlp", "other") if by_kind[k])))
    out.append("- Total body bytes: **%d**" % total_bytes)
    if bad:
        out.append("- Unparseable lines skipped: %d" % bad)
    out.append("")
    out.append("## Requests by kind and path")
    out.append("")
    out.append("| kind | method | path | requests | bytes |")
    out.append("|---|---|---|---:|---:|")
    for (kind, method, p), (cnt, b) in by_path.items():
        out.append("| %s | %s | `%s` | %d | %d |" % (kind, method, md_escape(p), cnt, b))
    out.append("")
    out.append("## Applications")
    out.append("")
    if services:
        out.append("- service_name (push, OTLP): " + ", ".join(
            "`%s` (%d)" % (md_escape(k), v) for k, v in services.items()))
    if app_names:
        out.append("- app name (ingest `name=`): " + ", ".join(
            "`%s` (%d)" % (md_escape(k), v) for k, v in app_names.items()))
    if not services and not app_names:
        out.append("- none found")
    out.append("")
    out.append("## Lambda labels (PYROSCOPE_LAMBDA_LABELS)")
    out.append("")
    if seen_labels:
        for k, v in sorted(seen_labels.items()):
            out.append("- `%s` on %d upload(s)" % (md_escape(k), v))
        if unlabelled:
            out.append("- **%d profile upload(s) without faas_name**" % unlabelled)
    else:
        out.append("- none")
    out.append("")
    out.append("## Auth (masked)")
    out.append("")
    for k, v in auth.items():
        out.append("- `Authorization: %s` on %d request(s)" % (k, v))
    if no_auth:
        out.append("- no Authorization header on %d request(s)" % no_auth)
    if tenants:
        out.append("- `X-Scope-OrgID` present on %d request(s)" % tenants)
    if push_rows:
        out.append("")
        out.append("## Push bodies")
        out.append("")
        out.append("| # | time | bytes | content-encoding | valid gzip | service_name | client | conn req # |")
        out.append("|---:|---|---:|---|---|---|---|---:|")
        for row in push_rows:
            out.append("| %s | %s | %s | %s | %s | %s | %s | %s |"
                       % tuple(md_escape(x) for x in row))
    if errors:
        out.append("")
        out.append("## Decode errors")
        out.append("")
        for i, kind, p, e in errors:
            out.append("- #%d %s `%s`: %s" % (i, kind, md_escape(p), md_escape(e)))
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
