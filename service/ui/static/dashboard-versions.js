// The dashboard's per-version rows and rollout status, from the same summary (dashboard.js's drawChart,
// dashboard-monitoring.js's helpers).
"use strict";

function percent(share) {
  return share === null || share === undefined ? "–" : `${formatNumber(share * 100)} %`;
}

function milliseconds(seconds) {
  return seconds === null || seconds === undefined ? "–" : `${formatNumber(seconds * 1000)} ms`;
}

function stepName(step) {
  return step === "shadow" ? "shadow" : `${step} %`;
}

// What the rollout is doing, or how the last one ended, in one line.
function rolloutText(status) {
  const rollout = status.rollout;
  const policy = status.policy;
  if (!rollout) return `No rollout yet: ${policy.stable} is stable.`;
  const plan = rollout.steps.map(stepName).join(" → ");
  const step = `step ${rollout.step + 1} of ${rollout.steps.length} (${stepName(rollout.steps[rollout.step])})`;
  switch (rollout.status) {
    case "running":
      return `Rollout of ${rollout.candidate} over ${rollout.stable}: ${step}; plan ${plan}.`;
    case "promoted":
      return `${rollout.candidate} was promoted to stable over ${rollout.stable} (plan ${plan}).`;
    case "rolled_back":
      return `Rollout of ${rollout.candidate} rolled back at ${step}: ${rollout.reason}. ${policy.stable} is stable.`;
    default:
      return `Rollout of ${rollout.candidate} aborted at ${step}: ${rollout.reason}. ${policy.stable} is stable.`;
  }
}

// Each version's role and share of unversioned requests, by the serving state's policy when the summary has it.
function rolesOf(summary, last) {
  const roles = {};
  const status = summary.rollout;
  if (status) {
    const policy = status.policy;
    for (const version of status.versions) roles[version] = { role: "idle", share: 0, shadow: 0 };
    roles[policy.stable] = { role: "stable", share: 1 - policy.weight, shadow: 0 };
    if (policy.candidate) roles[policy.candidate] = { role: "candidate", share: policy.weight, shadow: policy.shadow };
  }
  for (const [version, rates] of Object.entries(last ? last.versions : {})) {
    roles[version] ??= { role: "", share: rates.traffic_share, shadow: rates.shadow_share };
  }
  for (const version of Object.keys(summary.versions)) roles[version] ??= { role: "", share: 0, shadow: 0 };
  return roles;
}

function barList(className, rows) {
  const list = document.createElement("ul");
  list.className = `mix ${className}`;
  for (const [label, share] of rows) {
    const item = document.createElement("li");
    item.dataset.label = label;
    item.dataset.share = String(share);
    const name = document.createElement("span");
    name.textContent = label;
    const track = document.createElement("span");
    track.className = "bar-track";
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${(share * 100).toFixed(1)}%`;
    track.append(bar);
    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = percent(share);
    item.append(name, track, value);
    list.append(item);
  }
  return list;
}

function tile(name, value) {
  const box = document.createElement("div");
  box.className = "tile";
  const term = document.createElement("dt");
  term.textContent = name;
  const detail = document.createElement("dd");
  detail.textContent = value;
  box.append(term, detail);
  return box;
}

function versionRow(version, role, window, latest, historySeconds) {
  const row = document.createElement("article");
  row.className = "version-row";
  row.id = `version-${idPart(version)}`;
  Object.assign(row.dataset, {
    version,
    role: role.role,
    share: String(role.share),
    shadow: String(role.shadow),
    requests: String(window ? window.requests : 0),
  });
  const heading = document.createElement("h3");
  const shares = [`${percent(role.share)} of traffic`];
  if (role.shadow) shares.push(`shadow ${percent(role.shadow)} of stable's`);
  heading.textContent = `${version}${role.role ? ` · ${role.role}` : ""} · ${shares.join(", ")}`;
  const tiles = document.createElement("dl");
  tiles.className = "tiles";
  tiles.append(
    tile("Requests / s", latest ? formatNumber(latest.request_rate) : "–"),
    tile("Error rate", window ? percent(window.error_ratio) : "–"),
    tile("Latency p50", milliseconds(window && window.latency_p50_seconds)),
    tile("Latency p99", milliseconds(window && window.latency_p99_seconds)),
  );
  if (window && window.shadow_compared) {
    row.dataset.agreement = String(window.shadow_agreement);
    tiles.append(tile(`Shadow agreement (${Math.round(window.shadow_compared)} images)`, percent(window.shadow_agreement)));
  }
  row.append(heading, tiles);
  const minutes = Math.round(historySeconds / 60);
  if (!window || !window.predictions) {
    row.append(paragraph(`No predictions in the last ${minutes} min.`, "no-data"));
    return row;
  }
  const labels = Object.keys(window.class_mix).sort((a, b) => Number(a) - Number(b));
  row.append(paragraph(`Class mix of its ${Math.round(window.predictions)} predictions (last ${minutes} min)`, "muted"));
  row.append(barList("class-mix", labels.map((label) => [label, window.class_mix[label]])));
  row.append(paragraph("Top-1 confidence", "muted"));
  let lower = 0;
  const buckets = window.confidence.map((bucket) => {
    const name = `${lower}–${bucket.upper}`;
    lower = bucket.upper;
    return [name, bucket.share];
  });
  row.append(barList("confidence", buckets));
  return row;
}

function showVersions(summary) {
  const note = document.getElementById("rollout-note");
  const status = summary.rollout;
  note.textContent = status ? rolloutText(status) : "";
  note.dataset.status = status && status.rollout ? status.rollout.status : "none";
  const points = summary.points;
  const last = points[points.length - 1];
  const roles = rolesOf(summary, last);
  const order = { stable: 0, candidate: 1 };
  const versions = Object.keys(roles).sort((a, b) => (order[roles[a].role] ?? 2) - (order[roles[b].role] ?? 2));
  const rows = versions.map((version) =>
    versionRow(version, roles[version], summary.versions[version], last && last.versions[version], summary.history_seconds),
  );
  document.getElementById("version-rows").replaceChildren(...rows);

  const perVersion = (field) =>
    versions.map((version, i) => ({
      name: version,
      color: colorOf(i),
      value: (p) => (p.versions[version] ? p.versions[version][field] : null),
    }));
  const specs = [
    { id: "chart-version-rate", title: "Requests by version", unit: "req/s", series: perVersion("request_rate") },
    { id: "chart-version-errors", title: "Errors by version", unit: "req/s", series: perVersion("error_rate") },
    {
      id: "chart-version-p99",
      title: "p99 latency by version",
      unit: "ms",
      scale: 1000,
      series: perVersion("latency_p99_seconds"),
    },
    { id: "chart-version-share", title: "Traffic share by version", unit: "%", scale: 100, series: perVersion("traffic_share") },
  ];
  const figures = specs.map((spec) => newFigure(spec.id));
  document.getElementById("version-charts").replaceChildren(...figures);
  specs.forEach((spec, i) => drawChart(spec, points, summary.history_seconds, figures[i]));
}
