// The dashboard's drift and quota panels, drawn with dashboard.js's drawChart from the same summary.
"use strict";

const PALETTE = ["#3b5bdb", "#e03131", "#2b8a3e", "#f08c00", "#7048e8", "#1098ad", "#868e96", "#d6336c", "#5c940d"];

function colorOf(index) {
  return PALETTE[index % PALETTE.length];
}

function idPart(text) {
  return text.replace(/[^A-Za-z0-9_-]/g, "_");
}

function newFigure(id, data = {}) {
  const figure = document.createElement("figure");
  figure.className = "chart";
  figure.id = id;
  Object.assign(figure.dataset, { points: "0", ...data });
  return figure;
}

function paragraph(text, className) {
  const p = document.createElement("p");
  p.className = className;
  p.textContent = text;
  return p;
}

// Names seen in any point, in the order first seen.
function namesIn(points, read) {
  const names = new Set();
  for (const point of points) for (const name of Object.keys(read(point) || {})) names.add(name);
  return [...names];
}

function showDrift(summary) {
  const drift = summary.drift;
  const note = document.getElementById("drift-note");
  const charts = document.getElementById("drift-charts");
  charts.dataset.state = drift.enabled ? "on" : "off";
  if (!drift.enabled) {
    note.textContent = `Drift monitoring is off: to turn it on, ${drift.how_to_enable}.`;
    charts.replaceChildren();
    return;
  }
  note.textContent =
    `Each score is the population stability index (PSI) of one statistic over a sliding window of the last ` +
    `${drift.window_images} images (per worker) against the model card's training baseline, scored every ` +
    `${drift.refresh_seconds} s. Above ${drift.alert_psi} (the dashed line), with at least ` +
    `${drift.alert_min_images} images in the window, a statistic is an alert.`;
  const points = summary.points;
  const last = points[points.length - 1];
  const versions = last ? Object.keys(last.drift) : [];
  if (!versions.length) {
    const why = last ? "no served model version has a drift baseline in its card" : "no reading yet";
    charts.replaceChildren(paragraph(`No data yet: ${why}.`, "no-data"));
    return;
  }
  const figures = [];
  const draw = [];
  for (const version of versions) {
    const reading = last.drift[version];
    const id = idPart(version);
    const latest = Math.max(0, ...Object.values(reading.scores));
    const data = { version, alerts: reading.alerts.join(","), images: reading.window_images, latest };
    const scores = newFigure(`chart-drift-${id}`, data);
    figures.push(scores);
    if (!reading.window_images) {
      const caption = document.createElement("figcaption");
      caption.textContent = `Model ${version}: drift score (PSI) by statistic`;
      scores.dataset.state = "no-data";
      scores.append(caption, paragraph("No data yet: the window has no scored image.", "no-data"));
      continue;
    }
    const ofVersion = points.filter((p) => p.drift[version] && p.drift[version].window_images);
    const statistics = namesIn(ofVersion, (p) => p.drift[version].scores);
    const scoreSpec = {
      title: `Model ${version}: drift score (PSI) by statistic, ${Math.round(reading.window_images)} images in the window`,
      unit: "",
      thresholds: [{ value: drift.alert_psi, name: `alert above ${drift.alert_psi}` }],
      series: statistics.map((name, i) => ({
        name,
        color: colorOf(i),
        value: (p) => (p.drift[version] ? (p.drift[version].scores[name] ?? null) : null),
        alert: reading.alerts.includes(name),
      })),
    };
    draw.push(() => {
      drawChart(scoreSpec, ofVersion, summary.history_seconds, scores);
      scores.dataset.state = reading.alerts.length ? "alert" : "ok";
      if (reading.alerts.length) {
        const alert = paragraph(
          `Alert: PSI above ${drift.alert_psi} on ${reading.alerts.join(", ")}.`,
          "alert",
        );
        alert.setAttribute("role", "alert");
        scores.insertBefore(alert, scores.children[1]);
      }
    });
    if (reading.confidence_drop !== null) {
      const confidence = newFigure(`chart-confidence-${id}`, { version });
      figures.push(confidence);
      const spec = {
        title:
          `Model ${version}: top-1 confidence drop, baseline mean ${formatNumber(reading.confidence_baseline_mean * 100)} % ` +
          `− window mean ${formatNumber(reading.confidence_window_mean * 100)} %`,
        unit: "percentage points",
        scale: 100,
        series: [
          {
            name: "drop",
            color: "#e03131",
            value: (p) => (p.drift[version] ? p.drift[version].confidence_drop : null),
          },
        ],
      };
      draw.push(() => drawChart(spec, ofVersion, summary.history_seconds, confidence));
    }
  }
  charts.replaceChildren(...figures);
  for (const step of draw) step();
}

function quotaText(key) {
  const rates = [];
  if (key.requests_per_second) rates.push(`${key.requests_per_second} requests/s`);
  if (key.images_per_second) rates.push(`${key.images_per_second} images/s`);
  return `${key.name}: ${rates.join(", ")}`;
}

function showQuotas(summary) {
  const quotas = summary.quotas;
  const note = document.getElementById("quota-note");
  const charts = document.getElementById("quota-charts");
  if (!quotas.keys_file) {
    charts.dataset.state = "no-keys";
    note.textContent =
      "No API keys file is configured (DIGITS_API_KEYS_FILE): callers need no key, so there is no quota to chart.";
    charts.replaceChildren();
    return;
  }
  const limited = quotas.keys.filter((key) => key.requests_per_second || key.images_per_second);
  charts.dataset.state = limited.length ? "quotas" : "no-quotas";
  note.textContent = limited.length
    ? `Quotas by key name: ${limited.map(quotaText).join("; ")}. Other keys are unlimited.`
    : "No key in the API keys file has a quota (rps= or ips= on its line): every key is unlimited.";
  const points = summary.points;
  const names = namesIn(points, (p) => ({ ...p.keys.requests, ...p.keys.images, ...p.keys.refusals }));
  const perKey = (field) =>
    names.map((name, i) => ({ name, color: colorOf(i), value: (p) => p.keys[field][name] ?? 0 }));
  const refused = [];
  for (const name of namesIn(points, (p) => p.keys.refusals)) {
    for (const quota of namesIn(points, (p) => p.keys.refusals[name])) refused.push([name, quota]);
  }
  const limits = (field) =>
    quotas.keys
      .filter((key) => key[field])
      .map((key) => ({ value: key[field], name: `${key.name}'s quota`, color: colorOf(names.indexOf(key.name)) }));
  const specs = [
    {
      id: "chart-key-requests",
      title: "Requests admitted by API key",
      unit: "req/s",
      series: perKey("admitted"),
      thresholds: limits("requests_per_second"),
    },
    {
      id: "chart-key-images",
      title: "Images admitted by API key",
      unit: "images/s",
      series: perKey("images"),
      thresholds: limits("images_per_second"),
    },
    {
      id: "chart-quota-refusals",
      title: "Refused with 429 by API key and quota",
      unit: "req/s",
      series: refused.map(([name, quota], i) => ({
        name: `${name} (${quota})`,
        color: colorOf(i + 1),
        value: (p) => (p.keys.refusals[name] ? (p.keys.refusals[name][quota] ?? 0) : 0),
      })),
    },
  ];
  const figures = specs.map((spec) => newFigure(spec.id));
  charts.replaceChildren(...figures);
  specs.forEach((spec, i) => drawChart(spec, points, summary.history_seconds, figures[i]));
}
