// Create two tasks through a running toloka-gateway, wait for them, and print the outcome as JSON.
//
//   npm ci && node first_call.mjs [--target HOST:PORT] [--pool-id ID]
//
// --target defaults to $GATEWAY_TARGET, else 127.0.0.1:50051; --pool-id to 1. The contract is loaded
// from the repository's protos/ at start-up. The JSON is what `toloka-gateway client wait ID --log --json`
// prints: Toloka's names and types ("status": "SUCCESS", integer counts).
import { randomUUID } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const PROTOS = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "protos", "gateway", "api");
const TASKS = [{ image: "https://example.com/1.png" }, { image: "https://example.com/2.png" }];

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

// google.protobuf.Struct / Value travel in their wire shape with proto-loader: to and from plain JSON.
const toValue = (v) =>
  v === null ? { nullValue: "NULL_VALUE" }
  : typeof v === "number" ? { numberValue: v }
  : typeof v === "boolean" ? { boolValue: v }
  : typeof v === "string" ? { stringValue: v }
  : Array.isArray(v) ? { listValue: { values: v.map(toValue) } }
  : { structValue: toStruct(v) };
const toStruct = (obj) => ({ fields: Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, toValue(v)])) });
const fromValue = (v) =>
  "numberValue" in v ? v.numberValue
  : "stringValue" in v ? v.stringValue
  : "boolValue" in v ? v.boolValue
  : "structValue" in v ? fromStruct(v.structValue)
  : "listValue" in v ? (v.listValue.values || []).map(fromValue)
  : null;
const fromStruct = (s) => Object.fromEntries(Object.entries(s.fields || {}).map(([k, v]) => [k, fromValue(v)]));

// google.protobuf.Timestamp as the proto JSON mapping writes it: RFC 3339 with 0, 3, 6 or 9 fraction digits.
function timestamp({ seconds, nanos = 0 }) {
  const base = new Date(Number(seconds) * 1000).toISOString().slice(0, 19);
  const digits = nanos === 0 ? 0 : nanos % 1e6 === 0 ? 3 : nanos % 1e3 === 0 ? 6 : 9;
  const fraction = digits ? "." + String(nanos).padStart(9, "0").slice(0, digits) : "";
  return `${base}${fraction}Z`;
}

const STRUCTS = new Set(["parameters", "details", "input_values"]);
const TIMESTAMPS = new Set(["submitted", "started", "finished", "created"]);

// A reply object as Toloka's JSON: Structs and Timestamps as plain values, statuses without the enum prefix.
function tolokaJson(value, key = "") {
  if (Array.isArray(value)) return value.map((v) => (key === "other_log_items" ? fromStruct(v) : tolokaJson(v)));
  if (value && typeof value === "object") {
    if (STRUCTS.has(key)) return fromStruct(value);
    if (TIMESTAMPS.has(key)) return timestamp(value);
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, tolokaJson(v, k)]));
  }
  if (key === "status" && typeof value === "string") return value.replace(/^OPERATION_STATUS_/, "");
  return value;
}

const definition = protoLoader.loadSync("toloka/gateway/v1/gateway.proto", {
  includeDirs: [PROTOS], // google/protobuf/*.proto come with protobufjs
  keepCase: true, longs: Number, enums: String, defaults: false, oneofs: false,
});
const { TolokaGateway } = grpc.loadPackageDefinition(definition).toloka.gateway.v1;
const client = new TolokaGateway(
  option("--target", process.env.GATEWAY_TARGET || "127.0.0.1:50051"), grpc.credentials.createInsecure());
const metadata = new grpc.Metadata();
metadata.set("x-caller-id", "example-node");
const call = (method, request, seconds) =>
  new Promise((resolve, reject) =>
    client[method](request, metadata, { deadline: new Date(Date.now() + seconds * 1000) },
      (error, reply) => (error ? reject(error) : resolve(reply))));

const poolId = option("--pool-id", "1");
// A client-chosen operation_id makes a retried call safe: the gateway creates the tasks once.
const operationId = randomUUID();
try {
  await call("CreateTasks", {
    operation_id: operationId,
    allow_defaults: true,
    tasks: TASKS.map((values) => ({ pool_id: poolId, input_values: toStruct(values) })),
  }, 30);
  const waited = await call("WaitOperation", {
    operation_id: operationId, timeout: { seconds: 50 }, include_log: true,
  }, 60);
  console.log(JSON.stringify(tolokaJson(waited), null, 2));
} catch (error) {
  console.error(`${grpc.status[error.code]}: ${error.details}`);
  process.exitCode = 1;
} finally {
  client.close();
}
