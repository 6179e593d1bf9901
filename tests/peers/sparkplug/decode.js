// The independent decoder of the Sparkplug conformance tests: Eclipse Tahu's JavaScript
// `sparkplug-payload` (pinned in package-lock.json) decodes payloads the agent published.
//
// stdin: one payload per line, base64. stdout: one JSON document per line, in the same order:
//   {"tahu": <decodePayload(buf)>, "raw": [<per metric: what the protobuf message holds>]}
// or {"error": "..."} when Tahu cannot decode the line. One process reads every payload of a
// test (starting node costs ~50 ms; per payload it would dominate the test).
//
// "tahu" is Tahu's own reading (names, aliases, timestamps, the value as Tahu interprets it by
// the metric's datatype, properties). "raw" is the protobuf level underneath it, from the same
// package's generated protobufjs code: which value field is set and its content, and the flags
// (is_null ...) Tahu folds into its reading. The test needs both: in DATA messages the metrics
// carry no datatype (the spec says they should not), and Tahu reads a value only by datatype.
//
// JSON has no 64-bit integers, NaN or bytes: Long -> {"long": "<decimal>"}, non-finite
// numbers -> {"float": "NaN" | "Infinity" | "-Infinity"}, byte arrays -> {"bytes": "<base64>"}.
"use strict";

const readline = require("readline");
const Long = require("long");
const tahu = require("sparkplug-payload").get("spBv1.0");
const proto = require("sparkplug-payload/lib/sparkplugPayloadProto");

const Payload = proto.org.eclipse.tahu.protobuf.Payload;

function plain(value) {
  if (value === null || value === undefined) return null;
  if (Long.isLong(value)) return { long: value.toString() };
  if (typeof value === "number") return Number.isFinite(value) ? value : { float: String(value) };
  if (value instanceof Uint8Array) return { bytes: Buffer.from(value).toString("base64") };
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value === "object") {
    const out = {};
    for (const key of Object.keys(value)) out[key] = plain(value[key]);
    return out;
  }
  return value;
}

function own(message, field) {
  return Object.prototype.hasOwnProperty.call(message, field) ? plain(message[field]) : null;
}

function rawProperties(set) {
  if (!set) return null;
  return {
    keys: set.keys || [],
    values: (set.values || []).map((v) => ({
      type: own(v, "type"),
      is_null: own(v, "isNull"),
      field: v.value || null,
      content: v.value ? plain(v[v.value]) : null,
    })),
  };
}

function rawMetric(metric) {
  return {
    name: own(metric, "name"),
    alias: own(metric, "alias"),
    timestamp: own(metric, "timestamp"),
    datatype: own(metric, "datatype"),
    is_historical: own(metric, "isHistorical"),
    is_transient: own(metric, "isTransient"),
    is_null: own(metric, "isNull"),
    field: metric.value || null,
    content: metric.value ? plain(metric[metric.value]) : null,
    properties: rawProperties(metric.properties),
  };
}

function decodeLine(line) {
  const buf = Buffer.from(line, "base64");
  try {
    const payload = Payload.decode(buf);
    return {
      tahu: plain(tahu.decodePayload(buf)),
      raw: {
        timestamp: own(payload, "timestamp"),
        seq: own(payload, "seq"),
        uuid: own(payload, "uuid"),
        body: own(payload, "body"),
        metrics: (payload.metrics || []).map(rawMetric),
      },
    };
  } catch (err) {
    return { error: String(err && err.message ? err.message : err) };
  }
}

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on("line", (line) => {
  process.stdout.write(JSON.stringify(decodeLine(line.trim())) + "\n");
});
