// The live dashboard: polls /v1/metrics/summary and draws small SVG line charts. No libraries.
"use strict";

const SUMMARY_URL = "/v1/metrics/summary";
const SVG_NS = "http://www.w3.org/2000/svg";
const WIDTH = 480;
const HEIGHT = 180;
const MIN_SPAN_SECONDS = 60;
const PAD = { left: 52, right: 12, top: 12, bottom: 24 };

const CHARTS = [
  {
    id: "chart-rate",
    title: "Request rate",
    unit: "req/s",
    series: [
      { key: "request_rate", name: "all", color: "#3b5bdb" },
      { key: "error_rate", name: "errors (4xx/5xx)", color: "#e03131" },
    ],
  },
  {
    id: "chart-latency",
    title: "Latency",
    unit: "ms",
    scale: 1000,
    series: [
      { key: "latency_p50_seconds", name: "p50", color: "#2b8a3e" },
      { key: "latency_p95_seconds", name: "p95", color: "#f08c00" },
      { key: "latency_p99_seconds", name: "p99", color: "#e03131" },
    ],
  },
  {
    id: "chart-batch",
    title: "Batch size",
    unit: "images per model call",
    series: [{ key: "batch_size_mean", name: "mean", color: "#7048e8" }],
  },
  {
    id: "chart-queue",
    title: "Queue depth",
    unit: "",
    series: [
      { key: "queue_depth", name: "images waiting", color: "#1098ad" },
      { key: "inflight_requests", name: "requests in flight", color: "#868e96" },
    ],
  },
  {
    // Each line is the sum of its stage and those below it: the top one is the mean time in the gateway.
    id: "chart-stages",
    title: "Where the time goes (stages stacked, mean per request)",
    unit: "ms",
    scale: 1000,
    stacked: true,
    series: [
      { key: "stage_seconds.read", name: "read", color: "#868e96" },
      { key: "stage_seconds.decode", name: "decode", color: "#1098ad" },
      { key: "stage_seconds.queue", name: "queue", color: "#f08c00" },
      { key: "stage_seconds.assembly", name: "assembly", color: "#7048e8" },
      { key: "stage_seconds.model", name: "model", color: "#e03131" },
      { key: "stage_seconds.encode", name: "encode", color: "#2b8a3e" },
    ],
  },
];

// A point's value for a series: its own value function, or its key ("a.b" reads a nested field).
function seriesValue(series, point) {
  const value = series.value ? series.value(point) : valueOf(point, series.key);
  return value === undefined ? null : value;
}

function valueOf(point, key) {
  let value = point;
  for (const part of key.split(".")) value = value === null || value === undefined ? null : value[part];
  return value === undefined ? null : value;
}

function svg(name, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (parent) parent.append(node);
  return node;
}

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function formatNumber(value) {
  if (value === null || value === undefined) return "–";
  if (value >= 100) return value.toFixed(0);
  if (value >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

function clockTime(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

// spec.thresholds: dashed lines ({ value, name, color }) the chart always reaches; a series with alert: true is
// marked in the legend.
function drawChart(spec, points, historySeconds, figure = document.getElementById(spec.id)) {
  const scale = spec.scale || 1;
  const thresholds = spec.thresholds || [];
  const now = points.length ? points[points.length - 1].time : Date.now() / 1000;
  // The whole history once there is that much; until then the time since start-up, at least a minute.
  const span = Math.min(historySeconds, Math.max(MIN_SPAN_SECONDS, now - (points.length ? points[0].time : now)));
  const start = now - span;
  const values = spec.series.map((s) =>
    points.map((p) => {
      const v = seriesValue(s, p);
      return { t: p.time, v: v === null ? null : v * scale };
    }),
  );
  if (spec.stacked) {
    for (let i = 1; i < values.length; i++) {
      values[i].forEach((d, j) => {
        if (d.v !== null) d.v += values[i - 1][j].v ?? 0;
      });
    }
  }
  const drawn = [...values.flat().map((d) => d.v ?? 0), ...thresholds.map((line) => line.value * scale)];
  const top = niceMax(Math.max(0, ...drawn));
  const lowest = Math.min(0, ...drawn);
  const bottom = lowest < 0 ? -niceMax(-lowest) : 0;
  const x = (t) => PAD.left + ((t - start) / span) * (WIDTH - PAD.left - PAD.right);
  const y = (v) => HEIGHT - PAD.bottom - ((v - bottom) / (top - bottom)) * (HEIGHT - PAD.top - PAD.bottom);

  const caption = document.createElement("figcaption");
  caption.textContent = spec.unit ? `${spec.title} (${spec.unit})` : spec.title;
  const chart = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img" });
  const axis = svg("g", { class: "axis" }, chart);
  for (const fraction of [0, 0.5, 1]) {
    const v = bottom + (top - bottom) * fraction;
    svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(v), y2: y(v) }, axis);
    svg("text", { x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end" }, axis).textContent = formatNumber(v);
  }
  svg("text", { x: PAD.left, y: HEIGHT - 6 }, axis).textContent = clockTime(start);
  svg("text", { x: WIDTH - PAD.right, y: HEIGHT - 6, "text-anchor": "end" }, axis).textContent = clockTime(now);
  for (const line of thresholds) {
    const at = y(line.value * scale);
    const attrs = { class: "threshold", x1: PAD.left, x2: WIDTH - PAD.right, y1: at, y2: at };
    svg("line", { ...attrs, stroke: line.color || "#e03131" }, chart);
  }

  let counted = 0;
  let highest = 0;
  const latest = [];
  spec.series.forEach((s, i) => {
    // A gap (no requests, so no latency) breaks the line instead of drawing a fake zero.
    let path = "";
    let pen = "M";
    for (const d of values[i]) {
      if (d.v === null) {
        pen = "M";
        continue;
      }
      path += `${pen}${x(d.t).toFixed(1)},${y(d.v).toFixed(1)} `;
      pen = "L";
    }
    const defined = values[i].filter((d) => d.v !== null);
    counted = Math.max(counted, defined.length);
    highest = Math.max(highest, ...defined.map((d) => d.v));
    if (defined.length === 1) {
      const only = defined[0];
      svg("circle", { cx: x(only.t), cy: y(only.v), r: 3, fill: s.color }, chart);
    }
    if (path) svg("path", { class: "series", d: path, stroke: s.color, "data-series": s.key }, chart);
    latest.push(`${s.name} ${defined.length ? formatNumber(defined[defined.length - 1].v) : "no data"}`);
  });
  chart.setAttribute("aria-label", `${spec.title} over the last ${Math.round(span)} s; latest: ${latest.join(", ")}`);

  const legend = document.createElement("ul");
  legend.className = "legend";
  for (const s of spec.series) {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = s.color;
    item.append(swatch, s.name);
    if (s.alert) {
      item.className = "alert";
      item.append(" \u26a0 above the threshold");
    }
    legend.append(item);
  }
  for (const line of thresholds) {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch dashed";
    swatch.style.borderColor = line.color || "#e03131";
    item.append(swatch, line.name);
    legend.append(item);
  }
  figure.replaceChildren(caption, chart, legend);
  figure.dataset.points = String(counted);
  figure.dataset.max = String(highest);
}

function lastDefined(points, key) {
  for (let i = points.length - 1; i >= 0; i--) if (points[i][key] !== null) return points[i][key];
  return null;
}

function showTiles(summary) {
  const points = summary.points;
  const last = points[points.length - 1];
  const p95 = lastDefined(points, "latency_p95_seconds");
  document.getElementById("now-rate").textContent = last ? formatNumber(last.request_rate) : "–";
  document.getElementById("now-p95").textContent = p95 === null ? "–" : `${formatNumber(p95 * 1000)} ms`;
  document.getElementById("now-batch").textContent = formatNumber(lastDefined(points, "batch_size_mean"));
  document.getElementById("now-queue").textContent = last ? formatNumber(last.queue_depth) : "–";
  document.getElementById("now-total").textContent = String(Math.round(summary.totals.requests));
}

let interval = 2000;

async function refresh() {
  try {
    const response = await apiFetch(SUMMARY_URL, { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const summary = await response.json();
    interval = Math.max(1000, summary.interval_seconds * 1000);
    for (const spec of CHARTS) drawChart(spec, summary.points, summary.history_seconds);
    showTiles(summary);
    showVersions(summary);
    showDrift(summary);
    showQuotas(summary);
    document.getElementById("updated").textContent =
      `Route ${summary.route}, one point every ${summary.interval_seconds} s · updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    document.getElementById("updated").textContent = `Could not read the metrics: ${error.message}`;
  } finally {
    setTimeout(refresh, interval);
  }
}

refresh();
