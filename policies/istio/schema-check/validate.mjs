// Validates Kubernetes manifests against Istio's CRD OpenAPI schemas, as compiled into
// validators by @kubernetes-models/istio (generated from Istio's CRDs), and Gateway API
// resources (gateway.networking.k8s.io) against @kubernetes-models/gateway-api. Usage:
//   node validate.mjs FILE.yaml...
// Prints one line per document (`ok` or `error` with the JSON path and why) and exits 1 when
// any document is invalid, is not an Istio resource this package knows, or a file is not YAML.
// Not checked here (the API server's CEL rules and field pruning): tests/tests/istio_manifests.rs
// checks unknown fields and selector/targetRefs exclusivity structurally.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

let failed = 0;
for (const file of process.argv.slice(2)) {
  let docs;
  try {
    docs = parseAllDocuments(readFileSync(file, "utf8"));
  } catch (e) {
    console.log(`error ${file}: cannot read: ${e.message}`);
    failed++;
    continue;
  }
  for (const [i, doc] of docs.entries()) {
    if (doc.errors.length > 0) {
      console.log(`error ${file}#${i}: not YAML: ${doc.errors[0].message}`);
      failed++;
      continue;
    }
    const obj = doc.toJSON();
    if (obj === null || obj === undefined) continue; // an empty document (comments only)
    const where = `${file}#${i} ${obj.kind}/${obj?.metadata?.name}`;
    const [group, version] = String(obj.apiVersion).split("/");
    const pkg = /^[a-z.]+\.istio\.io$/.test(group)
      ? "@kubernetes-models/istio"
      : group === "gateway.networking.k8s.io"
        ? "@kubernetes-models/gateway-api"
        : null;
    if (pkg === null || !/^v[0-9a-z]+$/.test(version ?? "") || !/^[A-Za-z]+$/.test(obj.kind)) {
      console.log(`error ${where}: apiVersion ${obj.apiVersion} kind ${obj.kind} is neither an Istio nor a Gateway API resource`);
      failed++;
      continue;
    }
    let Model;
    try {
      // Each package exports one module per group/version holding its kinds.
      Model = (await import(`${pkg}/${group}/${version}`))[obj.kind];
      if (typeof Model !== "function") throw new Error("unknown kind");
    } catch (e) {
      console.log(`error ${where}: no schema for ${obj.apiVersion} ${obj.kind}`);
      failed++;
      continue;
    }
    try {
      new Model(obj).validate();
      console.log(`ok ${where}`);
    } catch (e) {
      const why = (e.errors ?? [{ instancePath: "", message: e.message }])
        .map((x) => `${x.instancePath || "/"}: ${x.message}${x.params?.allowedValues ? ` (${x.params.allowedValues.join(", ")})` : ""}`)
        .join("; ");
      console.log(`error ${where}: ${why}`);
      failed++;
    }
  }
}
process.exit(failed > 0 ? 1 : 0);
