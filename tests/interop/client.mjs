// A Node.js client of toloka.gateway.v1.TolokaGateway, driven by tests/interop/test_node_client.py.
//
//   node --no-warnings tests/interop/client.mjs '<json>'
//
// The JSON argument: {"scenario": "calls" | "rate_limit", "target": "127.0.0.1:PORT",
// "pool_id": "1", "include_dirs": [...]} where include_dirs hold toloka/gateway/v1/gateway.proto
// and google/rpc/{status,error_details}.proto. google/protobuf/*.proto come bundled with
// protobufjs. Prints one JSON object with what each call returned; exits 0 unless the script
// itself broke (gRPC errors are results, not failures).
//
// The libraries are resolved from tools/node (its package.json and package-lock.json pin them).

import { accessSync } from "node:fs";
import { createRequire } from "node:module";
import { randomUUID } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "..", "..", "tools", "node", "package.json"));
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");
const protobuf = require("protobufjs");

// protobufjs serves google/protobuf/*.proto from its bundled copies; proto-loader still warns
// that they are not in the include dirs. Run with `node --no-warnings` and this prints the rest.
process.on("warning", (w) => {
  if (!String(w.message).includes("google/protobuf/")) console.error(String(w));
});

const config = JSON.parse(process.argv[2]);
const CALLER = [["x-caller-id", "node-interop"]];

function loadGateway(includeDirs) {
  const definition = protoLoader.loadSync("toloka/gateway/v1/gateway.proto", {
    includeDirs,
    keepCase: true, // field names as in the proto, equal to Toloka's JSON names
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(definition);
  return pkg.toloka.gateway.v1.TolokaGateway;
}

function loadRichStatus(includeDirs) {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    for (const dir of includeDirs) {
      const full = path.join(dir, target);
      try {
        accessSync(full);
        return full;
      } catch {
        // try the next include dir
      }
    }
    return target; // google/protobuf/*: protobufjs's bundled copies
  };
  root.loadSync(["google/rpc/status.proto", "google/rpc/error_details.proto"], { keepCase: true });
  root.resolveAll();
  return root;
}

// google.protobuf.Struct in its wire shape, which is what proto-loader expects.
function toValue(v) {
  if (v === null) return { nullValue: "NULL_VALUE" };
  if (typeof v === "string") return { stringValue: v };
  if (typeof v === "number") return { numberValue: v };
  if (typeof v === "boolean") return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(toValue) } };
  return { structValue: toStruct(v) };
}
function toStruct(obj) {
  return { fields: Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, toValue(v)])) };
}

function unary(client, method, request, timeoutS = 30) {
  return new Promise((resolve) => {
    const metadata = new grpc.Metadata();
    for (const [k, v] of CALLER) metadata.set(k, v);
    const deadline = new Date(Date.now() + timeoutS * 1000);
    client[method](request, metadata, { deadline }, (error, reply) => resolve({ error, reply }));
  });
}

// The `grpc-status-details-bin` trailer decoded as google.rpc.Status, details unpacked by type.
function richError(root, error) {
  const out = { code: grpc.status[error.code], message: error.details, details: {} };
  const raw = error.metadata?.get("grpc-status-details-bin") ?? [];
  if (raw.length === 0) return out;
  const Status = root.lookupType("google.rpc.Status");
  const status = Status.toObject(Status.decode(raw[0]), { longs: Number, defaults: true });
  out.status_code = status.code;
  out.status_message = status.message;
  for (const any of status.details) {
    const typeName = any.type_url.split("/").pop();
    const type = root.lookupType(typeName);
    out.details[typeName.split(".").pop()] = type.toObject(type.decode(any.value), {
      longs: Number,
      defaults: true,
    });
  }
  return out;
}

function result({ error, reply }, root) {
  return error ? { ok: false, error: richError(root, error) } : { ok: true, reply };
}

function newTasks(poolId, n) {
  return Array.from({ length: n }, (_, i) => ({
    pool_id: poolId,
    input_values: toStruct({ image: `https://example.com/node-${i}.png`, n: i }),
  }));
}

async function callsScenario(client, root, poolId) {
  const out = {};
  const operationId = randomUUID();
  out.create = result(
    await unary(client, "CreateTasks", {
      tasks: newTasks(poolId, 2),
      operation_id: operationId,
      allow_defaults: true,
    }),
    root,
  );
  out.sent_operation_id = operationId;
  out.wait = result(
    await unary(client, "WaitOperation", {
      operation_id: operationId,
      timeout: { seconds: 20, nanos: 0 },
      include_log: true,
    }),
    root,
  );
  out.set_rework_rules = result(
    await unary(client, "SetReworkRules", {
      pool_id: poolId,
      rules: [{ restriction: {}, delta: 1 }],
    }),
    root,
  );
  out.empty_create = result(await unary(client, "CreateTasks", { tasks: [] }), root);
  return out;
}

async function rateLimitScenario(client, root, poolId) {
  const first = await unary(client, "CreateTasks", {
    tasks: newTasks(poolId, 1),
    operation_id: randomUUID(),
    allow_defaults: true,
  });
  const second = await unary(client, "CreateTasks", {
    tasks: newTasks(poolId, 1),
    operation_id: randomUUID(),
    allow_defaults: true,
  });
  return { first: result(first, root), second: result(second, root) };
}

const Gateway = loadGateway(config.include_dirs);
const root = loadRichStatus(config.include_dirs);
const client = new Gateway(config.target, grpc.credentials.createInsecure());
const scenarios = { calls: callsScenario, rate_limit: rateLimitScenario };
try {
  const out = await scenarios[config.scenario](client, root, config.pool_id ?? "1");
  process.stdout.write(JSON.stringify(out) + "\n");
} finally {
  client.close();
}
