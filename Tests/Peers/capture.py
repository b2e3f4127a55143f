"""The one reader of captures and push bodies.

A capture is what the stand-in Pyroscope server (capture_server.py) records: one JSON line
per request (method, path, query, headers as [name, value] pairs, kind push|ingest|other,
body_len, a `summary`, and with --bodies the body's file name in `body_file`). Everything
that looks into a capture or a push body goes through this module: capture_server.py (the
summary it writes), decode_push.py (the Swift tests' PushBodies), tools/profiles.py (and
through it demo_verdict.py, flamegraph.py, observe.py) and tools/summarize_capture.py.

Push bodies (push.v1.PushRequest, grafana/pyroscope api/push/v1/push.proto) are read with
Google's protobuf runtime from a descriptor built here (no protoc): the independent check of
the relay's wire-level label rewrite. Where the runtime is not installed (capture_server.py
and summarize_capture.py run under a bare python3 in make run, demo and lambda-local) the
same four messages are read by the wire-format reader below; test_capture.py holds the two
to the same answers on the recorded client uploads. Importing this module needs only the
standard library.
"""

import base64
import dataclasses
import email.parser
import email.policy
import json
import os
import urllib.parse
import zlib

PUSH_SUFFIX = "/push.v1.PusherService/Push"
INGEST_SUFFIX = "/ingest"
OTLP_SUFFIX = "/v1development/profiles"
MAX_DECOMPRESSED = 256 * 1024 * 1024  # zip-bomb guard

# push.v1 (the fields a client sends): message -> [(field, number, type, label, message type)],
# the shape decode_pprof.message_class builds a class from. Types and labels are
# FieldDescriptorProto's numbers (9 string, 11 message, 12 bytes; 1 optional, 3 repeated),
# so the schema needs no import.
_STRING, _MESSAGE, _BYTES, _OPTIONAL, _REPEATED = 9, 11, 12, 1, 3
PUSH_SCHEMA = {
    "PushRequest": [("series", 1, _MESSAGE, _REPEATED, "RawProfileSeries")],
    "RawProfileSeries": [
        ("labels", 1, _MESSAGE, _REPEATED, "LabelPair"),
        ("samples", 2, _MESSAGE, _REPEATED, "RawSample"),
    ],
    "LabelPair": [("name", 1, _STRING, _OPTIONAL, None), ("value", 2, _STRING, _OPTIONAL, None)],
    "RawSample": [("raw_profile", 1, _BYTES, _OPTIONAL, None), ("ID", 2, _STRING, _OPTIONAL, None)],
}


@dataclasses.dataclass
class Sample:
    raw_profile: bytes
    id: str = ""


@dataclasses.dataclass
class Series:
    """One RawProfileSeries: its labels as (name, value) in wire order, and its samples."""

    labels: list
    samples: list


def kind_of(path):
    """push, ingest, otlp or other, by the request path's ending (a base path may precede it)."""
    if path.endswith(PUSH_SUFFIX):
        return "push"
    if path.endswith(OTLP_SUFFIX):
        return "otlp"
    if path.endswith(INGEST_SUFFIX):
        return "ingest"
    return "other"


def header_values(headers, name):
    lname = name.lower()
    return [v for k, v in headers if isinstance(k, str) and k.lower() == lname]


def header(headers, name):
    return ",".join(header_values(headers or [], name))


def is_gzip(data):
    return data[:2] == b"\x1f\x8b"


def gunzip(data, cap=MAX_DECOMPRESSED):
    """The body inflated when it is gzip (at most `cap` bytes), else as it is."""
    if not is_gzip(data):
        return data
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = inflater.decompress(data, cap)
    if inflater.unconsumed_tail:
        raise ValueError("decompressed size exceeds %d bytes" % cap)
    if not inflater.eof:
        raise ValueError("truncated gzip stream")
    return out


# ---------------------------------------------------------------------- push bodies

_push_request = []  # [class or None], made at the first protobuf body


def protobuf_push_request():
    """Google's protobuf PushRequest class, or None when the runtime is not installed."""
    if not _push_request:
        try:
            import decode_pprof  # Tests/Peers: its message_class builds classes from a schema
        except ImportError:
            _push_request.append(None)
        else:
            _push_request.append(decode_pprof.message_class(PUSH_SCHEMA, "push.v1", "PushRequest", "push.proto"))
    return _push_request[0]


def push_series(body, content_type=""):
    """[Series] of a push body: gzip or plain, protobuf or (content type *json*) Connect JSON.
    Raises ValueError (or protobuf's DecodeError) when it is not a PushRequest."""
    return _series(gunzip(body), content_type)


def _series(data, content_type):
    if "json" in content_type.lower():
        return [Series([(str(l.get("name", "")), str(l.get("value", ""))) for l in s.get("labels") or []],
                       [Sample(base64.b64decode(x.get("rawProfile", "")), str(x.get("ID", ""))) for x in s.get("samples") or []])
                for s in json.loads(data.decode("utf-8")).get("series") or []]
    cls = protobuf_push_request()
    if cls is None:
        return _read_push_request(memoryview(data))
    request = cls()
    request.ParseFromString(bytes(data))
    return [Series([(l.name, l.value) for l in s.labels], [Sample(x.raw_profile, x.ID) for x in s.samples])
            for s in request.series]


def _varint(buf, pos):
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 64:
            raise ValueError("varint too long")


def _fields(buf):
    """(field number, wire type, value) of one message: an int, or the bytes of a
    length-delimited field. ValueError on malformed input."""
    pos, n = 0, len(buf)
    while pos < n:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ValueError("field number 0 at offset %d" % pos)
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > n:
                raise ValueError("truncated fixed%d" % (size * 8))
            value, pos = int.from_bytes(buf[pos:pos + size], "little"), pos + size
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > n:
                raise ValueError("length-delimited field %d overruns buffer (%d > %d)" % (field, pos + length, n))
            value, pos = buf[pos:pos + length], pos + length
        else:
            raise ValueError("unsupported wire type %d" % wire)
        yield field, wire, value


def _text(data):
    return bytes(data).decode("utf-8", errors="replace")


def _read_push_request(buf):
    """PushRequest by the wire format alone, for a python3 without the protobuf runtime."""
    series = []
    for field, wire, value in _fields(buf):
        if field != 1 or wire != 2:
            continue
        labels, samples = [], []
        for field2, wire2, value2 in _fields(value):
            if wire2 != 2 or field2 not in (1, 2):
                continue
            first, second = b"", b""
            for field3, wire3, value3 in _fields(value2):
                if wire3 == 2 and field3 == 1:
                    first = value3
                elif wire3 == 2 and field3 == 2:
                    second = value3
            if field2 == 1:
                labels.append((_text(first), _text(second)))
            else:
                samples.append(Sample(bytes(first), _text(second)))
        series.append(Series(labels, samples))
    return series


# ---------------------------------------------------------------------- decoders' frames


def decode_frames(data, decode):
    """[decode(body) per frame] of the Swift tests' input (each frame a 4-byte big-endian
    length and a body): a body that does not decode is {"error": "..."}, not a crash."""
    out, offset = [], 0
    while offset < len(data):
        length = int.from_bytes(data[offset:offset + 4], "big")
        body = data[offset + 4:offset + 4 + length]
        offset += 4 + length
        try:
            out.append(decode(body))
        except Exception as error:  # noqa: BLE001 - a parse failure is an answer
            out.append({"error": "%s: %s" % (type(error).__name__, error)})
    return out


# ---------------------------------------------------------------------- OTLP profiles


def otlp_resources(body, content_type=""):
    """[[(key, value as text)]] per ResourceProfiles of an OTLP profiles export
    (ExportProfilesServiceRequest, v1development): gzip or plain, protobuf or (content type
    *json*) OTLP/JSON, by the wire format alone (the tests decode with OpenTelemetry's own
    classes, decode_otlp.py). Raises ValueError when it is not an export."""
    data = gunzip(body)
    if "json" in content_type.lower():
        document = json.loads(data.decode("utf-8"))
        entries = document.get("resourceProfiles", document.get("resource_profiles")) or []
        out = []
        for entry in entries:
            attributes = ((entry.get("resource") or {}).get("attributes")) or []
            out.append([(str(a.get("key", "")), _json_any(a.get("value") or {})) for a in attributes])
        return out
    out = []
    for field, wire, value in _fields(memoryview(data)):
        if field != 1 or wire != 2:
            continue
        attributes = []
        for field2, wire2, resource in _fields(value):
            if field2 != 1 or wire2 != 2:
                continue
            for field3, wire3, pair in _fields(resource):
                if field3 != 1 or wire3 != 2:
                    continue
                key, text = "", ""
                for field4, wire4, part in _fields(pair):
                    if field4 == 1 and wire4 == 2:
                        key = _text(part)
                    elif field4 == 2 and wire4 == 2:
                        text = _any_value(part)
                attributes.append((key, text))
        out.append(attributes)
    return out


def _any_value(buf):
    """An AnyValue's string, int or bool as text (other kinds: their kind's name)."""
    for field, wire, value in _fields(buf):
        if field == 1 and wire == 2:
            return _text(value)
        if field == 2 and wire == 0:
            return "true" if value else "false"
        if field == 3 and wire == 0:
            return str(value - (1 << 64) if value >= 1 << 63 else value)
        return "(kind %d)" % field
    return ""


def _json_any(value):
    for key in ("stringValue", "string_value", "intValue", "int_value"):
        if key in value:
            return str(value[key])
    for key in ("boolValue", "bool_value"):
        if key in value:
            return "true" if value[key] else "false"
    return "(%s)" % ",".join(value)


def pyroscope_label_name(key):
    """The label Pyroscope shows for a resource attribute: `.` (and any other byte a label
    name cannot hold) as `_`, as the relay's own Lambda labels are named."""
    return "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in key)


# ---------------------------------------------------------------------- ingest bodies


def ingest_query(query):
    """(the name parameter or None, app name, format) of an /ingest query."""
    params = urllib.parse.parse_qs(query or "", keep_blank_values=True)
    name = params["name"][0] if "name" in params else None
    return name, (name or "(no name)").split("{", 1)[0], (params.get("format") or ["folded"])[0]


def name_labels(name):
    """[(label, value)] inside the braces of an ingest name, app.cpu{a=b,c=d}."""
    if "{" not in (name or ""):
        return []
    inner = name.split("{", 1)[1].rsplit("}", 1)[0]
    return [tuple(p.split("=", 1)) for p in inner.split(",") if "=" in p]


def multipart_parts(content_type, body):
    """name -> bytes of a multipart/form-data body (stdlib email parser)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise ValueError("not a multipart body")
    return {part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
            for part in message.iter_parts()}


def ingest_profile(record, body):
    """(app, format, the profile's bytes) of an /ingest upload: the body, or for a multipart
    body its `profile` part (pprof) or `jfr` part."""
    _, app, fmt = ingest_query(record.get("query"))
    content_type = header(record.get("headers"), "content-type")
    if content_type.lower().startswith("multipart/") and fmt in ("pprof", "jfr"):
        body = multipart_parts(content_type, body)["jfr" if fmt == "jfr" else "profile"]
    return app, fmt, body


# ---------------------------------------------------------------------- captures


def summarize(kind, query, headers, body):
    """What capture_server.py records as a request's `summary`. Never raises."""
    summary, errors, payload = {"gzip": is_gzip(body)}, [], body
    try:
        if is_gzip(body):
            try:
                payload = gunzip(body)
                summary["gzip_valid"], summary["decompressed_len"] = True, len(payload)
            except (zlib.error, ValueError, EOFError, OSError) as error:
                summary["gzip_valid"], payload = False, None
                errors.append("gzip: %s" % error)
        if kind == "push" and payload is not None:
            if not payload:
                errors.append("push: empty body")
            else:
                try:
                    series = _series(payload, header(headers, "content-type"))
                    summary["series"] = [{"labels": [list(label) for label in s.labels], "n_samples": len(s.samples),
                                          "raw_profile_bytes": sum(len(x.raw_profile) for x in s.samples)} for s in series]
                    names = []
                    for s in series:
                        names += [v for n, v in s.labels if n == "service_name" and v not in names]
                    summary["service_names"] = names
                    if not series:
                        errors.append("push: no series found")
                except Exception as error:  # noqa: BLE001 - protobuf's DecodeError, bad JSON, bad UTF-8
                    errors.append("push: %s" % error)
        elif kind == "otlp" and payload is not None:
            try:
                resources = otlp_resources(payload, header(headers, "content-type"))
                summary["resources"] = [[list(attribute) for attribute in attributes] for attributes in resources]
                names = []
                for attributes in resources:
                    names += [v for k, v in attributes if k == "service.name" and v not in names]
                summary["service_names"] = names
                if not resources:
                    errors.append("otlp: no resource profiles found")
            except Exception as error:  # noqa: BLE001 - bad protobuf, bad JSON, bad UTF-8
                errors.append("otlp: %s" % error)
        elif kind == "ingest":
            params = urllib.parse.parse_qs(query, keep_blank_values=True)
            name, app, _ = ingest_query(query)
            if name is None:
                errors.append("ingest: no name query parameter")
            else:
                summary["name"], summary["app_name"] = name, app
            for key in ("format", "from", "until", "spyName", "sampleRate"):
                if key in params:
                    summary[key] = params[key][0]
    except Exception as error:  # noqa: BLE001 - never crash on bad input
        errors.append("unexpected: %r" % (error,))
    if errors:
        summary["error"] = "; ".join(errors)
    return summary


def upload_labels(record):
    """[(name, value)] of one recorded upload, from its summary: every push series' labels,
    every OTLP resource's attributes named as Pyroscope shows them, or those in an ingest
    name's braces."""
    summary = record.get("summary") or {}
    if record.get("kind") == "push":
        return [(n, v) for series in summary.get("series") or [] for n, v in series.get("labels") or []]
    if record.get("kind") == "otlp":
        return [(pyroscope_label_name(k), v) for attributes in summary.get("resources") or [] for k, v in attributes]
    return name_labels(summary.get("name"))


def read_records(path):
    """(records, number of lines that are not a JSON object) of a capture file."""
    records, bad = [], 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if isinstance(record, dict):
                records.append(record)
            else:
                bad += 1
    return records, bad


def records_with_bodies(path, bodies_dir=None):
    """(record, body bytes) of each request whose body was kept (--bodies), in arrival
    order; the bodies folder defaults to the capture file's. Nothing when there is no file."""
    bodies_dir = bodies_dir or os.path.dirname(os.path.abspath(path))
    if not os.path.exists(path):
        return
    for record in read_records(path)[0]:
        if record.get("body_file"):
            with open(os.path.join(bodies_dir, record["body_file"]), "rb") as body:
                yield record, body.read()
