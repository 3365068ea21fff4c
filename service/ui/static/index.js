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
  hideReceptiveField();
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
const inspectViews = document.getElementById("inspect-views");
const inspectWindow = document.getElementById("inspect-window");
const inspectWindowCaption = document.getElementById("inspect-window-caption");
const inspectField = document.getElementById("inspect-field");
const inspectFieldCaption = document.getElementById("inspect-field-caption");
const seenField = document.getElementById("seen-field");
const seenBox = document.getElementById("seen-field-box");
const seenFieldText = document.getElementById("seen-field-text");

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
  const mapped = card.layers.filter((row) => row.feature_map); // the convolutions and poolings, in order
  const index = mapped.findIndex((row) => row.name === inspectLayer.value);
  const layer = mapped[index];
  const before = index > 0 ? mapped[index - 1].name : null; // null: the layer reads the input field
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
      chain: mapped.slice(0, index + 1), // every convolution and pooling from the input up to this layer
      field: { shape: card.input.shape, values: floats(prediction.explain.input) }, // the 28x28 field, 0-255
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

function at(map, channel, y, x, outside = 0) {
  // One value of a [C, H, W] map; outside it, `outside` (0: the zero padding of a convolution).
  const [, height, width] = map.shape;
  if (y < 0 || x < 0 || y >= height || x >= width) return outside;
  return map.values[(channel * height + y) * width + x];
}

// ---- where a pixel looks: its window in the layer's input, its receptive field in the network's input ----

function windowOf(layer, y, x) {
  // The rows and columns of the layer's input that output pixel (y, x) reads; padding lies outside 0..size-1.
  const [top, left] = [y * layer.stride - layer.padding, x * layer.stride - layer.padding];
  return { top, left, bottom: top + layer.kernel_size - 1, right: left + layer.kernel_size - 1 };
}

function receptiveField(chain, y, x) {
  // Back through every convolution and pooling up to this layer (the last of `chain`): each maps the span
  // [a, b] of its output to [a·s − p, b·s − p + k − 1] of its input. Clipped to the field afterwards.
  let box = { top: y, left: x, bottom: y, right: x };
  for (const layer of [...chain].reverse()) {
    const [first, last] = [windowOf(layer, box.top, box.left), windowOf(layer, box.bottom, box.right)];
    box = { top: first.top, left: first.left, bottom: last.bottom, right: last.right };
  }
  return box;
}

function clipped(box, height, width) {
  return {
    top: Math.max(0, box.top), left: Math.max(0, box.left),
    bottom: Math.min(height - 1, box.bottom), right: Math.min(width - 1, box.right),
  };
}

function inside(height, width) {
  return (y, x) => y >= 0 && x >= 0 && y < height && x < width;
}

function span(first, last) {
  // "3", "3–5", or with a negative end "-2 to 2", which a dash would make hard to read.
  if (first === last) return `${first}`;
  return first < 0 ? `${first} to ${last}` : `${first}–${last}`;
}

function spanText(box) {
  return `rows ${span(box.top, box.bottom)}, columns ${span(box.left, box.right)}`;
}

function outsideText(first, last, size) {
  // The part of first..last outside 0..size-1, in words: "-2 to -1", "14" or "" (a window always overlaps its input).
  return [first < 0 ? span(first, -1) : "", last >= size ? span(size, last) : ""].filter(Boolean).join(" and ");
}

function paddingText(box, height, width) {
  // Which of the window's rows and columns are padding, in words ("" when none are).
  const rows = outsideText(box.top, box.bottom, height);
  const columns = outsideText(box.left, box.right, width);
  const parts = [rows && `rows ${rows}`, columns && `columns ${columns}`].filter(Boolean);
  return parts.length ? ` (${parts.join(" and ")}: padding)` : "";
}

const OUTLINE = [240, 140, 0]; // the window and receptive-field outlines (the page's focus orange)
const PADDING = [64, 96, 160]; // zero padding around a layer's input
const VIEW_PIXELS = 168; // the views' size on screen, at most

function drawPlane(canvas, plane, margin, box) {
  // One channel (`plane`: height, width, value(y, x)) scaled up, gray from its lowest to its highest value, with
  // `margin` pixels of padding drawn around it and `box` (in the channel's coordinates) outlined.
  const { height, width } = plane;
  const scale = Math.max(2, Math.floor(VIEW_PIXELS / (Math.max(height, width) + 2 * margin)));
  canvas.width = (width + 2 * margin) * scale;
  canvas.height = (height + 2 * margin) * scale;
  Object.assign(canvas.dataset, { scale: String(scale), margin: String(margin) });
  let [low, high] = [Infinity, -Infinity];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) [low, high] = [Math.min(low, plane.value(y, x)), Math.max(high, plane.value(y, x))];
  }
  const context = canvas.getContext("2d");
  context.fillStyle = `rgb(${PADDING.join(",")})`;
  context.fillRect(0, 0, canvas.width, canvas.height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const gray = high > low ? Math.round((255 * (plane.value(y, x) - low)) / (high - low)) : 0;
      context.fillStyle = `rgb(${gray},${gray},${gray})`;
      context.fillRect((x + margin) * scale, (y + margin) * scale, scale, scale);
    }
  }
  outline(context, (box.left + margin) * scale, (box.top + margin) * scale,
    (box.right - box.left + 1) * scale, (box.bottom - box.top + 1) * scale, Math.max(1, Math.min(3, Math.floor(scale / 3))));
}

function outline(context, x, y, width, height, thickness) {
  // Four filled bands just inside the box: crisp pixels of exactly OUTLINE, whatever the scale.
  context.fillStyle = `rgb(${OUTLINE.join(",")})`;
  context.fillRect(x, y, width, thickness);
  context.fillRect(x, y + height - thickness, width, thickness);
  context.fillRect(x, y, thickness, height);
  context.fillRect(x + width - thickness, y, thickness, height);
}

function planeOf(map, channel) {
  const [, height, width] = map.shape;
  return { height, width, value: (y, x) => at(map, channel, y, x) };
}

function showWindow(inputChannel, box) {
  // The layer's input channel the arithmetic shows, its padding around it, the window outlined.
  const { layer, input } = inspected;
  const [, height, width] = input.shape;
  const margin = layer.kind === "conv" ? layer.padding : 0;
  drawPlane(inspectWindow, planeOf(input, inputChannel), margin, box);
  Object.assign(inspectWindow.dataset, { top: box.top, left: box.left, bottom: box.bottom, right: box.right });
  const channelText = input.shape[0] > 1 ? ` channel ${inputChannel}` : "";
  const text = `${input.name}${channelText}, ${width}×${height}: ${layer.name} reads ${spanText(box)}${paddingText(box, height, width)}`;
  inspectWindowCaption.textContent = text;
  inspectWindow.setAttribute("aria-label", text);
}

function showReceptiveField() {
  // This pixel's receptive field in the network's input, on a copy of the field and on "What the model saw".
  const { chain, field, y, x } = inspected;
  const [, height, width] = card.input.shape;
  const full = receptiveField(chain, y, x);
  const box = clipped(full, height, width);
  drawPlane(inspectField, planeOf(field, 0), 0, box);
  Object.assign(inspectField.dataset, { top: box.top, left: box.left, bottom: box.bottom, right: box.right });
  const size = `${box.bottom - box.top + 1}×${box.right - box.left + 1}`;
  const cut = full.top < box.top || full.left < box.left || full.bottom > box.bottom || full.right > box.right
    ? `, cut from ${full.bottom - full.top + 1}×${full.right - full.left + 1} by the edge` : "";
  const text = `Receptive field of ${inspected.layer.name} row ${y}, column ${x} in the ${width}×${height} input: ${spanText(box)} (${size} pixels${cut})`;
  inspectFieldCaption.textContent = text;
  inspectField.setAttribute("aria-label", text);
  seenBox.setAttribute("x", String(box.left));
  seenBox.setAttribute("y", String(box.top));
  seenBox.setAttribute("width", String(box.right - box.left + 1));
  seenBox.setAttribute("height", String(box.bottom - box.top + 1));
  Object.assign(seenField.dataset, { top: box.top, left: box.left, bottom: box.bottom, right: box.right });
  seenField.hidden = false;
  seenFieldText.textContent = text;
  inspectViews.hidden = false;
  return text;
}

function hideReceptiveField() {
  seenField.hidden = true;
  inspectViews.hidden = true;
  seenFieldText.textContent = "";
  for (const [canvas, caption] of [[inspectWindow, inspectWindowCaption], [inspectField, inspectFieldCaption]]) {
    canvas.width = canvas.height = 1;
    canvas.setAttribute("aria-label", "No pixel pointed at yet");
    for (const key of ["top", "left", "bottom", "right", "scale", "margin"]) delete canvas.dataset[key];
    caption.textContent = "";
  }
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
    picture.data.set(i === y * width + x ? [...OUTLINE, 255] : [gray, gray, gray, 255], i * 4);
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
      td.textContent = typeof value === "number" ? (Number.isFinite(value) ? value.toFixed(3) : "−∞") : value;
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

function kernelGrid(k, f) {
  // A k×k table's rows: f(ky, kx) for every kernel position.
  return [...Array(k).keys()].map((ky) => [...Array(k).keys()].map((kx) => f(ky, kx)));
}

function convArithmetic(box) {
  // Every input channel's Σ weight × input over the window (zero padding outside the input), the channel that
  // contributes most written out, then + bias (batch norm folded in) and ReLU.
  const { layer, input, channel } = inspected;
  const k = layer.kernel_size;
  const [inputs, height, width] = input.shape;
  const valid = inside(height, width);
  const padding = (r, c) => (valid(box.top + r, box.left + c) ? "" : "padding");
  const weight = (i, ky, kx) => inspected.weight[((channel * inputs + i) * k + ky) * k + kx];
  const product = (i, ky, kx) => weight(i, ky, kx) * at(input, i, box.top + ky, box.left + kx);
  const sums = [...Array(inputs).keys()].map((i) => kernelGrid(k, (ky, kx) => product(i, ky, kx)).flat().reduce((a, b) => a + b, 0));
  const most = sums.reduce((best, s, i) => (Math.abs(s) > Math.abs(sums[best]) ? i : best), 0);
  const padded = paddingText(box, height, width) ? " (zero padding in blue)" : "";
  const parts = [line(`Input channel ${most}${inputs > 1 ? ` (of ${inputs}, the largest contribution)` : ""}: its ${k}×${k} window${padded}, the kernel's weights, their products.`)];
  const figures = document.createElement("div");
  figures.className = "tables";
  figures.append(
    table(kernelGrid(k, (ky, kx) => at(input, most, box.top + ky, box.left + kx)), "input", padding),
    table(kernelGrid(k, (ky, kx) => weight(most, ky, kx)), "× weights"),
    table(kernelGrid(k, (ky, kx) => product(most, ky, kx)), "= products", padding),
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
  parts.push(line(`Σ = ${total.toFixed(5)}; + bias ${bias.toFixed(5)} (batch norm folded in) = ${(total + bias).toFixed(5)}; ReLU →`));
  return { parts, value: Math.max(0, total + bias), shown: most };
}

function poolArithmetic(box) {
  // The window of the same channel (positions outside the input never win) and which element won.
  const { layer, input, channel } = inspected;
  const k = layer.kernel_size;
  const [, height, width] = input.shape;
  const valid = inside(height, width);
  const window = kernelGrid(k, (ky, kx) => at(input, channel, box.top + ky, box.left + kx, -Infinity));
  const flat = window.flat();
  const winner = flat.indexOf(Math.max(...flat));
  const className = (r, c) => (r * k + c === winner ? "winner" : valid(box.top + r, box.left + c) ? "" : "padding");
  const parts = [
    line(`The ${k}×${k} window of ${input.name} channel ${channel}, stride ${layer.stride}; the largest wins:`),
    table(window, "window", className),
  ];
  return { parts, value: flat[winner], shown: channel };
}

function showArithmetic() {
  const { layer, out, input, channel, y, x } = inspected;
  const served = at(out, channel, y, x);
  const box = windowOf(layer, y, x);
  const [, height, width] = input.shape;
  const where = `${spanText(box)} of ${input.name}${paddingText(box, height, width)}`;
  const { parts, value, shown } = layer.kind === "conv" ? convArithmetic(box) : poolArithmetic(box);
  showWindow(shown, box);
  const field = showReceptiveField();
  const result = line(`computed ${value.toFixed(5)}`, "inspect-value", value);
  result.className = "result";
  inspectMath.replaceChildren(
    line(`${layer.name} channel ${channel}, row ${y}, column ${x}: reads ${where}.`),
    line(`${field}.`),
    ...parts,
    result,
    line(`served ${served.toFixed(5)} (difference ${Math.abs(value - served).toExponential(1)})`, "inspect-served", served),
  );
}

function pointAt(y, x) {
  if (!inspected) return;
  const [, height, width] = inspected.out.shape;
  inspected.y = Math.max(0, Math.min(height - 1, y));
  inspected.x = Math.max(0, Math.min(width - 1, x));
  drawInspectMap();
  showArithmetic();
}

function pointAtEvent(event) {
  if (!inspected) return;
  const box = inspectMap.getBoundingClientRect();
  const [, height, width] = inspected.out.shape;
  const y = Math.floor(((event.clientY - box.top) * height) / box.height);
  const x = Math.floor(((event.clientX - box.left) * width) / box.width);
  if (y !== inspected.y || x !== inspected.x) pointAt(y, x);
}

inspectMap.addEventListener("pointermove", pointAtEvent);
inspectMap.addEventListener("pointerdown", pointAtEvent); // a tap, on a touch screen

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
