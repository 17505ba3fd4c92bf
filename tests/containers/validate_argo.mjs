// Validates Argo Rollouts objects (JSON on stdin, a list) against the CRD schemas shipped by
// @kubernetes-models/argo-rollouts (installed by `make tools` under .cache/npm). Prints "valid"
// or the first schema error, and exits 1 on an error.
import { readFileSync } from "node:fs";
import { AnalysisTemplate } from "@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1/AnalysisTemplate";

const kinds = { AnalysisTemplate };
for (const doc of JSON.parse(readFileSync(0, "utf8"))) {
  const Model = kinds[doc.kind];
  if (!Model) { console.log(`no schema here for kind ${doc.kind}`); process.exit(1); }
  try { new Model(doc).validate(); } catch (err) { console.log(String(err.message)); process.exit(1); }
}
console.log("valid");
