// The draw-a-digit page: a drawing pad, /v1/predict on each stroke, probabilities, what the model saw
// (its input field, saliency and preprocessing steps), feature maps and the network diagram. Plain browser JavaScript, no build step, nothing loaded from elsewhere.
"use strict";

const PREDICT_URL = "/v1/predict?features=all&feature_format=png&top_k=3&explain=input,saliency,preprocessing";
const STAGE_NAMES = {
  grayscale: "as sent",
  polarity: "ink made bright",
  cropped: "cropped to the ink",
  scaled: "scaled to 20 px",
  centred: "centred by mass",
};
const STROKE_DEBOUNCE_MS = 200; // a stroke's end waits this long, so a quick second stroke sends once
const INK = "#111";
const PAPER = "#fff";

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const statusLine = document.getElementById("status");
const labelOut = document.getElementById("label");
const confidenceOut = document.getElementById("confidence");
const bars = document.getElementById("bars");
const features = document.getElementById("features");
const diagram = document.getElementById("diagram");
const fileInput = document.getElementById("file");
const seen = document.getElementById("seen");
const saliencyToggle = document.getElementById("saliency-toggle");
const stages = document.getElementById("stages");

let card = null;
let inFlight = null;
let pending = null;
let hasInk = false;
let uploaded = null; // the uploaded file, sent as is until the user draws over it
let explained = null; // the last prediction's explain object and label, redrawn when the toggle changes
let lastSent = null; // the image of the last prediction, sent again to open one of its channels
let inspected = null; // the open channel: its layer, maps, the layer's input and parameters, the pixel pointed at

function setStatus(text) {
  statusLine.textContent = text;
}

function clearPad() {
  ctx.fillStyle = PAPER;
  ctx.fillRect(0, 0, pad.width, pad.height);
  hasInk = false;
  uploaded = null;
}

// ---- drawing -------------------------------------------------------------------------------

function padPoint(event) {
  const box = pad.getBoundingClientRect();
  return {
    x: ((event.clientX - box.left) * pad.width) / box.width,
    y: ((event.clientY - box.top) * pad.height) / box.height,
  };
}

let drawing = false;
let last = null;

function strokeTo(point) {
  ctx.beginPath();
  ctx.moveTo(last.x, last.y);
  ctx.lineTo(point.x, point.y);
  ctx.stroke();
  last = point;
}

pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  clearTimeout(pending);
  drawing = true;
  hasInk = true;
  uploaded = null;
  ctx.strokeStyle = INK;
  ctx.lineWidth = pad.width / 13;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  last = padPoint(event);
  strokeTo(last);
});

pad.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const points = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const e of points.length ? points : [event]) strokeTo(padPoint(e));
});

function endStroke() {
  if (!drawing) return;
  drawing = false;
  clearTimeout(pending);
  pending = setTimeout(predictPad, STROKE_DEBOUNCE_MS);
}

pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

// ---- controls ------------------------------------------------------------------------------

document.getElementById("clear").addEventListener("click", () => {
  clearTimeout(pending);
  if (inFlight) inFlight.abort();
  clearPad();
  showEmpty();
  setStatus("Cleared. Draw a digit.");
});

document.getElementById("upload").addEventListener("click", () => fileInput.click());

fileInput.addEventListener("change", async () => {
  const file = fileInput.files[0];
  fileInput.value = "";
  if (!file) return;
  clearPad();
  try {
    const bitmap = await createImageBitmap(file);
    const scale = Math.min(pad.width / bitmap.width, pad.height / bitmap.height);
    const w = bitmap.width * scale;
    const h = bitmap.height * scale;
    ctx.drawImage(bitmap, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
  } catch {
    // The browser cannot show it (TIFF, say); the gateway may still read it.
  }
  hasInk = true;
  uploaded = file;
  predict(file, file.name);
});

document.getElementById("predict").addEventListener("click", () => {
  if (uploaded) predict(uploaded, uploaded.name);
  else predictPad();
});

// ---- prediction ----------------------------------------------------------------------------

function predictPad() {
  if (!hasInk) {
    setStatus("Draw a digit first.");
    return;
  }
  pad.toBlob((blob) => predict(blob, "digit.png"), "image/png");
}

async function predict(blob, name) {
  if (inFlight) inFlight.abort();
  const controller = new AbortController();
  inFlight = controller;
  const form = new FormData();
  form.append("file", blob, name);
  setStatus("Asking the model…");
  const started = performance.now();
  try {
    const response = await apiFetch(PREDICT_URL, { method: "POST", body: form, signal: controller.signal });
    const body = await response.json();
    if (!response.ok) {
      const error = body.error || {};
      setStatus(`The gateway said ${response.status} ${error.code || ""}: ${error.message || "no details"}`);
      return;
    }
    lastSent = { blob, name };
    showPrediction(body.predictions[0]);
    setStatus(`Predicted in ${Math.round(performance.now() - started)} ms by ${body.model.name} ${body.model.version}.`);
  } catch (error) {
    if (error.name !== "AbortError") setStatus(`Request failed: ${error.message}`);
  } finally {
    if (inFlight === controller) inFlight = null;
  }
}

function labels() {
  return card ? card.labels : ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
}

function showEmpty() {
  labelOut.textContent = "–";
  confidenceOut.textContent = "";
  bars.replaceChildren();
  for (const img of features.querySelectorAll("img")) {
    img.removeAttribute("src");
    img.hidden = true;
  }
  for (const node of diagram.querySelectorAll(".output.predicted")) node.classList.remove("predicted");
  explained = null;
  seen.getContext("2d").clearRect(0, 0, seen.width, seen.height);
  seen.setAttribute("aria-label", "No digit yet");
  delete seen.dataset.label;
  delete seen.dataset.salient;
  stages.replaceChildren();
  lastSent = null;
  inspected = null;
  inspectMap.width = inspectMap.height = 1;
  inspectMap.setAttribute("aria-label", "No channel open yet");
  inspectMath.replaceChildren();
}

function showPrediction(prediction) {
  const names = labels();
  const predicted = names[prediction.label];
  labelOut.textContent = predicted;
  confidenceOut.textContent = `${(prediction.confidence * 100).toFixed(1)}% sure`;
  bars.replaceChildren(
    ...prediction.probabilities.map((p, i) => {
      const row = document.createElement("li");
      row.className = "bar-row" + (i === prediction.label ? " predicted" : "");
      row.dataset.label = names[i];
      row.dataset.probability = String(p);
      const name = document.createElement("span");
      name.className = "bar-label";
      name.textContent = names[i];
      const track = document.createElement("span");
      track.className = "bar-track";
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.width = `${(p * 100).toFixed(2)}%`;
      track.append(bar);
      const value = document.createElement("span");
      value.className = "bar-value";
      value.textContent = `${(p * 100).toFixed(1)}%`;
      row.setAttribute("aria-label", `${names[i]}: ${(p * 100).toFixed(1)} percent; show where the model looked for it`);
      row.tabIndex = 0;
      row.addEventListener("click", () => explainClass(i));
      row.addEventListener("keydown", (event) => {
        if (event.key !== "Enter" && event.key !== " ") return;
        event.preventDefault();
        explainClass(i);
      });
      row.append(name, track, value);
      return row;
    }),
  );
  for (const [layer, map] of Object.entries(prediction.features || {})) {
    const img = document.getElementById(`maps-${layer}`);
    if (!img) continue;
    img.src = `data:image/png;base64,${map.data}`;
    img.alt = `${map.shape[0]} feature maps of ${layer}, ${map.shape[1]}×${map.shape[2]} each, in a ${map.grid.rows}×${map.grid.cols} grid`;
    img.hidden = false;
    img.grid = map.grid;
  }
  for (const node of diagram.querySelectorAll(".output")) {
    node.classList.toggle("predicted", node.dataset.label === predicted);
  }
  if (prediction.explain) {
    explained = { explain: prediction.explain, label: predicted };
    showStages(prediction.explain.preprocessing || []);
    showSeen().catch((error) => setStatus(`Could not draw what the model saw: ${error.message}`));
  }
}

// ---- what the model saw ---------------------------------------------------------------------

async function pixelsOf(encoded) {
  // A 28x28 grayscale PNG from the gateway, as its gray values (0-255).
  const image = new Image();
  image.src = `data:image/png;base64,${encoded.data}`;
  await image.decode();
  const canvas = document.createElement("canvas");
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  const rgba = context.getImageData(0, 0, canvas.width, canvas.height).data;
  return Uint8ClampedArray.from({ length: rgba.length / 4 }, (_, i) => rgba[i * 4]);
}

async function showSeen() {
  const shown = explained;
  const input = await pixelsOf(shown.explain.input);
  // Saliency PNG: 128 is 0, 255 and 1 the largest magnitude for and against the predicted digit.
  const saliency = saliencyToggle.checked ? await pixelsOf(shown.explain.saliency) : null;
  if (shown !== explained) return; // a newer prediction came in meanwhile
  const context = seen.getContext("2d");
  const picture = context.createImageData(seen.width, seen.height);
  let salient = 0;
  for (let i = 0; i < input.length; i++) {
    const gray = input[i];
    let [r, g, b] = [gray, gray, gray];
    if (saliency) {
      const s = (saliency[i] - 128) / 127;
      const alpha = Math.min(1, Math.abs(s) * 1.5);
      const [cr, cg, cb] = s > 0 ? [230, 40, 40] : [40, 110, 255];
      [r, g, b] = [r + (cr - r) * alpha, g + (cg - g) * alpha, b + (cb - b) * alpha];
      if (Math.abs(s) > 0.1) salient++;
    }
    picture.data.set([r, g, b, 255], i * 4);
  }
  context.putImageData(picture, 0, 0);
  seen.dataset.label = shown.label;
  seen.dataset.salient = String(salient);
  const overlay = saliency ? `, with ${salient} pixels that mattered most to the ${shown.label} highlighted` : "";
  seen.setAttribute("aria-label", `The 28 by 28 input the model saw${overlay}`);
}

function showStages(steps) {
  stages.replaceChildren(
    ...steps.map((step) => {
      const item = document.createElement("li");
      const figure = document.createElement("figure");
      const img = document.createElement("img");
      img.src = `data:image/png;base64,${step.data}`;
      const [height, width] = step.shape;
      img.alt = `${STAGE_NAMES[step.stage] || step.stage}: ${width}×${height}`;
      const caption = document.createElement("figcaption");
      caption.textContent = `${STAGE_NAMES[step.stage] || step.stage} · ${width}×${height}`;
      figure.append(img, caption);
      item.append(figure);
      item.dataset.stage = step.stage;
      return item;
    }),
  );
}

// ---- inside one channel: the map large, and the arithmetic of one of its pixels ----------------

const inspectForm = document.getElementById("inspect-form");
const inspectLayer = document.getElementById("inspect-layer");
const inspectChannel = document.getElementById("inspect-channel");
const inspectMap = document.getElementById("inspect-map");
const inspectMath = document.getElementById("inspect-math");

function floats(encoded) {
  const bytes = Uint8Array.from(atob(encoded.data), (c) => c.charCodeAt(0));
  return new Float32Array(bytes.buffer);
}

async function json(response) {
  const body = await response.json();
  if (!response.ok) throw new Error(`${response.status} ${(body.error && body.error.code) || ""}`);
  return body;
}

function openClickedChannel(layerName, img, event) {
  const grid = img.grid;
  if (!grid) return;
  const box = img.getBoundingClientRect();
  const px = ((event.clientX - box.left) * img.naturalWidth) / box.width;
  const py = ((event.clientY - box.top) * img.naturalHeight) / box.height;
  const col = Math.floor(px / (grid.tile_width + grid.gap));
  const row = Math.floor(py / (grid.tile_height + grid.gap));
  inspectLayer.value = layerName;
  inspectChannel.value = String(Math.min(row * grid.cols + col, grid.rows * grid.cols - 1));
  openChannel().then(() => inspectForm.scrollIntoView({ block: "start" }));
}

async function openChannel() {
  if (!lastSent) {
    setStatus("Draw a digit first, then open one of its channels.");
    return;
  }
  const names = card.layers.filter((layer) => layer.feature_map).map((layer) => layer.name);
  const layer = card.layers.find((row) => row.name === inspectLayer.value);
  const before = names[names.indexOf(layer.name) - 1] || null; // null: the layer reads the input field
  const form = new FormData();
  form.append("file", lastSent.blob, lastSent.name);
  const wanted = [before, layer.name].filter(Boolean).join(",");
  const url = `/v1/predict?features=${wanted}&feature_format=array&explain=input&top_k=1`;
  try {
    const [body, parameters] = await Promise.all([
      fetch(url, { method: "POST", body: form }).then(json),
      fetch(`/v1/models/digits/layers/${layer.name}`).then(json),
    ]);
    const prediction = body.predictions[0];
    const out = prediction.features[layer.name];
    const channel = Math.max(0, Math.min(Number(inspectChannel.value) || 0, out.shape[0] - 1));
    inspectChannel.value = String(channel);
    inspected = {
      layer, channel, parameters,
      out: { shape: out.shape, values: floats(out) },
      input: before ? { name: before, shape: prediction.features[before].shape, values: floats(prediction.features[before]) }
                    : { name: "input (normalized)", shape: [1, 28, 28], values: normalizedField(prediction.explain.input) },
      weight: parameters.weight ? floats(parameters.weight) : null,
      bias: parameters.bias ? floats(parameters.bias) : null,
      y: Math.floor(out.shape[1] / 2),
      x: Math.floor(out.shape[2] / 2),
    };
    drawInspectMap();
    showArithmetic();
  } catch (error) {
    setStatus(`Could not open the channel: ${error.message}`);
  }
}

function normalizedField(encoded) {
  // The card's normalization, in float32 steps as the server does it: (gray / 255 - mean) / std.
  const { mean, std } = card.input;
  return floats(encoded).map((gray) => Math.fround(Math.fround(gray * Math.fround(1 / 255)) - Math.fround(mean)) * Math.fround(1 / std));
}

function at(map, channel, y, x) {
  const [, height, width] = map.shape;
  if (y < 0 || x < 0 || y >= height || x >= width) return 0; // zero padding
  return map.values[(channel * height + y) * width + x];
}

function drawInspectMap() {
  const { out, channel, y, x } = inspected;
  const [, height, width] = out.shape;
  inspectMap.width = width;
  inspectMap.height = height;
  const values = out.values.subarray(channel * height * width, (channel + 1) * height * width);
  let low = Infinity;
  let high = -Infinity;
  for (const v of values) [low, high] = [Math.min(low, v), Math.max(high, v)];
  const context = inspectMap.getContext("2d");
  const picture = context.createImageData(width, height);
  values.forEach((v, i) => {
    const gray = high > low ? (255 * (v - low)) / (high - low) : 0;
    picture.data.set(i === y * width + x ? [240, 140, 0, 255] : [gray, gray, gray, 255], i * 4);
  });
  context.putImageData(picture, 0, 0);
  inspectMap.setAttribute("aria-label", `${inspected.layer.name} channel ${channel}, ${width}×${height}; pixel row ${y}, column ${x}`);
}

function table(rows, caption = "", className = () => "") {
  const element = document.createElement("table");
  if (caption) element.createCaption().textContent = caption;
  for (const [r, row] of rows.entries()) {
    const tr = element.insertRow();
    for (const [c, value] of row.entries()) {
      const td = tr.insertCell();
      td.textContent = typeof value === "number" ? value.toFixed(3) : value;
      td.className = className(r, c);
    }
  }
  return element;
}

function line(text, id, value) {
  const p = document.createElement("p");
  p.textContent = text;
  if (id) {
    p.id = id;
    p.dataset.value = String(value);
  }
  return p;
}

function showArithmetic() {
  const { layer, out, input, channel, y, x } = inspected;
  const k = layer.kernel_size;
  const [top, left] = [y * layer.stride - layer.padding, x * layer.stride - layer.padding];
  const served = at(out, channel, y, x);
  const where = `rows ${top}–${top + k - 1}, columns ${left}–${left + k - 1} of ${input.name}`;
  const parts = [line(`${layer.name} channel ${channel}, row ${y}, column ${x}: reads ${where}.`)];
  const grid = (channel_, f) => [...Array(k).keys()].map((ky) => [...Array(k).keys()].map((kx) => f(channel_, ky, kx)));
  let value;
  if (layer.kind === "conv") {
    const inputs = input.shape[0];
    const weight = (i, ky, kx) => inspected.weight[((channel * inputs + i) * k + ky) * k + kx];
    const product = (i, ky, kx) => weight(i, ky, kx) * at(input, i, top + ky, left + kx);
    const sums = [...Array(inputs).keys()].map((i) => grid(i, product).flat().reduce((a, b) => a + b, 0));
    const most = sums.reduce((best, s, i) => (Math.abs(s) > Math.abs(sums[best]) ? i : best), 0);
    parts.push(line(`Input channel ${most}${inputs > 1 ? ` (of ${inputs}, the largest contribution)` : ""}: its ${k}×${k} window, the kernel's weights, their products.`));
    const figures = document.createElement("div");
    figures.append(
      table(grid(most, (i, ky, kx) => at(input, i, top + ky, left + kx)), "input"),
      table(grid(most, weight), "× weights"),
      table(grid(most, product), "= products"),
    );
    parts.push(figures);
    if (inputs > 1) {
      const scroll = document.createElement("div");
      scroll.className = "scroll";
      scroll.append(table([["input channel", "Σ weight × input"], ...sums.map((s, i) => [String(i), s])]));
      parts.push(scroll);
    }
    const total = sums.reduce((a, b) => a + b, 0);
    const bias = inspected.bias[channel];
    value = Math.max(0, total + bias);
    parts.push(line(`Σ = ${total.toFixed(5)}; + bias ${bias.toFixed(5)} (batch norm folded in) = ${(total + bias).toFixed(5)}; ReLU →`));
  } else {
    const window = grid(channel, (i, ky, kx) => at(input, i, y * layer.stride + ky, x * layer.stride + kx));
    const flat = window.flat();
    const winner = flat.indexOf(Math.max(...flat));
    value = flat[winner];
    parts.push(line(`The ${k}×${k} window of ${input.name} channel ${channel}; the largest wins:`));
    parts.push(table(window, "window", (r, c) => (r * k + c === winner ? "winner" : "")));
  }
  const result = line(`computed ${value.toFixed(5)}`, "inspect-value", value);
  result.className = "result";
  parts.push(result, line(`served ${served.toFixed(5)} (difference ${Math.abs(value - served).toExponential(1)})`, "inspect-served", served));
  inspectMath.replaceChildren(...parts);
}

function pointAt(y, x) {
  if (!inspected) return;
  const [, height, width] = inspected.out.shape;
  inspected.y = Math.max(0, Math.min(height - 1, y));
  inspected.x = Math.max(0, Math.min(width - 1, x));
  drawInspectMap();
  showArithmetic();
}

inspectMap.addEventListener("pointermove", (event) => {
  if (!inspected) return;
  const box = inspectMap.getBoundingClientRect();
  const [, height, width] = inspected.out.shape;
  const y = Math.floor(((event.clientY - box.top) * height) / box.height);
  const x = Math.floor(((event.clientX - box.left) * width) / box.width);
  if (y !== inspected.y || x !== inspected.x) pointAt(y, x);
});

inspectMap.addEventListener("keydown", (event) => {
  const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
  if (!inspected || !moves[event.key]) return;
  event.preventDefault();
  pointAt(inspected.y + moves[event.key][0], inspected.x + moves[event.key][1]);
});

inspectForm.addEventListener("submit", (event) => {
  event.preventDefault();
  openChannel();
});

// ---- the model: reliability diagram, accuracy per digit, confusion matrix -----------------------

const SVG = "http://www.w3.org/2000/svg";

function svgElement(name, attributes) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  return element;
}

function reliabilityDiagram(calibration) {
  // Confidence on x, accuracy on y, both 0-1; a bar per non-empty bin, its gap to the diagonal in red.
  const [size, margin] = [240, 28];
  const scale = size - 2 * margin;
  const px = (v) => margin + v * scale;
  const py = (v) => size - margin - v * scale;
  const svg = svgElement("svg", { viewBox: `0 0 ${size} ${size}`, role: "img" });
  const filled = calibration.reliability.filter((bin) => bin.count > 0);
  for (const bin of filled) {
    const [x, width] = [px(bin.lower), (bin.upper - bin.lower) * scale];
    const bar = svgElement("rect", { class: "reliability-bar", x, width, y: py(bin.accuracy), height: py(0) - py(bin.accuracy) });
    const title = svgElement("title", {});
    title.textContent = `${bin.count} digits with confidence ${bin.lower.toFixed(2)}–${bin.upper.toFixed(2)}: mean ${(bin.mean_confidence * 100).toFixed(1)}%, accuracy ${(bin.accuracy * 100).toFixed(1)}%`;
    bar.append(title);
    const [high, low] = [Math.max(bin.accuracy, bin.mean_confidence), Math.min(bin.accuracy, bin.mean_confidence)];
    svg.append(bar, svgElement("rect", { class: "reliability-gap", x, width, y: py(high), height: py(low) - py(high), opacity: 0.7 }));
  }
  svg.append(
    svgElement("line", { class: "reliability-ideal", x1: px(0), y1: py(0), x2: px(1), y2: py(1) }),
    svgElement("line", { class: "reliability-axis", x1: px(0), y1: py(0), x2: px(1), y2: py(0) }),
    svgElement("line", { class: "reliability-axis", x1: px(0), y1: py(0), x2: px(0), y2: py(1) }),
  );
  for (const [text, x, y] of [["confidence", size / 2, size - 6], ["0", px(0), size - 14], ["1", px(1), size - 14]]) {
    const label = svgElement("text", { x, y, "text-anchor": "middle", "font-size": 11 });
    label.textContent = text;
    svg.append(label);
  }
  const axis = svgElement("text", { x: 12, y: size / 2, "text-anchor": "middle", "font-size": 11, transform: `rotate(-90 12 ${size / 2})` });
  axis.textContent = "accuracy";
  svg.append(axis);
  svg.setAttribute("aria-label", `Reliability diagram: ${filled.length} bins with digits; expected calibration error ${(calibration.ece * 100).toFixed(2)}%`);
  svg.dataset.bins = String(filled.length);
  return svg;
}

function showModelPanel() {
  const names = labels();
  const calibration = card.evaluation.calibration;
  const reliability = document.getElementById("reliability");
  const note = document.createElement("p");
  note.className = "muted";
  note.textContent = calibration
    ? `Expected calibration error ${(calibration.ece * 100).toFixed(2)}%: the red gaps between each bin's confidence and its accuracy, weighted by how many digits fall in it.`
    : "This model's card carries no calibration figures.";
  reliability.replaceChildren(reliability.querySelector("figcaption"), ...(calibration ? [reliabilityDiagram(calibration)] : []), note);

  const perClass = document.getElementById("per-class");
  perClass.replaceChildren(
    perClass.querySelector("figcaption"),
    table(card.evaluation.per_class_accuracy.map((accuracy, i) => [names[i], `${(accuracy * 100).toFixed(2)}%`])),
  );

  const confusion = document.getElementById("confusion");
  const matrix = card.evaluation.confusion_matrix;
  confusion.replaceChildren(
    confusion.querySelector("figcaption"),
    table([["", ...names], ...matrix.map((row, i) => [names[i], ...row.map(String)])], "", (r, c) => {
      if (r === 0 || c === 0) return "";
      if (r === c) return "diagonal";
      return matrix[r - 1][c - 1] > 0 ? "error" : "";
    }),
  );
}

async function explainClass(index) {
  // The saliency of another digit than the predicted one, for the same image.
  if (!lastSent || !explained) return;
  const form = new FormData();
  form.append("file", lastSent.blob, lastSent.name);
  const url = `/v1/predict?explain=saliency&saliency_label=${index}&feature_format=png&top_k=1`;
  try {
    const body = await fetch(url, { method: "POST", body: form }).then(json);
    explained = { explain: { ...explained.explain, saliency: body.predictions[0].explain.saliency }, label: labels()[index] };
    for (const row of bars.children) row.classList.toggle("explained", row.dataset.label === labels()[index]);
    await showSeen();
  } catch (error) {
    setStatus(`Could not explain ${labels()[index]}: ${error.message}`);
  }
}

saliencyToggle.addEventListener("change", () => {
  if (explained) showSeen().catch((error) => setStatus(`Could not draw what the model saw: ${error.message}`));
});

// ---- the model card, the diagram and the feature-map figures --------------------------------

function layerCaption(layer) {
  const kind = layer.kind === "maxpool" ? "max pool" : layer.kind;
  const kernel = layer.kernel_size ? ` ${layer.kernel_size}×${layer.kernel_size}, stride ${layer.stride}, padding ${layer.padding}` : "";
  return `${kind}${kernel} → ${layer.output_shape.join("×")}`;
}

function buildFeatureFigures() {
  features.replaceChildren(
    ...card.layers
      .filter((layer) => layer.feature_map)
      .map((layer) => {
        const figure = document.createElement("figure");
        figure.className = "feature-map";
        figure.id = `features-${layer.name}`;
        figure.tabIndex = -1;
        const img = document.createElement("img");
        img.id = `maps-${layer.name}`;
        img.className = "maps";
        img.hidden = true;
        img.alt = "";
        img.classList.add("inspectable");
        img.addEventListener("click", (event) => openClickedChannel(layer.name, img, event));
        const caption = document.createElement("figcaption");
        const title = document.createElement("strong");
        title.textContent = layer.name;
        const back = document.createElement("a");
        back.href = `#stage-${layer.name}`;
        back.className = "back";
        back.textContent = "in the diagram ↑";
        caption.append(title, ` ${layerCaption(layer)} `, back);
        figure.append(caption, img);
        return figure;
      }),
  );
}

async function loadCard() {
  const response = await apiFetch("/v1/models/digits");
  card = await response.json();
  const accuracy = card.evaluation ? ` · test accuracy ${(card.evaluation.accuracy * 100).toFixed(2)}%` : "";
  document.getElementById("model-name").textContent = `${card.name} ${card.version}${accuracy} · ${card.serving.backend} on ${card.serving.device}`;
  buildFeatureFigures();
  showModelPanel();
  inspectLayer.replaceChildren(
    ...card.layers.filter((layer) => layer.feature_map).map((layer) => new Option(layer.name, layer.name)),
  );
}

async function loadDiagram() {
  const response = await apiFetch("/v1/models/digits/diagram.svg");
  const svg = new DOMParser().parseFromString(await response.text(), "image/svg+xml").documentElement;
  if (svg.nodeName !== "svg") throw new Error("the diagram is not an SVG document");
  svg.setAttribute("aria-labelledby", "diagram-title");
  diagram.replaceChildren(document.importNode(svg, true));
}

clearPad();
Promise.all([loadCard(), loadDiagram()]).catch((error) => setStatus(`Could not load the model: ${error.message}`));
