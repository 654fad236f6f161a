#include "drifa/serve/page.h"

namespace drifa::serve {

const std::string& web_page() {
  static const std::string page = R"PAGE(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>DRIFA-Net</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d2330; }
  header { background: #1d2f4f; color: #fff; padding: 14px 24px; }
  header h1 { margin: 0; font-size: 20px; }
  header p { margin: 4px 0 0; font-size: 13px; opacity: .8; }
  main { padding: 20px 24px; max-width: 1100px; }
  .panel { background: #fff; border-radius: 8px; padding: 16px; margin-bottom: 16px; box-shadow: 0 1px 3px rgba(0,0,0,.12); }
  .drops { display: flex; flex-wrap: wrap; gap: 12px; }
  .drop { flex: 1 1 220px; border: 2px dashed #9aa6bd; border-radius: 8px; padding: 14px; text-align: center; cursor: pointer; }
  .drop.over { border-color: #2f6fde; background: #eef4ff; }
  .drop.chosen { border-style: solid; border-color: #3a9a5b; }
  .drop b { display: block; margin-bottom: 6px; }
  .drop .file { font-size: 12px; color: #4a5568; word-break: break-all; }
  .drop input { display: none; }
  .options { display: flex; flex-wrap: wrap; gap: 16px; align-items: center; margin-top: 12px; font-size: 14px; }
  .options input[type=number] { width: 70px; }
  button { background: #2f6fde; color: #fff; border: 0; border-radius: 6px; padding: 9px 20px; font-size: 15px; cursor: pointer; }
  button:disabled { background: #9aa6bd; cursor: default; }
  #status { font-size: 14px; margin-left: 8px; }
  .error { color: #b42318; }
  .tasks { display: flex; flex-wrap: wrap; gap: 16px; }
  .task { flex: 1 1 320px; }
  .task h2 { margin: 0 0 4px; font-size: 16px; }
  .task .cls { font-size: 22px; font-weight: 600; margin: 4px 0 10px; }
  .bar { display: flex; align-items: center; font-size: 13px; margin: 3px 0; }
  .bar .name { width: 120px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .bar .track { flex: 1; background: #e5e8ee; height: 14px; border-radius: 3px; margin: 0 8px; }
  .bar .fill { background: #2f6fde; height: 14px; border-radius: 3px; }
  .bar.top .fill { background: #1d8a4b; }
  .bar .val { width: 52px; text-align: right; font-variant-numeric: tabular-nums; }
  table.unc { font-size: 13px; border-collapse: collapse; margin-top: 10px; }
  table.unc td { padding: 2px 10px 2px 0; }
  .set { margin-top: 8px; font-size: 13px; }
  .set span { display: inline-block; background: #e8f2ea; border: 1px solid #3a9a5b; border-radius: 10px; padding: 1px 8px; margin: 2px; }
  .overlays { display: flex; flex-wrap: wrap; gap: 8px; margin-top: 10px; }
  .overlays figure { margin: 0; font-size: 12px; text-align: center; }
  .overlays img { width: 160px; height: 160px; object-fit: contain; background: #000; border-radius: 4px; display: block; }
  .muted { color: #6b7385; font-size: 13px; }
</style>
</head>
<body>
<header><h1>DRIFA-Net</h1><p id="model">loading the model&hellip;</p></header>
<main>
  <section class="panel">
    <div class="drops" id="drops"></div>
    <div class="options">
      <label>Monte Carlo passes <input type="number" id="passes" min="0" value="30"></label>
      <label><input type="checkbox" id="gradcam" checked> Grad-CAM</label>
      <label id="alpha-box" hidden>miscoverage &alpha; <input type="number" id="alpha" min="0.001" max="0.999" step="0.01"></label>
      <label id="token-box" hidden>token <input type="password" id="token" autocomplete="off"></label>
      <button id="predict" disabled>Predict</button><span id="status"></span>
    </div>
  </section>
  <section id="result" data-state="empty"></section>
</main>
<script>
"use strict";
let model = null;
const files = {};
const $ = (id) => document.getElementById(id);
const el = (tag, attrs, text) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
};
const headers = () => {
  const t = $("token").value || sessionStorage.getItem("drifa-token") || "";
  return t ? { Authorization: "Bearer " + t } : {};
};
const fmt = (x) => (x === null || x === undefined) ? "n/a" : Number(x).toFixed(3);

function status(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function ready() {
  const n = Object.keys(files).length;
  const need = model && (model.missing_modalities ? 1 : model.modalities.length);
  $("predict").disabled = !model || n < need;
}

function choose(name, file, box) {
  if (!file) return;
  files[name] = file;
  box.classList.add("chosen");
  box.querySelector(".file").textContent = file.name + " (" + Math.round(file.size / 1024) + " kB)";
  ready();
}

function buildDrops() {
  const drops = $("drops");
  drops.textContent = "";
  for (const name of model.modalities) {
    const box = el("label", { class: "drop", "data-modality": name });
    box.appendChild(el("b", {}, name));
    const input = el("input", { type: "file", "data-modality": name, accept: "image/*,.dcm,.dicom,.tif,.tiff" });
    input.addEventListener("change", () => choose(name, input.files[0], box));
    box.appendChild(input);
    box.appendChild(el("div", { class: "file" }, "drop an image here or click to choose"));
    box.addEventListener("dragover", (e) => { e.preventDefault(); box.classList.add("over"); });
    box.addEventListener("dragleave", () => box.classList.remove("over"));
    box.addEventListener("drop", (e) => {
      e.preventDefault();
      box.classList.remove("over");
      choose(name, e.dataTransfer.files[0], box);
    });
    drops.appendChild(box);
  }
}

async function loadModel() {
  const r = await fetch("/v1/model", { headers: headers() });
  if (r.status === 401) {
    $("token-box").hidden = false;
    $("model").textContent = "this server needs a token: enter it, then choose the images";
    $("token").addEventListener("change", () => { sessionStorage.setItem("drifa-token", $("token").value); loadModel(); }, { once: true });
    return;
  }
  const j = await r.json();
  if (!r.ok) { $("model").textContent = j.error || ("error " + r.status); return; }
  model = j;
  const tasks = j.tasks.map((t) => t.name + " (" + t.classes.length + " classes)").join(", ");
  $("model").textContent = j.modalities.length + " modalities (" + j.modalities.join(", ") + "); tasks: " + tasks + "; " +
    j.models + (j.models === 1 ? " model" : " models") + (j.calibration ? ", calibrated" : ", not calibrated") +
    (j.missing_modalities ? "; a case may lack modalities" : "");
  $("passes").value = j.defaults.passes;
  $("passes").max = j.limits.max_passes;
  if (j.calibration) { $("alpha-box").hidden = false; $("alpha").value = j.calibration.alpha; }
  buildDrops();
  ready();
}

function showTask(task, t) {
  const card = el("div", { class: "panel task", "data-task": task });
  card.appendChild(el("h2", {}, task));
  if (t.predicted === false) { card.appendChild(el("p", { class: "muted" }, "not predicted: " + t.reason)); return card; }
  card.appendChild(el("div", { class: "cls", "data-class": t["class"] }, t["class"]));
  const probs = Object.entries(t.probabilities).sort((a, b) => b[1] - a[1]);
  for (const [name, p] of probs) {
    const row = el("div", { class: "bar" + (name === t["class"] ? " top" : ""), "data-class-name": name, "data-probability": p });
    row.appendChild(el("span", { class: "name", title: name }, name));
    const track = el("span", { class: "track" });
    const fill = el("span", { class: "fill" });
    fill.style.display = "block";
    fill.style.width = (100 * p).toFixed(1) + "%";
    track.appendChild(fill);
    row.appendChild(track);
    row.appendChild(el("span", { class: "val" }, (100 * p).toFixed(1) + "%"));
    card.appendChild(row);
  }
  const table = el("table", { class: "unc" });
  const rows = [["predictive entropy", t.predictive_entropy], ["aleatoric (expected entropy)", t.expected_entropy],
                ["model (mutual information)", t.mutual_information]];
  if (t.partner_information !== null) rows.push(["partners", t.partner_information]);
  rows.push(["method", t.method], ["temperature", t.temperature === null ? "none" : fmt(t.temperature)]);
  for (const [k, v] of rows) {
    const tr = el("tr");
    tr.appendChild(el("td", {}, k));
    tr.appendChild(el("td", {}, typeof v === "number" ? fmt(v) : String(v)));
    table.appendChild(tr);
  }
  card.appendChild(table);
  const set = el("div", { class: "set" });
  if (t.prediction_set) {
    set.appendChild(el("span", { style: "background:none;border:0" }, "prediction set (" + (100 * t.prediction_set.coverage_guarantee).toFixed(0) + "%):"));
    for (const c of t.prediction_set.classes) set.appendChild(el("span", { "data-set-class": c }, c));
  } else {
    set.textContent = "no prediction set (the model is not calibrated)";
    set.className = "set muted";
  }
  card.appendChild(set);
  if (t.gradcam) {
    const ov = el("div", { class: "overlays" });
    for (const [mod, uri] of Object.entries(t.gradcam)) {
      const fig = el("figure");
      const img = el("img", { class: "overlay", alt: "Grad-CAM " + task + " " + mod, "data-modality": mod, "data-task": task });
      img.src = uri;
      fig.appendChild(img);
      fig.appendChild(el("figcaption", {}, "Grad-CAM on " + mod));
      ov.appendChild(fig);
    }
    card.appendChild(ov);
  }
  return card;
}

async function predict() {
  const form = new FormData();
  for (const [name, file] of Object.entries(files)) form.append(name, file, file.name);
  form.append("passes", $("passes").value);
  form.append("gradcam", $("gradcam").checked ? "true" : "false");
  if (model.calibration && $("alpha").value) form.append("alpha", $("alpha").value);
  const result = $("result");
  result.dataset.state = "running";
  $("predict").disabled = true;
  status("predicting\u2026");
  const t0 = performance.now();
  try {
    const r = await fetch("/v1/predict", { method: "POST", body: form, headers: headers() });
    const j = await r.json();
    result.textContent = "";
    if (!r.ok) {
      status(j.error || ("error " + r.status), true);
      result.dataset.state = "error";
      return;
    }
    const c = j.cases[0];
    const tasks = el("div", { class: "tasks" });
    for (const [task, t] of Object.entries(c.tasks)) tasks.appendChild(showTask(task, t));
    result.appendChild(tasks);
    let note = (performance.now() - t0).toFixed(0) + " ms; " + (j.passes ? j.passes + " Monte Carlo passes" : "deterministic");
    if (c.inputs.absent.length) note += "; absent: " + c.inputs.absent.join(", ");
    if (c.inputs.marginalised.length) note += "; averaged over " + c.inputs.partners + " partners for " + c.inputs.marginalised.join(", ");
    if (j.warning) note += "; " + j.warning;
    status(note);
    result.dataset.state = "done";
  } catch (e) {
    status(String(e), true);
    result.dataset.state = "error";
  } finally {
    ready();
  }
}

$("predict").addEventListener("click", predict);
loadModel().catch((e) => { $("model").textContent = String(e); });
</script>
</body>
</html>
)PAGE";
  return page;
}

}  // namespace drifa::serve
