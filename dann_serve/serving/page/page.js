// The server's web page: the models, their live monitor, and "try it". It calls the REST
// API as any client does; the only other route it uses is /ui/model-input (a file as the
// model sees it). No library, no build step, nothing from another origin.
"use strict";

const REFRESH_MS = 2000;
const HISTORY = 60; // points kept per chart line
const PEN_STEP = 14; // pixels per arrow key on the drawing pad
const history = new Map(); // "model/version" -> {accuracy: [], pValue: []}
const $ = (id) => document.getElementById(id);

// -- the REST API ----------------------------------------------------------------------

async function api(path, options) {
  const response = await fetch(path, options);
  let body;
  try {
    body = await response.json();
  } catch {
    throw new Error(`${path}: HTTP ${response.status}, not JSON`);
  }
  if (!response.ok) throw new Error(body.error || `${path}: HTTP ${response.status}`);
  return body;
}

function postJson(path, payload) {
  return api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(payload),
  });
}

function modelPath(model) {
  return `/v1/models/${encodeURIComponent(model)}`;
}

// -- small DOM and canvas helpers ------------------------------------------------------

function element(tag, text, className) {
  const made = document.createElement(tag);
  if (text !== undefined) made.textContent = text;
  if (className) made.className = className;
  return made;
}

function percent(value) {
  return value === null || value === undefined ? "–" : `${(100 * value).toFixed(1)} %`;
}

function canvas(width, height, label) {
  const made = element("canvas");
  made.width = width;
  made.height = height;
  made.setAttribute("role", "img");
  made.setAttribute("aria-label", label);
  return made;
}

// A line over [0, 1] of the last values (null: a gap) across the whole width, with a
// caption in its corner.
function drawLine(target, values, colour, caption) {
  const context = target.getContext("2d");
  const { width, height } = target;
  const top = 18; // below the caption
  const y = (value) => height - 3 - value * (height - 3 - top);
  context.clearRect(0, 0, width, height);
  context.strokeStyle = "#d0d7de";
  context.beginPath();
  context.moveTo(0, y(0.5));
  context.lineTo(width, y(0.5));
  context.stroke();
  context.strokeStyle = colour;
  context.lineWidth = 2;
  context.beginPath();
  let drawing = false;
  values.forEach((value, index) => {
    if (value === null || value === undefined) {
      drawing = false;
      return;
    }
    const x = values.length > 1 ? (index * (width - 4)) / (values.length - 1) + 2 : width / 2;
    if (drawing) context.lineTo(x, y(value));
    else context.moveTo(x, y(value));
    drawing = true;
  });
  context.stroke();
  context.fillStyle = "#5b6470";
  context.font = "11px system-ui, sans-serif";
  context.fillText(caption, 4, 12);
}

// Bars for values in [0, 1], one per class, the chosen one in the accent colour.
function drawBars(target, values, chosen) {
  const context = target.getContext("2d");
  const { width, height } = target;
  const slot = width / values.length;
  const top = 14;
  const bottom = height - 16;
  context.clearRect(0, 0, width, height);
  context.font = "11px system-ui, sans-serif";
  context.textAlign = "center";
  values.forEach((value, index) => {
    const barHeight = Math.max(1, value * (bottom - top));
    context.fillStyle = index === chosen ? "#1d3557" : "#8fa3b8";
    context.fillRect(index * slot + 3, bottom - barHeight, slot - 6, barHeight);
    context.fillStyle = "#1b1f24";
    context.fillText(String(index), index * slot + slot / 2, height - 3);
    if (value >= 0.01) {
      context.fillText(value.toFixed(2), index * slot + slot / 2, bottom - barHeight - 2);
    }
  });
}

// -- models ----------------------------------------------------------------------------

function labelsOf(model, version) {
  return Object.entries(model.labels)
    .filter(([, labelled]) => labelled === version)
    .map(([label]) => label)
    .join(", ");
}

function showModels(models) {
  const body = $("models").tBodies[0];
  body.replaceChildren();
  for (const model of models) {
    const rows = model.versions.length ? model.versions : [{ version: "–", state: "none yet" }];
    for (const version of rows) {
      const row = element("tr");
      row.append(element("th", model.name), element("td", String(version.version)));
      row.append(element("td", version.error ? `${version.state}: ${version.error}` : version.state));
      row.append(element("td", labelsOf(model, version.version)));
      row.firstChild.setAttribute("scope", "row");
      body.append(row);
    }
  }
  const select = $("model");
  const chosen = select.value;
  const names = models.map((model) => model.name);
  if (names.join("\n") !== Array.from(select.options, (option) => option.value).join("\n")) {
    select.replaceChildren(...names.map((name) => new Option(name, name)));
    if (names.includes(chosen)) select.value = chosen;
  }
  const available = models.reduce(
    (count, model) => count + model.versions.filter((v) => v.state === "AVAILABLE").length,
    0,
  );
  $("summary").textContent =
    `${models.length} model(s), ${available} version(s) available; ` +
    `read at ${new Date().toLocaleTimeString()}`;
}

// -- the live monitor ------------------------------------------------------------------

function remember(key, figures) {
  const kept = history.get(key) || { accuracy: [], pValue: [] };
  kept.accuracy.push(figures.estimated_accuracy);
  kept.pValue.push(figures.drift.p_value);
  for (const line of [kept.accuracy, kept.pValue]) line.splice(0, line.length - HISTORY);
  history.set(key, kept);
  return kept;
}

function figureList(figures) {
  const list = element("dl");
  const reliable = figures.estimate_reliable
    ? "reliable"
    : `not reliable${figures.unreliable_because.length ? `: ${figures.unreliable_because.join(", ")}` : ""}`;
  const drift = !figures.reference
    ? ["no reference", ""]
    : figures.drift.shifted
      ? ["shifted", "shifted"]
      : ["no shift found", "steady"];
  const rows = [
    ["images", `${figures.images} of ${figures.window}`],
    ["mean_confidence", percent(figures.mean_confidence)],
    ["estimated_accuracy", `${percent(figures.estimated_accuracy)} (${reliable})`],
    ["drift_p_value", figures.drift.p_value === null ? "–" : figures.drift.p_value.toPrecision(3)],
    ["drift", drift[0], drift[1]],
  ];
  const names = {
    images: "Images in window",
    mean_confidence: "Mean confidence",
    estimated_accuracy: "Estimated accuracy",
    drift_p_value: "Drift p-value",
    drift: "Drift verdict",
  };
  for (const [name, value, className] of rows) {
    const term = element("dt", names[name]);
    const detail = element("dd", value, className);
    detail.dataset.figure = name;
    list.append(term, detail);
  }
  return list;
}

function monitorCard(model, figures) {
  const card = element("article", undefined, "card");
  card.dataset.version = String(figures.version);
  card.append(element("h3", `${model} version ${figures.version}`), figureList(figures));
  const kept = remember(`${model}/${figures.version}`, figures);
  const accuracy = canvas(300, 80, "Estimated accuracy over the last refreshes");
  drawLine(accuracy, kept.accuracy, "#2a7d4f", "estimated accuracy (0–1)");
  const pValue = canvas(300, 80, "Drift p-value over the last refreshes");
  drawLine(pValue, kept.pValue, "#b42318", "drift p-value (0–1)");
  const shares = canvas(300, 90, "Share of each class in the window");
  drawBars(shares, figures.class_shares, -1);
  card.append(accuracy, pValue, shares, element("p", "Class shares in the window", "hint"));
  return card;
}

let monitorOff = false; // the server runs without one (--no-monitor): ask no more

async function refreshMonitor(model) {
  const panel = $("monitor");
  if (!model || monitorOff) {
    panel.replaceChildren();
    return;
  }
  try {
    const body = await api(`${modelPath(model)}/monitor`);
    panel.replaceChildren(...body.versions.map((figures) => monitorCard(model, figures)));
    $("monitor-status").textContent = body.versions.length ? "" : `No version of ${model} is served.`;
  } catch (error) {
    panel.replaceChildren();
    monitorOff = error.message.includes("--no-monitor");
    $("monitor-status").textContent = error.message;
  }
}

async function refresh() {
  try {
    const body = await api("/v1/models");
    showModels(body.models);
  } catch (error) {
    $("summary").textContent = `Cannot read the models: ${error.message}`;
  }
  await refreshMonitor($("model").value);
}

// The next refresh is asked for once this one is done, so that on a slow server they
// never overlap and the charts' points stay in order.
async function keepRefreshing() {
  await refresh();
  setTimeout(keepRefreshing, REFRESH_MS);
}

// -- try it ----------------------------------------------------------------------------

function blobToBase64(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(new Error("cannot read the file"));
    reader.readAsDataURL(blob);
  });
}

function showSeen(pixels) {
  const context = $("seen").getContext("2d");
  const image = context.createImageData(32, 32);
  pixels.flat().forEach((rgb, index) => {
    image.data.set([rgb[0], rgb[1], rgb[2], 255], index * 4);
  });
  context.putImageData(image, 0, 0);
}

function showAnswer(answer, domain) {
  $("label").textContent = String(answer.label);
  drawBars($("probabilities"), answer.probabilities, answer.label);
  $("probability-text").textContent = answer.probabilities
    .map((value, digit) => `${digit}: ${value.toFixed(3)}`)
    .join(", ");
  const side = domain.domain === 0 ? "source" : "target";
  $("domain").textContent =
    `${side} (source ${domain.probabilities[0].toFixed(3)}, target ${domain.probabilities[1].toFixed(3)})`;
}

async function tryImage(blob, what) {
  const model = $("model").value;
  const status = $("try-status");
  status.setAttribute("role", "status");
  if (!model) {
    status.textContent = "No model to ask yet.";
    return;
  }
  status.textContent = `Asking ${model} about ${what}…`;
  try {
    const b64 = await blobToBase64(blob);
    const [predicted, seen] = await Promise.all([
      postJson(`${modelPath(model)}:predict`, {
        signature_name: "predict_image",
        instances: [{ b64 }],
      }),
      api("/ui/model-input", { method: "POST", body: blob }),
    ]);
    showSeen(seen.pixels);
    const unit = seen.pixels.map((row) => row.map((rgb) => rgb.map((value) => value / 255)));
    const domain = await postJson(`${modelPath(model)}:predict`, {
      signature_name: "classify_domain",
      instances: [unit],
    });
    showAnswer(predicted.predictions[0], domain.predictions[0]);
    status.textContent = `${model} answered about ${what}.`;
  } catch (error) {
    status.setAttribute("role", "alert");
    status.textContent = `Error: ${error.message}`;
  }
}

// -- the drawing pad -------------------------------------------------------------------

function setUpPad() {
  const pad = $("pad");
  const context = pad.getContext("2d");
  const pen = { x: pad.width / 2, y: pad.height / 2, down: true };
  const clear = () => {
    context.fillStyle = "#000";
    context.fillRect(0, 0, pad.width, pad.height);
  };
  const line = (fromX, fromY, toX, toY) => {
    context.strokeStyle = "#fff";
    context.lineWidth = 22;
    context.lineCap = "round";
    context.beginPath();
    context.moveTo(fromX, fromY);
    context.lineTo(toX, toY);
    context.stroke();
  };
  const at = (event) => {
    const box = pad.getBoundingClientRect();
    return [
      ((event.clientX - box.left) * pad.width) / box.width,
      ((event.clientY - box.top) * pad.height) / box.height,
    ];
  };
  let last = null;
  pad.addEventListener("pointerdown", (event) => {
    pad.setPointerCapture(event.pointerId);
    last = at(event);
    line(...last, ...last);
  });
  pad.addEventListener("pointermove", (event) => {
    if (!last) return;
    const next = at(event);
    line(...last, ...next);
    last = next;
  });
  for (const name of ["pointerup", "pointercancel"]) {
    pad.addEventListener(name, () => {
      last = null;
    });
  }
  const moves = { ArrowUp: [0, -1], ArrowDown: [0, 1], ArrowLeft: [-1, 0], ArrowRight: [1, 0] };
  pad.addEventListener("keydown", (event) => {
    if (event.key === " ") pen.down = !pen.down;
    else if (event.key === "Enter") sendDrawing();
    else if (moves[event.key]) {
      const [dx, dy] = moves[event.key];
      const x = Math.min(pad.width, Math.max(0, pen.x + dx * PEN_STEP));
      const y = Math.min(pad.height, Math.max(0, pen.y + dy * PEN_STEP));
      if (pen.down) line(pen.x, pen.y, x, y);
      Object.assign(pen, { x, y });
    } else return;
    event.preventDefault();
  });
  clear();
  $("clear").addEventListener("click", clear);
}

function sendDrawing() {
  $("pad").toBlob((blob) => tryImage(blob, "the drawing"), "image/png");
}

function setUpFiles() {
  const pad = $("pad");
  $("send").addEventListener("click", sendDrawing);
  $("file").addEventListener("change", (event) => {
    const [file] = event.target.files;
    if (file) tryImage(file, file.name);
  });
  pad.addEventListener("dragover", (event) => {
    event.preventDefault();
    pad.classList.add("dragging");
  });
  pad.addEventListener("dragleave", () => pad.classList.remove("dragging"));
  pad.addEventListener("drop", (event) => {
    event.preventDefault();
    pad.classList.remove("dragging");
    const [file] = event.dataTransfer.files;
    if (file) tryImage(file, file.name);
  });
  document.addEventListener("paste", (event) => {
    const file = Array.from(event.clipboardData.files).find((f) => f.type.startsWith("image/"));
    if (!file) return;
    event.preventDefault();
    tryImage(file, "the pasted image");
  });
}

setUpPad();
setUpFiles();
$("model").addEventListener("change", () => refreshMonitor($("model").value));
keepRefreshing();
