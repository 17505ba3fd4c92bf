// The status page: reads GET /routing, /stats and /shadow every second and draws them, and
// GET /quality every half minute (a report reads the prediction log: not for every second).
// Read-only by design: it sends GET requests and nothing else. No framework, no build step.
"use strict";

const REFRESH_MS = 1000;
const CHART_SPAN_S = 600;
const MIN_CHART_SPAN_S = 60;
const QUALITY_REFRESH_MS = 30000;
const PALETTE = ["#1f5fa8", "#c0392b", "#2e7d32", "#7b3fa0", "#b26a00", "#00838f"];
const DASHES = ["", "7 4", "2 3", "10 3 2 3", "4 4", "1 2"];
// Health in words and a symbol, so a state never rests on its colour alone.
const HEALTH = {
  healthy: "✔ healthy",
  unhealthy: "✖ unhealthy",
  ejected: "⏸ ejected",
  version_mismatch: "≠ version mismatch",
  contract_mismatch: "≠ inputs differ",
  unknown: "? unknown",
};

// el("td", {class: "num"}, "text", child, ...): a DOM node; text goes in as text, never HTML.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function fill(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined));
}

function num(value, digits = 1, suffix = "") {
  if (value === null || value === undefined) return "–";
  return `${Number(value).toFixed(digits)}${suffix}`;
}

function percent(value, digits = 1) {
  return num(value, digits, " %");
}

function colourOf(index) {
  return { stroke: PALETTE[index % PALETTE.length], dash: DASHES[index % DASHES.length] };
}

async function getJSON(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

// --- routing --------------------------------------------------------------------------------

function renderRouting(routing) {
  document.getElementById("service").textContent = routing.service ? `· ${routing.service}` : "";
  const facts = [["mode", routing.mode]];
  if (routing.mode === "blue_green" && routing.blue_green) {
    const bg = routing.blue_green;
    const live = bg.live === "green" ? bg.green : bg.blue;
    facts.push(["live colour", `${bg.live} = ${live}`]);
    facts.push(["colours", `blue = ${bg.blue}, green = ${bg.green}`]);
  } else {
    const weights = Object.entries(routing.weights || {}).map(([v, w]) => `${v} ${w} %`);
    facts.push(["weights", weights.join(" · ")]);
  }
  facts.push(["stable (fallback)", routing.stable]);
  if (routing.sticky_header) facts.push(["sticky header", routing.sticky_header]);
  if (routing.pinning) {
    facts.push(["pinning", `${routing.pinning.header}: ${routing.pinning.allow.join(", ")}`]);
  }
  facts.push(["shadow", routing.shadow ? routing.shadow.note : "–"]);
  // Each version's holdout AUC and training data, from its replicas' /metadata.
  const offline = routing.offline_quality;
  if (offline && offline.versions) {
    facts.push(["offline AUC", Object.entries(offline.versions).map(([version, f]) =>
      (f && f.holdout_auc !== null && f.holdout_auc !== undefined
        ? `${version} ${Number(f.holdout_auc).toFixed(4)} (data ${f.dataset_id || "–"})`
        : `${version} unknown`)).join(" · ")]);
    if (offline.warning) facts.push(["⚠ offline", offline.warning]);
  }
  // Every version must take the stable version's V2 inputs; one that differs gets no traffic.
  const contract = routing.input_contract;
  if (contract && contract.versions) {
    const standing = Object.entries(contract.versions);
    facts.push(["input contract", standing.map(([version, s]) => `${version} ${s.status}`)
      .join(" · ")]);
    for (const [, s] of standing.filter(([, s]) => s.status === "differs")) {
      facts.push(["⚠ inputs differ", `${s.reason} (no traffic)`]);
    }
  }
  facts.push(["revision", routing.revision]);
  facts.push(["loaded at", routing.loaded_at]);
  facts.push(["ready", routing.ready ? "yes" : "no: no healthy replica for the live route"]);
  fill(
    document.getElementById("routing-facts"),
    facts.map(([name, value]) => [
      el("dt", {}, name),
      el("dd", { "data-field": name.replace(/\W+/g, "_") }, value),
    ]),
  );

  const box = document.getElementById("reload-error");
  const error = routing.last_reload_error;
  box.hidden = !error;
  // Redrawn only when it changes: the box is an alert, announced each time it is redrawn.
  const key = JSON.stringify([error, routing.revision]);
  if (error && box.dataset.key !== key) {
    box.dataset.key = key;
    fill(
      box,
      el("strong", {}, `✖ Reload failed at ${error.at}: the file on disk is NOT in effect; `
        + `revision ${routing.revision} keeps serving.`),
      el("ul", {}, error.messages.map((message) => el("li", {}, message))),
    );
  }
}

// --- versions -------------------------------------------------------------------------------

function renderVersions(stats) {
  const rows = stats.versions.map((row) => {
    const errorRate = row.error_rate === null ? "–" : percent(100 * row.error_rate, 2);
    // The judge's error rate, with its parts: 5xx the version answered, and requests it
    // failed that stable saved by fallback (the client saw no error, the version did fail).
    const errorParts = row.error_rate === null ? ""
      : `${num(row.answered_5xx, 0)} 5xx answered + ${num(row.saved_by_fallback, 0)} saved by fallback`
        + ` in ${num(row.requests, 0)} requests`;
    return el(
      "tr",
      { "data-version": row.version },
      el("th", { scope: "row" }, row.version),
      el("td", { class: "num", "data-field": "configured_percent" },
        row.configured_percent === null ? "not configured" : `${row.configured_percent} %`),
      el("td", { class: "num", "data-field": "served_percent" }, percent(row.served_percent)),
      el("td", { class: "num", "data-field": "rps" }, num(row.rps, 2)),
      el("td", { class: "num", "data-field": "error_rate", title: errorParts }, errorRate),
      el("td", { class: "num", "data-field": "p50_ms" }, num(row.p50_ms, 1, " ms")),
      el("td", { class: "num", "data-field": "p99_ms" }, num(row.p99_ms, 1, " ms")),
      el("td", { class: "num", "data-field": "answered_5xx" }, num(row.answered_5xx, 0)),
      el("td", { class: "num", "data-field": "saved_by_fallback" }, num(row.saved_by_fallback, 0)),
    );
  });
  fill(document.querySelector("#versions-table tbody"), rows);
  renderChart(stats);
}

function niceMax(value) {
  if (!(value > 0)) return 1;
  const step = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 5, 10]) if (m * step >= value) return m * step;
  return 10 * step;
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// A line per version, drawn in the container's real pixels so labels stay readable when narrow.
function renderChart(stats) {
  const box = document.getElementById("chart");
  const width = Math.max(260, box.clientWidth);
  const height = 180;
  const pad = { left: 44, right: 8, top: 8, bottom: 22 };
  const times = stats.series.times;
  const end = times.length ? times[times.length - 1] : stats.sampled_at || 0;
  // The axis grows with the data from one minute to ten, so a young gateway's line is visible.
  const span = Math.min(CHART_SPAN_S, Math.max(MIN_CHART_SPAN_S, times.length ? end - times[0] : 0));
  const start = end - span;
  const versions = stats.versions.map((row) => row.version);
  const top = niceMax(Math.max(0, ...versions.flatMap((v) => stats.series.rps[v] || [])));
  const x = (t) => pad.left + ((t - start) / span) * (width - pad.left - pad.right);
  const y = (v) => pad.top + (1 - v / top) * (height - pad.top - pad.bottom);

  const chart = svg("svg", {
    width, height, role: "img",
    "aria-label": "requests per second per version over time",
  });
  for (const fraction of [0, 0.5, 1]) {
    const value = top * fraction;
    chart.append(svg("line", { x1: pad.left, x2: width - pad.right, y1: y(value), y2: y(value),
      class: "grid" }));
    chart.append(svg("text", { x: pad.left - 6, y: y(value) + 4, "text-anchor": "end" },
      Number.isInteger(value) ? value : value.toFixed(1)));
  }
  const ago = (seconds) => (seconds >= 120 ? `−${Math.round(seconds / 60)} min`
    : `−${Math.round(seconds)} s`);
  for (const [label, t, anchor] of [[ago(span), start, "start"],
    [ago(span / 2), start + span / 2, "middle"], ["now", end, "end"]]) {
    chart.append(svg("text", { x: x(t), y: height - 6, "text-anchor": anchor }, label));
  }
  versions.forEach((version, index) => {
    const values = stats.series.rps[version] || [];
    if (!values.length) return;
    const { stroke, dash } = colourOf(index);
    const points = values.map((v, i) => `${x(times[i]).toFixed(1)},${y(v).toFixed(1)}`);
    chart.append(svg("polyline", { points: points.join(" "), fill: "none", stroke,
      "stroke-width": 2, "stroke-dasharray": dash, "data-version": version }));
    // The newest point marked, so a line of one point (a gateway just started) still shows.
    const last = values.length - 1;
    chart.append(svg("circle", { cx: x(times[last]), cy: y(values[last]), r: 3, fill: stroke }));
  });
  fill(box, chart);

  fill(document.getElementById("legend"), versions.map((version, index) => {
    const { stroke, dash } = colourOf(index);
    const sample = svg("svg", { width: 28, height: 10, "aria-hidden": "true" });
    sample.append(svg("line", { x1: 0, x2: 28, y1: 5, y2: 5, stroke, "stroke-width": 2,
      "stroke-dasharray": dash }));
    const values = stats.series.rps[version] || [];
    const now = values.length ? values[values.length - 1] : null;
    return el("li", {}, sample, ` ${version}: ${num(now, 1)} req/s now`);
  }));
}

// --- replicas -------------------------------------------------------------------------------

function renderReplicas(routing) {
  const rows = (routing.replicas || []).map((replica) => el(
    "tr",
    { "data-replica": replica.url, class: `state-${replica.state}` },
    el("td", {}, replica.version),
    el("td", { "data-field": "state" },
      el("span", { class: `badge ${replica.state}` }, HEALTH[replica.state] || replica.state)),
    el("td", { class: "num", "data-field": "inflight" }, replica.inflight),
    el("td", { class: "mono" }, replica.url),
    el("td", { class: "mono" }, replica.address),
    el("td", {}, replica.reported_version || "–"),
    el("td", { class: "error-text" },
      replica.last_error || ""),
  ));
  fill(document.querySelector("#replicas-table tbody"), rows);
}

// --- shadow ---------------------------------------------------------------------------------

function renderShadow(report, routing) {
  const body = document.getElementById("shadow-body");
  const mirroring = routing && routing.shadow ? routing.shadow.active : report && report.active;
  if (!report || !report.active || !mirroring) {
    const note = routing && routing.shadow ? routing.shadow.note : "no shadow configured";
    fill(body, el("p", { class: "muted", "data-field": "shadow_state" }, `Shadowing is off: ${note}.`));
    return;
  }
  const parts = [el("p", { "data-field": "shadow_state" },
    `Mirroring ${report.shadow.percent} % to ${report.shadow.version}`
    + (report.since ? ` since ${report.since}` : "") + "; its answers are compared, never returned.")];
  if (!report.pairs.length) parts.push(el("p", { class: "muted" }, "Nothing compared yet."));
  for (const pair of report.pairs) parts.push(renderPair(pair));
  fill(body, parts);
}

function renderPair(pair) {
  const agreement = pair.tier_agreement;
  const psi = pair.psi;
  const delta = pair.abs_delta;
  // The tiers in the server's order (the confusion matrix's keys): one spelling, the server's.
  const TIERS = Object.keys(agreement.confusion);
  const matrix = el("table", { class: "matrix" },
    el("caption", {}, `risk tiers: rows ${pair.primary} (client), columns ${pair.shadow} (shadow)`),
    el("thead", {}, el("tr", {}, el("th", {}, ""), TIERS.map((t) => el("th", { scope: "col" }, t)))),
    el("tbody", {}, TIERS.map((client) => el("tr", {},
      el("th", { scope: "row" }, client),
      TIERS.map((theirs) => el("td", {
        class: client === theirs ? "num agree" : "num",
        "data-cell": `${client}-${theirs}`,
      }, agreement.confusion[client][theirs]))))));
  const disagreements = el("table", { class: "disagreements" },
    el("caption", {}, "largest disagreements by |Δp|"),
    el("thead", {}, el("tr", {}, ["request id", "row", pair.primary, pair.shadow, "|Δp|"]
      .map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, pair.largest_disagreements.map((d) => el("tr", {},
      el("td", { class: "mono" }, d.request_id),
      el("td", { class: "num" }, d.row),
      el("td", {}, `${num(d.primary.probability, 3)} ${d.primary.tier}`),
      el("td", {}, `${num(d.shadow.probability, 3)} ${d.shadow.tier}`),
      el("td", { class: "num" }, num(d.abs_delta, 3))))));
  return el("div", { class: "pair", "data-pair": `${pair.primary}-${pair.shadow}` },
    el("h3", {}, `${pair.primary} (client) vs ${pair.shadow} (shadow)`),
    el("dl", {},
      el("dt", {}, "compared"),
      el("dd", { "data-field": "compared" }, `${pair.compared} requests, ${pair.rows} rows `
        + `(mirrored ${pair.mirrored}, dropped ${pair.dropped}, failed ${pair.failed})`),
      el("dt", {}, "tier agreement"),
      el("dd", { "data-field": "tier_agreement" }, percent(agreement.percent, 2)),
      el("dt", {}, "PSI"),
      el("dd", { "data-field": "psi" }, psi.value === null
        ? "–" : `${num(psi.value, 4)} (${psi.reading})`),
      el("dt", {}, "|Δp|"),
      el("dd", { "data-field": "abs_delta" }, `mean ${num(delta.mean, 4)} · p50 ${num(delta.p50, 4)}`
        + ` · p95 ${num(delta.p95, 4)} · max ${num(delta.max, 4)}`)),
    // The disagreements table is wider than a phone: it scrolls in its own box, not the page.
    el("div", { class: "side-by-side" }, matrix, el("div", { class: "scroll" }, disagreements)));
}

// --- rollout --------------------------------------------------------------------------------

// The verdict line, from /stats "verdict": the gateway's own words (gateway/glance.py), the
// same `streamflow status` prints first.
function renderVerdict(verdict) {
  const box = document.getElementById("verdict");
  box.dataset.tone = (verdict && verdict.tone) || "none";
  box.dataset.state = (verdict && verdict.state) || "";
  box.textContent = verdict && verdict.text ? verdict.text : "–";
}

function renderRolloutPlan(plan, routing, verdict) {
  const box = document.getElementById("rollout-plan");
  if (!plan) {
    // A finished rollout keeps its verdict (and, below, its decisions and evidence) until
    // the next one starts.
    const finished = verdict && ["promoted", "rolled_back"].includes(verdict.state);
    fill(box, el("p", { class: "muted", "data-field": "rollout_state" },
      finished ? `No rollout plan now. Last rollout: ${verdict.text.split("; ")[0]}`
        + " (its decisions and evidence below)."
        : "No rollout plan in routing.yaml: weights change only through the CLI or an edit."));
    return;
  }
  const weight = (routing.weights || {})[plan.candidate];
  const steps = plan.steps || [100];  // a blue/green flip is one step, to 100 %
  const at = steps.indexOf(weight);
  const next = steps.find((step) => step > (weight ?? -1));
  const facts = [
    ["candidate", `${plan.candidate} (${plan.strategy || "canary"})`],
    ["steps", steps.map((s) => (s === weight ? `[${s} %]` : `${s} %`)).join(" → ")],
    ["now", at >= 0 ? `step ${at + 1} of ${steps.length}: ${weight} %`
      : `${weight ?? 0} % (not one of the steps)`],
    ["next", next === undefined ? "promote: the candidate has every step behind it"
      : `${next} % after ${typeof plan.interval === "number" ? `${plan.interval} s`
        : plan.interval || "the interval"} if the checks pass`],
  ];
  if (plan.shadow_bake) {
    facts.splice(1, 0, ["shadow bake", `${plan.shadow_bake.percent} % of predictions for `
      + `${plan.shadow_bake.duration} s before any customer is served`]);
  }
  if (plan.quality) {
    const q = plan.quality;
    facts.push(["quality gate", `${q.min_outcomes ?? 500} outcomes each side, AUC at most `
      + `${q.max_auc_drop ?? 0.01} below stable, waits at most ${q.max_wait ?? 3600} s, `
      + (plan.shadow_bake ? "paired, at the end of the shadow bake" : "unpaired, before 100 %")]);
  }
  if (plan.thresholds) {
    facts.push(["thresholds", Object.entries(plan.thresholds).map(([k, v]) => `${k} ${v}`).join(" · ")]);
  }
  fill(box, el("dl", { "data-field": "rollout_state" },
    facts.map(([name, value]) => [el("dt", {}, name), el("dd", {}, value)])));
}

// The rollout controller's decision log, from /stats "rollout_log" (null until it writes one).
// Each entry is shown as it comes: time, verdict, and its numbers. A step halted at its horizon
// (the last word is the controller's "halt", no operator command since) waits for a person: it
// is shown first, in a red box, with the two commands that end it.
// Steps are counted from 1 here, in the verdict line, the controller's lines and `streamflow
// rollout status` alike (the log's "step" field is the 0-based index into the plan's steps).
function stepLabel(entry) {
  if (entry.phase === "shadow_bake") return "in the shadow bake";
  if (entry.phase === "reference") return "in the reference window";
  return entry.step === undefined || entry.step < 0 ? `at ${entry.weight ?? 0}%`
    : `at step ${entry.step + 1} (${entry.weight}%)`;
}

function halted(entries) {
  const last = entries[entries.length - 1];
  return last && last.action === "halt" ? last : null;
}

function renderRolloutLog(entries) {
  const box = document.getElementById("rollout-log");
  const banner = document.getElementById("halted-banner");
  const stopped = entries && entries.length ? halted(entries) : null;
  banner.hidden = !stopped;
  fill(banner, stopped ? [el("a", { href: "#rollout-halted" }, "Rollout halted"),
    ` ${stepLabel(stopped)}: waiting for an operator (below)`] : []);
  if (!entries || !entries.length) {
    fill(box, el("p", { class: "muted" }, "No rollout decisions logged."));
    return;
  }
  const parts = [];
  const halt = halted(entries);
  if (halt) {
    parts.push(el("div", { id: "rollout-halted", role: "alert", "data-field": "rollout_halted" },
      el("strong", {}, `ROLLOUT HALTED ${stepLabel(halt)}: an operator must decide`),
      el("p", {}, halt.reason || ""),
      el("p", { class: "mono" },
        "streamflow rollout resume --accept   (take the step as passed)  ·  "
        + "streamflow rollout abort   (roll back)")));
  }
  const gated = [...entries].reverse().find((entry) => entry.quality);
  if (gated) {
    const q = gated.quality;
    const f = (v) => (v === null || v === undefined ? "–" : `${v >= 0 ? "+" : ""}${Number(v).toFixed(4)}`);
    parts.push(el("p", { "data-field": "rollout_quality" },
      el("span", { class: `verdict ${String(q.decision || "").toLowerCase()}` },
        gated.state === "waiting_for_outcomes" && gated.action === "hold"
          ? "waiting for outcomes" : `quality gate ${q.decision}`),
      ` (${q.design || "-"}): ${q.n_candidate} and ${q.n_stable} labelled outcomes of `
      + `${q.min_outcomes} needed each; AUC difference ${f(q.auc_difference)}, always-valid bounds `
      + `[${f(q.lower)}, ${f(q.upper)}], margin −${q.max_auc_drop}`));
  }
  const judged = [...entries].reverse().find((entry) => entry.checks && entry.checks.length);
  if (judged) {
    parts.push(el("div", { class: "evidence", "data-field": "rollout_evidence" },
      el("p", {}, `evidence at the last check (${judged.verdict || "-"}):`),
      el("ul", {}, judged.checks.map((check) => el("li", {},
        el("span", { class: `verdict ${(check.status || "").toLowerCase()}` }, check.status || ""),
        ` ${check.name}: ${check.detail || ""}`)))));
  }
  // Newest first, each rollout under a divider that names it (its plan id and candidate).
  const rows = [];
  let plan;
  for (const entry of entries.slice(-10).reverse()) {
    if (entry.plan !== undefined && entry.plan !== plan) {
      rows.push(el("tr", { class: "divider" }, el("td", { colspan: "4" },
        `${plan === undefined ? "latest rollout" : "earlier rollout"} ${entry.plan}`
        + (entry.candidate ? `: ${entry.candidate}` : ""))));
      plan = entry.plan;
    }
    rows.push(entry);
  }
  parts.push(el("table", { class: "log" },
    el("caption", {}, "last decisions, newest first"),
    el("tbody", {}, rows.map((entry) => entry instanceof Node ? entry : el("tr",
      { class: entry.action === "halt" ? "halted" : "" },
      el("td", { class: "mono" }, (entry.time || "").replace("T", " ").slice(0, 19)),
      el("td", {}, entry.phase === "shadow_bake" ? "shadow bake"
        : entry.phase === "reference" ? "reference window"
        : entry.step === undefined ? "" : `step ${entry.step + 1} (${entry.weight}%)`),
      el("td", {}, [entry.verdict, entry.action,
        entry.state === "waiting_for_outcomes" ? "waiting for outcomes" : null]
        .filter(Boolean).join(" → ")),
      el("td", {}, entry.reason || ""))))));
  fill(box, parts);
}

// --- quality --------------------------------------------------------------------------------

// Whether the prediction log is on, from /stats: GET /quality is asked only then (it answers
// 404 when the log is off, and the page never makes a request it knows will fail).
let predictionLog;

async function getQuality() {
  if (predictionLog === false) return { off: "" };
  const response = await fetch("quality", { cache: "no-store" });
  if (response.status === 404) {
    const body = await response.json().catch(() => ({}));
    if (body.error === "prediction_log_off") return { off: body.detail || "" };
  }
  if (!response.ok) throw new Error(`quality: HTTP ${response.status}`);
  return response.json();
}

function interval(numbers, digits = 3, signed = false) {
  if (!numbers) return "–";
  const value = numbers.value ?? numbers.estimate;
  const f = (v) => (v === null || v === undefined ? "–"
    : `${signed && v >= 0 ? "+" : ""}${Number(v).toFixed(digits)}`);
  const [low, high] = numbers.interval || [null, null];
  return `${f(value)} [${f(low)}, ${f(high)}]`;
}

// Observed churn rate against mean predicted probability per bin, one marker per version; the
// dashed diagonal is perfect calibration. Drawn in the box's real width (narrow screens too).
function renderReliability(report) {
  const box = document.getElementById("reliability");
  if (!box) return;
  const size = Math.max(200, Math.min(320, box.clientWidth || 320));
  const pad = { left: 36, right: 8, top: 8, bottom: 30 };
  const x = (p) => pad.left + p * (size - pad.left - pad.right);
  const y = (p) => pad.top + (1 - p) * (size - pad.top - pad.bottom);
  const chart = svg("svg", { width: size, height: size, viewBox: `0 0 ${size} ${size}`,
    role: "img", "aria-label": "reliability diagram: observed churn rate per predicted bin" });
  for (const v of [0, 0.5, 1]) {
    chart.append(svg("line", { x1: x(0), x2: x(1), y1: y(v), y2: y(v), class: "grid" }));
    chart.append(svg("text", { x: pad.left - 4, y: y(v) + 4, "text-anchor": "end" }, v));
    chart.append(svg("text", { x: x(v), y: size - 16, "text-anchor": "middle" }, v));
  }
  chart.append(svg("text", { x: x(0.5), y: size - 2, "text-anchor": "middle" },
    "predicted probability"));
  chart.append(svg("line", { x1: x(0), y1: y(0), x2: x(1), y2: y(1), class: "diagonal" }));
  Object.entries(report.versions).forEach(([version, v], index) => {
    const bins = ((v.calibration || {}).bins || []).filter((b) => b.count > 0
      && b.mean_probability !== null && b.observed_rate !== null);
    if (!bins.length) return;
    const { stroke, dash } = colourOf(index);
    const points = bins.map((b) => `${x(b.mean_probability).toFixed(1)},${y(b.observed_rate).toFixed(1)}`);
    chart.append(svg("polyline", { points: points.join(" "), fill: "none", stroke,
      "stroke-width": 2, "stroke-dasharray": dash, "data-version": version }));
    for (const b of bins) {
      const dot = svg("circle", { cx: x(b.mean_probability), cy: y(b.observed_rate), r: 3,
        fill: stroke });
      dot.append(svg("title", {}, `${version}: ${b.count} predictions, mean `
        + `${b.mean_probability.toFixed(3)}, observed ${b.observed_rate.toFixed(3)}`));
      chart.append(dot);
    }
  });
  const legend = el("ul", { class: "legend" }, Object.keys(report.versions).map((version, i) => {
    const { stroke, dash } = colourOf(i);
    const sample = svg("svg", { width: 28, height: 10, "aria-hidden": "true" });
    sample.append(svg("line", { x1: 0, x2: 28, y1: 5, y2: 5, stroke, "stroke-width": 2,
      "stroke-dasharray": dash }));
    return el("li", {}, sample, ` ${version}`);
  }));
  fill(box, chart, legend);
}

function renderQuality(report) {
  const box = document.getElementById("quality-body");
  if (report.off !== undefined) {
    fill(box, el("p", { class: "muted", "data-field": "quality_off" },
      "The prediction log is off, so there is nothing to judge on outcomes. "
      + "Turn it on with GATEWAY_PREDICTION_LOG=1 and post outcomes (README, Outcomes)."));
    return;
  }
  const versions = Object.entries(report.versions || {});
  const days = report.window && report.window.seconds ? report.window.seconds / 86400 : null;
  const span = days === null ? "" : days >= 1 ? `${+days.toFixed(1)} days` : `${+(days * 24).toFixed(1)} h`;
  if (!versions.length) {
    fill(box, el("p", { class: "muted", "data-field": "quality_empty" },
      `No labelled predictions in the last ${span} yet: outcomes join predictions when they are `
      + "posted (POST /outcomes or streamflow outcomes load)."));
    return;
  }
  const tiers = [];
  for (const [, v] of versions) for (const t of Object.keys(v.tiers || {})) if (!tiers.includes(t)) tiers.push(t);
  const table = el("table", { id: "quality-table" },
    el("caption", {}, `predictions of the last ${span}, each with its observed outcome`),
    el("thead", {}, el("tr", {},
      el("th", { scope: "col" }, "version"), el("th", { scope: "col", class: "num" }, "labelled"),
      el("th", { scope: "col", class: "num" }, "churn"),
      el("th", { scope: "col", class: "num" }, "AUC [95 %]"),
      el("th", { scope: "col", class: "num" }, "Brier"),
      el("th", { scope: "col", class: "num" }, "log loss"),
      el("th", { scope: "col", class: "num", title: "expected calibration error" }, "ECE"),
      tiers.map((t) => el("th", { scope: "col", class: "num" }, `${t}: churn`)))),
    el("tbody", {}, versions.map(([version, v]) => el("tr", { "data-version": version },
      el("td", {}, version), el("td", { class: "num" }, v.labelled),
      el("td", { class: "num" }, v.churn_rate === null ? "–" : percent(100 * v.churn_rate)),
      el("td", { class: "num" }, interval(v.auc)),
      el("td", { class: "num" }, num(v.brier, 4)), el("td", { class: "num" }, num(v.log_loss, 4)),
      el("td", { class: "num" }, num((v.calibration || {}).expected_calibration_error, 4)),
      tiers.map((t) => {
        const tier = (v.tiers || {})[t] || {};
        return el("td", { class: "num" }, tier.observed_rate === null || tier.observed_rate === undefined
          ? "–" : `${percent(100 * tier.observed_rate)} of ${tier.count}`);
      })))));
  const lines = [];
  const comparison = report.comparison || {};
  for (const [design, said] of [["paired", "paired (shadow rows)"],
    ["unpaired", "unpaired (canary split, weighted and sticky only)"]]) {
    const c = comparison[design];
    if (!c) continue;
    let text = `${said}: AUC ${interval(c.auc_difference, 4, true)}, Brier `
      + `${interval(c.brier_difference, 4, true)}, on ${c.candidate_outcomes} and ${c.stable_outcomes} outcomes`;
    if (c.excluded) {
      const left = Object.entries(c.excluded).map(([ver, counts]) => {
        const n = Object.values(counts || {}).reduce((a, b) => a + b, 0);
        return `${n} of ${ver}`;
      });
      text += `; left out (pinned, fallback, blue/green, shadow): ${left.join(", ")}`;
    }
    lines.push(el("li", { "data-field": `quality_${design}` }, text));
  }
  const parts = [el("div", { class: "scroll" }, table)];
  if (report.candidate && lines.length) {
    parts.push(el("p", {}, `${report.candidate} − ${report.stable}, with 95 % intervals:`),
      el("ul", { class: "quality-compare" }, lines));
  }
  parts.push(el("figure", {}, el("figcaption", {}, "Reliability: observed churn against predicted probability"),
    el("div", { id: "reliability" })));
  fill(box, parts);
  renderReliability(report);
}

// --- the loop -------------------------------------------------------------------------------

// One part that cannot be drawn (a gateway of another version sending another shape) must not
// stop the others; what went wrong shows on the connection line.
function section(name, render, problems) {
  try {
    render();
  } catch (error) {
    problems.push(`cannot show ${name}: ${error}`);
  }
}

async function refresh() {
  const [routing, stats, shadow] = await Promise.allSettled(
    ["routing", "stats", "shadow"].map(getJSON),
  );
  const problems = [routing, stats, shadow]
    .filter((r) => r.status === "rejected")
    .map((r) => `cannot read the gateway: ${r.reason.message} (showing the last numbers it gave)`);
  if (routing.status === "fulfilled") {
    const r = routing.value;
    section("the routing", () => renderRouting(r), problems);
    section("the replicas", () => renderReplicas(r), problems);
    const verdict = stats.status === "fulfilled" ? stats.value.verdict : null;
    section("the rollout plan", () => renderRolloutPlan((r.config || {}).rollout, r, verdict),
      problems);
  }
  if (stats.status === "fulfilled") {
    section("the verdict", () => renderVerdict(stats.value.verdict), problems);
    predictionLog = Boolean(stats.value.prediction_log);
    section("the versions", () => renderVersions(stats.value), problems);
    section("the rollout log", () => renderRolloutLog(stats.value.rollout_log), problems);
  }
  if (shadow.status === "fulfilled") {
    const r = routing.status === "fulfilled" ? routing.value : null;
    section("the shadow comparison", () => renderShadow(shadow.value, r), problems);
  }
  const connection = document.getElementById("connection");
  if (problems.length) {
    connection.className = "error-text";
    connection.textContent = `✖ ${problems.join("; ")}`;
  } else {
    connection.className = "muted";
    connection.textContent = `✔ live, updated ${new Date().toLocaleTimeString()} (every second)`;
  }
}

async function loop() {
  await refresh();
  setTimeout(loop, REFRESH_MS);
}

async function qualityLoop() {
  if (predictionLog === undefined) {  // /stats not read yet
    setTimeout(qualityLoop, REFRESH_MS);
    return;
  }
  try {
    renderQuality(await getQuality());
  } catch (error) {
    fill(document.getElementById("quality-body"),
      el("p", { class: "error-text" }, `cannot read /quality: ${error.message}`));
  }
  setTimeout(qualityLoop, QUALITY_REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  loop();
  qualityLoop();
});
