// Stream tasks through toloka-gateway's ImportTasks and print the summary as JSON.
//
//   npm ci && node import_tasks.mjs [--target HOST:PORT] [--pool-id ID] [--count N] [--operation-id UUID]
//
// The options go first, then the tasks in chunks; each batch is printed to stderr as Toloka accepts
// it. Running it again with the same --operation-id (and the same --count) creates nothing twice.
// Writes wait for the stream's flow control, so the gateway reads only as fast as its limits admit.
import { randomUUID } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const PROTOS = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "protos", "gateway", "api");
const CHUNK = 1000;

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const definition = protoLoader.loadSync("toloka/gateway/v1/gateway.proto", {
  includeDirs: [PROTOS],
  keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true,
});
const { TolokaGateway } = grpc.loadPackageDefinition(definition).toloka.gateway.v1;
const client = new TolokaGateway(
  option("--target", process.env.GATEWAY_TARGET || "127.0.0.1:50051"), grpc.credentials.createInsecure());
const metadata = new grpc.Metadata();
metadata.set("x-caller-id", "example-node");

const poolId = option("--pool-id", "1");
const count = Number(option("--count", "2500"));
const operationId = option("--operation-id", randomUUID());
const task = (n) => ({
  pool_id: poolId,
  overlap: 1,
  input_values: { fields: { image: { stringValue: `https://example.com/${n}.png` } } },
});

// Resolves once the stream can take more (its flow control), so memory stays at one chunk.
const send = (stream, message) => new Promise((resolve) => (stream.write(message) ? resolve() : stream.once("drain", resolve)));

const call = client.ImportTasks(metadata, { deadline: new Date(Date.now() + 600 * 1000) });
const done = new Promise((resolve, reject) => {
  let summary = null;
  call.on("data", (reply) => {
    if (reply.part === "batch") {
      const b = reply.batch;
      console.error(`batch ${b.index}: tasks ${b.first_task_index}..${b.first_task_index + b.task_count - 1}` +
        ` ${b.replayed ? "replayed" : "accepted"} (operation ${b.operation_id})`);
    } else {
      summary = reply.summary;
    }
  });
  call.on("error", reject);
  call.on("end", () => resolve(summary));
});

try {
  await send(call, { options: { operation_id: operationId, batch_size: 1000 } });
  for (let start = 0; start < count; start += CHUNK) {
    const tasks = [];
    for (let n = start; n < Math.min(start + CHUNK, count); n++) tasks.push(task(n));
    await send(call, { chunk: { tasks } });
  }
  call.end();
  const summary = await done;
  console.log(JSON.stringify({ operation_id: operationId, summary }, null, 2));
} catch (error) {
  console.error(`${grpc.status[error.code]}: ${error.details}`);
  process.exitCode = 1;
} finally {
  client.close();
}
