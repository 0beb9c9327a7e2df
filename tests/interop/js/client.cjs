// AWS SDK for JavaScript v3 client for credagent's interoperability suite.
//
// node client.cjs --provider http|default|container-metadata --mode basic|creds|loop
//                 --endpoint URL --bucket NAME [--duration S] [--interval S] [--size N] [--stop-file P]
//
//   http                fromHttp() passed explicitly (reads AWS_CONTAINER_CREDENTIALS_FULL_URI and
//                       AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE)
//   default             no credentials given: the S3 client's default Node provider chain
//   container-metadata  fromContainerMetadata() (reads only the AWS_CONTAINER_AUTHORIZATION_TOKEN env var)
//
// The modules are found through NODE_PATH (run.sh installs them under target/interop/js).
// Prints one JSON line on stdout.
"use strict";

const fs = require("node:fs");
const {
  S3Client,
  CreateBucketCommand,
  PutObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
} = require("@aws-sdk/client-s3");
const { fromHttp, fromContainerMetadata } = require("@aws-sdk/credential-providers");
const { getSignedUrl } = require("@aws-sdk/s3-request-presigner");

function parseArgs(argv) {
  const args = { mode: "basic", provider: "default", duration: 60, interval: 0.25, size: 70001 };
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i].replace(/^--/, "").replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (argv[i + 1] === undefined) throw new Error(`${argv[i]} needs a value`);
    args[flag] = ["duration", "interval", "size"].includes(flag) ? Number(argv[i + 1]) : argv[i + 1];
  }
  return args;
}

// Same generator as the Rust and Python clients (xorshift64, byte = bits 24..31).
function payload(size, seed) {
  const M = (1n << 64n) - 1n;
  let x = ((BigInt(seed) * 0x9e3779b97f4a7c15n) & M) | 1n;
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) {
    x ^= (x << 13n) & M;
    x ^= x >> 7n;
    x ^= (x << 17n) & M;
    out[i] = Number((x >> 24n) & 0xffn);
  }
  return out;
}

function describe(err) {
  return {
    class: err && err.name ? err.name : typeof err,
    code: (err && (err.Code || (err.$metadata && err.$fault ? err.name : undefined))) || null,
    http_status: (err && err.$metadata && err.$metadata.httpStatusCode) || null,
    message: String(err && err.message ? err.message : err),
  };
}

function credentialsOption(provider) {
  switch (provider) {
    case "http":
      return { credentials: fromHttp() };
    case "default":
      return {};
    case "container-metadata":
      // maxRetries/timeout left at their defaults (0 retries, 1000 ms), as an app would.
      return { credentials: fromContainerMetadata() };
    default:
      throw new Error(`unknown provider ${provider}`);
  }
}

function makeClient(args) {
  return new S3Client({
    region: "us-east-1",
    endpoint: args.endpoint,
    forcePathStyle: true,
    maxAttempts: 1,
    ...credentialsOption(args.provider),
  });
}

async function credentialsView(client) {
  // The same credential provider function the client signs with.
  const c = await client.config.credentials();
  const token = c.sessionToken;
  const exp = c.expiration instanceof Date ? c.expiration : null;
  return {
    access_key_id: c.accessKeyId,
    token: token === undefined || token === null ? "none" : token === "" ? "empty-string" : "non-empty",
    token_len: typeof token === "string" ? token.length : null,
    expiration: exp ? exp.toISOString().replace(/\.\d{3}Z$/, "Z") : null,
    expiration_epoch: exp ? exp.getTime() / 1000 : null,
  };
}

async function bodyBytes(resp) {
  return Buffer.from(await resp.Body.transformToByteArray());
}

async function basic(args, out) {
  const client = makeClient(args);
  out.credentials = await credentialsView(client);
  const steps = {};
  await client.send(new CreateBucketCommand({ Bucket: args.bucket }));
  steps.create_bucket = true;
  const key = "interop/object.bin";
  const body = payload(args.size, 1);
  await client.send(new PutObjectCommand({ Bucket: args.bucket, Key: key, Body: body }));
  steps.put = true;
  const got = await bodyBytes(await client.send(new GetObjectCommand({ Bucket: args.bucket, Key: key })));
  steps.get_identical = Buffer.compare(got, body) === 0;
  const listed = await client.send(new ListObjectsV2Command({ Bucket: args.bucket }));
  steps.list_contains = (listed.Contents || []).some((o) => o.Key === key);
  out.presigned_url = await getSignedUrl(client, new GetObjectCommand({ Bucket: args.bucket, Key: key }), {
    expiresIn: 300,
  });
  out.key = key;
  out.size = args.size;
  out.steps = steps;
}

async function loop(args, out) {
  const client = makeClient(args);
  try {
    await client.send(new CreateBucketCommand({ Bucket: args.bucket }));
  } catch (err) {
    out.setup_error = describe(err);
    return;
  }
  const deadline = Date.now() + args.duration * 1000;
  const events = [];
  let requests = 0;
  let failures = 0;
  for (let i = 1; Date.now() < deadline; i++) {
    if (args.stopFile && fs.existsSync(args.stopFile)) break;
    const key = `loop/${i}`;
    const body = payload(1024 + (i % 7), i);
    for (const op of ["put", "get"]) {
      const t = Date.now() / 1000;
      requests++;
      try {
        if (op === "put") {
          await client.send(new PutObjectCommand({ Bucket: args.bucket, Key: key, Body: body }));
        } else {
          const got = await bodyBytes(await client.send(new GetObjectCommand({ Bucket: args.bucket, Key: key })));
          if (Buffer.compare(got, body) !== 0) throw new Error("body mismatch");
        }
        events.push([t, op, true, null, Date.now() / 1000]);
      } catch (err) {
        failures++;
        events.push([t, op, false, describe(err), Date.now() / 1000]);
        break; // no GET of an object whose PUT failed
      }
    }
    await new Promise((r) => setTimeout(r, args.interval * 1000));
  }
  out.requests = requests;
  out.failures = failures;
  out.events = events;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const started = process.hrtime.bigint();
  const out = { client: `js-${args.provider}`, mode: args.mode };
  try {
    if (args.mode === "basic") await basic(args, out);
    else if (args.mode === "creds") out.credentials = await credentialsView(makeClient(args));
    else if (args.mode === "loop") await loop(args, out);
    else throw new Error(`unknown mode ${args.mode}`);
    out.ok = true;
  } catch (err) {
    out.ok = false;
    out.error = describe(err);
  }
  out.elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  process.stdout.write(JSON.stringify(out) + "\n");
}

main();
