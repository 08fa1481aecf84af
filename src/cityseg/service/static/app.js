// cityseg web page: upload or pick a test sample, show the mask, overlay and legend.
// Plain browser JavaScript, no build step; every request goes to this same server.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { categories: [], image: null, mask: null, gt: null };

function apiHeaders() {
  const key = $("api-key").value || sessionStorage.getItem("cityseg-api-key") || "";
  return key ? { "X-API-Key": key } : {};
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...apiHeaders(), ...(options.headers || {}) } });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    if (response.status === 401) $("key-box").open = true;
    const error = new Error(`${response.status}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
    error.status = response.status;
    throw error;
  }
  return response;
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("the browser cannot display this image"));
    img.src = src;
  });
}

async function loadBlobImage(path) {
  const blob = await (await api(path)).blob();
  return loadImage(URL.createObjectURL(blob));
}

// Category ids (the red channel of a one-channel PNG) -> palette colours.
function colourise(maskImg) {
  const canvas = document.createElement("canvas");
  canvas.width = maskImg.naturalWidth;
  canvas.height = maskImg.naturalHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(maskImg, 0, 0);
  const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const data = pixels.data;
  for (let i = 0; i < data.length; i += 4) {
    const colour = (state.categories[data[i]] || { color: [255, 0, 255] }).color;
    data[i] = colour[0]; data[i + 1] = colour[1]; data[i + 2] = colour[2]; data[i + 3] = 255;
  }
  ctx.putImageData(pixels, 0, 0);
  return canvas;
}

function draw(canvasId, source, width, height) {
  const canvas = $(canvasId);
  canvas.width = width;
  canvas.height = height;
  canvas.getContext("2d").drawImage(source, 0, 0, width, height);
}

function drawOverlay() {
  if (!state.image || !state.mask) return;
  const { width, height } = state.mask;
  const canvas = $("overlay-canvas");
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  ctx.globalAlpha = 1;
  ctx.drawImage(state.image, 0, 0, width, height);
  ctx.globalAlpha = Number($("alpha").value) / 100;
  ctx.drawImage(state.mask, 0, 0);
  ctx.globalAlpha = 1;
}

function percent(value) {
  return value === null || value === undefined ? "–" : `${(100 * value).toFixed(1)}%`;
}

function renderLegend(result) {
  const body = $("legend").querySelector("tbody");
  body.replaceChildren();
  const showIou = Boolean(result.iou);
  document.querySelectorAll(".iou").forEach((el) => { el.hidden = !showIou; });
  for (const category of result.categories) {
    const row = document.createElement("tr");
    row.dataset.category = category.name;
    const iou = showIou ? percent(result.iou[category.name]) : "";
    row.innerHTML = `<td><span class="swatch"></span>${category.name}</td><td class="num">${percent(category.share)}</td>` +
      `<td class="num">${category.regions_total}</td><td class="num iou"${showIou ? "" : " hidden"}>${iou}</td>`;
    // Set through the CSSOM: the Content-Security-Policy refuses inline style attributes.
    row.querySelector(".swatch").style.background = `rgb(${category.color.join(",")})`;
    body.appendChild(row);
  }
  let summary = `${result.width}×${result.height} px · ${result.inference_ms.toFixed(0)} ms · ${result.model}`;
  if (showIou && result.miou !== null) summary += ` · image mIoU ${percent(result.miou)}`;
  $("summary").textContent = summary;
  $("legend-box").hidden = false;
}

async function show(result, image, groundTruth) {
  const maskImg = await loadImage(`data:image/png;base64,${result.mask_png}`);
  state.image = image;
  state.mask = colourise(maskImg);
  draw("image-canvas", image, result.width, result.height);
  draw("mask-canvas", state.mask, result.width, result.height);
  drawOverlay();
  $("gt-figure").hidden = !groundTruth;
  if (groundTruth) draw("gt-canvas", groundTruth, result.width, result.height);
  renderLegend(result);
  $("results").hidden = false;
}

async function segmentFile(file) {
  if (!file) return;
  $("sample-select").value = "";
  setStatus(`segmenting ${file.name}…`);
  try {
    const form = new FormData();
    form.append("file", file);
    const result = await (await api("/v1/segment?format=json", { method: "POST", body: form })).json();
    const image = await loadImage(URL.createObjectURL(file));
    await show(result, image, null);
    setStatus(`${file.name}: done`);
  } catch (error) {
    setStatus(`${file.name}: ${error.message}`, true);
  }
}

async function segmentSample(id) {
  if (!id) return;
  setStatus("segmenting the test sample…");
  try {
    const sample = await (await api(`/v1/samples/${id}`)).json();
    const [result, image, gt] = await Promise.all([
      api(`/v1/samples/${id}/prediction`).then((r) => r.json()),
      loadBlobImage(sample.image_url),
      sample.ground_truth_url ? loadBlobImage(sample.ground_truth_url) : Promise.resolve(null),
    ]);
    await show(result, image, gt);
    setStatus(`${sample.name} (${sample.city}): done`);
  } catch (error) {
    setStatus(`sample: ${error.message}`, true);
  }
}

async function loadModel(attempt = 0) {
  try {
    const model = await (await api("/v1/model")).json();
    state.categories = model.categories;
    const test = model.metrics && model.metrics.test;
    const score = test && typeof test.miou === "number" ? ` · test mIoU ${percent(test.miou)}` : "";
    $("model-line").textContent = `${model.name} · ${model.runtime} · input ${model.input_size.join("×")}${score}`;
    return true;
  } catch (error) {
    if (error.status === 503 && attempt < 60) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      return loadModel(attempt + 1);
    }
    $("model-line").textContent = `model unavailable: ${error.message}`;
    return false;
  }
}

async function loadSamples() {
  try {
    const listing = await (await api("/v1/samples")).json();
    const select = $("sample-select");
    select.replaceChildren(new Option(listing.count ? `choose one of ${listing.count}…` : "(no test split found)", ""));
    for (const sample of listing.samples) {
      select.appendChild(new Option(`${sample.city} · ${sample.name}`, sample.id));
    }
  } catch (error) {
    setStatus(`samples: ${error.message}`, true);
  }
}

function wire() {
  const drop = $("drop");
  $("file-input").addEventListener("change", (event) => segmentFile(event.target.files[0]));
  ["dragenter", "dragover"].forEach((name) => drop.addEventListener(name, (event) => {
    event.preventDefault();
    drop.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((name) => drop.addEventListener(name, (event) => {
    event.preventDefault();
    drop.classList.remove("over");
  }));
  drop.addEventListener("drop", (event) => segmentFile(event.dataTransfer.files[0]));
  $("sample-select").addEventListener("change", (event) => segmentSample(event.target.value));
  $("alpha").addEventListener("input", () => {
    $("alpha-value").textContent = `${$("alpha").value}%`;
    drawOverlay();
  });
  // The key lives for this tab only (sessionStorage): never written to disk.
  $("api-key").value = sessionStorage.getItem("cityseg-api-key") || "";
  $("api-key").addEventListener("change", async () => {
    sessionStorage.setItem("cityseg-api-key", $("api-key").value);
    if (await loadModel()) loadSamples();
  });
}

wire();
loadModel().then((ok) => { if (ok) loadSamples(); });
