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
    const response = await fetch(PREDICT_URL, { method: "POST", body: form, signal: controller.signal });
    const body = await response.json();
    if (!response.ok) {
      const error = body.error || {};
      setStatus(`The gateway said ${response.status} ${error.code || ""}: ${error.message || "no details"}`);
      return;
    }
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
      row.setAttribute("aria-label", `${names[i]}: ${(p * 100).toFixed(1)} percent`);
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
  const response = await fetch("/v1/models/digits");
  card = await response.json();
  const accuracy = card.evaluation ? ` · test accuracy ${(card.evaluation.accuracy * 100).toFixed(2)}%` : "";
  document.getElementById("model-name").textContent = `${card.name} ${card.version}${accuracy} · ${card.serving.backend} on ${card.serving.device}`;
  buildFeatureFigures();
}

async function loadDiagram() {
  const response = await fetch("/v1/models/digits/diagram.svg");
  const svg = new DOMParser().parseFromString(await response.text(), "image/svg+xml").documentElement;
  if (svg.nodeName !== "svg") throw new Error("the diagram is not an SVG document");
  svg.setAttribute("aria-labelledby", "diagram-title");
  diagram.replaceChildren(document.importNode(svg, true));
}

clearPad();
Promise.all([loadCard(), loadDiagram()]).catch((error) => setStatus(`Could not load the model: ${error.message}`));
