// Validates the custom resources in rendered manifests, which kubernetes-validate
// has no schema for: the Prometheus Operator's (PodMonitor, PrometheusRule) and
// cert-manager's (Issuer, Certificate).
//
//   node validate_crds.mjs TOOLS_DIR RENDERED.json
//
// TOOLS_DIR is the `npm ci` of tests/manifests/package.json
// (target/manifests-tools); RENDERED.json a JSON array of the objects to check.
// Two checks per object, both from @kubernetes-models/prometheus-operator and
// @kubernetes-models/cert-manager (generated from the operators' published CRD
// schemas, monitoring.coreos.com/v1 and cert-manager.io/v1):
//
// 1. schema: the package's JSON-schema validator (types, required fields,
//    enums, duration patterns);
// 2. unknown fields: the object as a TypeScript literal typed with the package's
//    interface, so `tsc` reports every property the type does not declare, at
//    any depth (the schema validator ignores unknown properties, as the API
//    server's pruning would, silently).
//
// Prints one JSON line per object: {"kind","name","ok","errors":[...]}.

import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [toolsDir, renderedPath] = process.argv.slice(2);
const objects = JSON.parse(readFileSync(renderedPath, "utf8"));
// apiVersion -> (package, kinds it models).
const MODELS = {
  "monitoring.coreos.com/v1": ["prometheus-operator", new Set(["PodMonitor", "PrometheusRule", "ServiceMonitor", "Probe"])],
  "cert-manager.io/v1": ["cert-manager", new Set(["Certificate", "Issuer", "ClusterIssuer"])],
};

const results = [];
const tsLines = [];
for (const [i, obj] of objects.entries()) {
  const name = obj?.metadata?.name ?? `#${i}`;
  const result = { kind: obj.kind, name, ok: true, errors: [] };
  results.push(result);
  const model = MODELS[obj.apiVersion];
  if (!model || !model[1].has(obj.kind)) {
    result.ok = false;
    result.errors.push(`no model for ${obj.apiVersion} ${obj.kind}`);
    continue;
  }
  const pkgName = `@kubernetes-models/${model[0]}/${obj.apiVersion}`;
  const mod = await import(pathToFileURL(join(toolsDir, "node_modules", pkgName, `${obj.kind}.js`)).href);
  try {
    new mod[obj.kind](obj).validate();
  } catch (e) {
    result.ok = false;
    result.errors.push(`schema: ${e.message}`);
  }
  tsLines.push(
    `import type { I${obj.kind} as T${i} } from "${pkgName}/${obj.kind}";`,
    `// object ${i}`,
    `export const o${i}: T${i} = ${JSON.stringify(obj, null, 2)};`,
  );
}

if (tsLines.length > 0) {
  const dir = join(toolsDir, "crd-check");
  mkdirSync(dir, { recursive: true });
  const source = tsLines.join("\n") + "\n";
  writeFileSync(join(dir, "objects.ts"), source);
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        module: "nodenext",
        moduleResolution: "nodenext",
        target: "es2022",
        skipLibCheck: true,
        types: [],
      },
      files: ["objects.ts"],
    }),
  );
  let out = "";
  try {
    execFileSync(join(toolsDir, "node_modules", ".bin", "tsc"), ["-p", join(dir, "tsconfig.json"), "--pretty", "false"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
  } catch (e) {
    out = `${e.stdout ?? ""}${e.stderr ?? ""}`;
    if (!out.trim()) out = String(e);
  }
  // Map each diagnostic (objects.ts(LINE,COL): error TSxxxx: ...) to the object it is in.
  const starts = [];
  source.split("\n").forEach((line, n) => {
    const m = /^\/\/ object (\d+)$/.exec(line);
    if (m) starts.push([n + 1, Number(m[1])]);
  });
  for (const line of out.split("\n").filter((l) => l.trim())) {
    const m = /\((\d+),\d+\): (error .*)$/.exec(line);
    let index = null;
    if (m) {
      for (const [start, i] of starts) if (Number(m[1]) >= start) index = i;
    }
    const target = index === null ? null : results[index];
    if (target) {
      target.ok = false;
      target.errors.push(`unknown field or wrong type: ${m[2]}`);
    } else {
      for (const r of results) {
        r.ok = false;
        r.errors.push(`tsc: ${line}`);
      }
    }
  }
}

for (const r of results) console.log(JSON.stringify(r));
