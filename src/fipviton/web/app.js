// fipviton web page: pick or upload two photos, POST them to /v1/try-on?format=json, show the result and maps.
// Plain JS, no build step, no external requests. XMLHttpRequest rather than fetch because only it reports
// upload progress, which is most of the wait for a large photo on a slow link.
"use strict";

const state = { person: null, garment: null, busy: false, timer: null };
const $ = (id) => document.getElementById(id);

function setStatus(kind, text, percent) {
  const box = $("status");
  box.dataset.state = kind;
  $("status-text").textContent = text;
  $("progress-bar").style.width = percent === undefined ? "" : `${percent}%`;
}

function refreshButton() {
  $("submit").disabled = state.busy || !state.person || !state.garment;
}

// slot: "person" | "garment"; blob: the image; label: what to show as its name.
function choose(slot, blob, label) {
  state[slot] = { blob, label };
  const preview = $(`${slot}-preview`);
  if (preview.dataset.url) URL.revokeObjectURL(preview.dataset.url);
  preview.dataset.url = URL.createObjectURL(blob);
  preview.src = preview.dataset.url;
  preview.hidden = false;
  $(`${slot}-name`).textContent = label;
  if (!state.busy) setStatus("idle", state.person && state.garment ? "Ready: press “Try it on”." : "Now the other photo.");
  refreshButton();
}

function markExample(slot, url) {
  for (const button of $(`${slot}-examples`).querySelectorAll("button")) {
    button.setAttribute("aria-pressed", String(button.dataset.url === url));
  }
}

async function pickExample(slot, url, category) {
  try {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    choose(slot, await response.blob(), `example ${url.split("/").pop()}`);
    markExample(slot, url);
    if (category) document.querySelector(`input[name=category][value=${category}]`).checked = true;
  } catch (error) {
    setStatus("error", `Could not load the example: ${error.message}`);
  }
}

// Fill a slot's <fieldset data-slot=...> from the template: ids become `${slot}-${data-id}`.
function buildSlot(slot) {
  const fieldset = document.querySelector(`fieldset[data-slot=${slot}]`);
  fieldset.id = `${slot}-slot`;
  fieldset.append(document.getElementById("slot-template").content.cloneNode(true));
  fieldset.querySelector("legend").textContent = fieldset.dataset.title;
  for (const element of fieldset.querySelectorAll("[data-id]")) element.id = `${slot}-${element.dataset.id}`;
  for (const label of fieldset.querySelectorAll("label[data-for]")) label.htmlFor = `${slot}-${label.dataset.for}`;
  $(`${slot}-input`).name = slot;
  const preview = $(`${slot}-preview`);
  preview.alt = `selected ${slot} photo`;
  // A file the browser cannot show (not an image, or a format it lacks): say so instead of a broken picture.
  preview.addEventListener("error", () => {
    preview.hidden = true;
    fieldset.querySelector(".hint").textContent = "no preview for this file (the server will check it)";
  });
  $(`${slot}-examples`).setAttribute("aria-label", `example ${slot} photos`);
}

function wireSlot(slot) {
  buildSlot(slot);
  const input = $(`${slot}-input`);
  input.addEventListener("change", () => {
    if (input.files.length) {
      choose(slot, input.files[0], input.files[0].name);
      markExample(slot, null);
    }
  });
  const drop = $(`${slot}-drop`);
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const file = event.dataTransfer.files[0];
    if (file) { choose(slot, file, file.name); markExample(slot, null); }
  });
}

async function loadExamples() {
  try {
    const response = await fetch("/v1/examples");
    const { pairs } = await response.json();
    for (const pair of pairs) {
      for (const slot of ["person", "garment"]) {
        const button = document.createElement("button");
        button.type = "button";
        button.dataset.url = pair[slot];
        button.title = `example ${slot} (${pair.category.replace("_", " ")})`;
        button.setAttribute("aria-pressed", "false");
        const img = document.createElement("img");
        img.src = pair[slot];
        img.alt = button.title;
        img.loading = "lazy";
        button.append(img);
        button.addEventListener("click", () => pickExample(slot, pair[slot], pair.category));
        $(`${slot}-examples`).append(button);
      }
    }
  } catch (error) {
    // The page works without examples; say so quietly.
    $("person-examples").textContent = "examples unavailable";
  }
}

function pretty(name) {
  return name.replaceAll("_", " ");
}

function showResult(body) {
  const src = `data:image/png;base64,${body.image}`;
  $("result-image").src = src;
  $("download").href = src;
  $("result-caption").textContent = `${body.width}×${body.height}, ${pretty(body.category)}`;
  const timings = $("timings");
  timings.replaceChildren();
  for (const [stage, seconds] of Object.entries(body.timings)) {
    const row = timings.insertRow();
    row.insertCell().textContent = pretty(stage);
    row.insertCell().textContent = `${(seconds * 1000).toFixed(0)} ms`;
  }
  const warnings = $("warnings");
  warnings.replaceChildren(...body.warnings.map((text) => Object.assign(document.createElement("li"), { textContent: text })));
  const maps = $("maps");
  maps.replaceChildren();
  for (const [name, data] of Object.entries(body.maps)) {
    const figure = document.createElement("figure");
    const img = document.createElement("img");
    img.src = `data:image/png;base64,${data}`;
    img.alt = pretty(name);
    const caption = document.createElement("figcaption");
    caption.textContent = pretty(name);
    figure.append(img, caption);
    maps.append(figure);
  }
  $("result").hidden = false;
  $("result").classList.remove("stale");
}

function errorText(xhr) {
  const body = xhr.response;
  if (body && typeof body === "object" && body.detail !== undefined) {
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    const retry = xhr.getResponseHeader("Retry-After");
    return retry ? `${detail} (try again in ${retry} s)` : detail;
  }
  return xhr.status ? `HTTP ${xhr.status}` : "the server did not answer (is it running?)";
}

function finish() {
  state.busy = false;
  clearInterval(state.timer);
  refreshButton();
}

function submit(event) {
  event.preventDefault();
  if (state.busy || !state.person || !state.garment) return;
  const form = new FormData();
  form.append("person", state.person.blob, state.person.label);
  form.append("garment", state.garment.blob, state.garment.label);
  form.append("category", document.querySelector("input[name=category]:checked").value);
  form.append("sharp_garment", $("sharp-garment").checked ? "true" : "false");
  form.append("mirror_average", $("mirror-average").checked ? "true" : "false");

  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/v1/try-on?format=json");
  xhr.responseType = "json";
  const started = performance.now();
  const seconds = () => ((performance.now() - started) / 1000).toFixed(1);
  state.busy = true;
  refreshButton();
  // A previous result stays visible but dimmed until this one replaces it (or fails).
  $("result").classList.add("stale");
  setStatus("uploading", "Uploading… 0%", 0);
  xhr.upload.onprogress = (e) => {
    if (e.lengthComputable) {
      const percent = Math.round((100 * e.loaded) / e.total);
      setStatus("uploading", `Uploading… ${percent}%`, percent);
    }
  };
  xhr.upload.onload = () => {
    setStatus("processing", `Trying it on… ${seconds()} s`);
    state.timer = setInterval(() => setStatus("processing", `Trying it on… ${seconds()} s`), 100);
  };
  xhr.onload = () => {
    finish();
    if (xhr.status === 200 && xhr.response) {
      showResult(xhr.response);
      setStatus("done", `Done in ${seconds()} s.`);
    } else {
      setStatus("error", `Error: ${errorText(xhr)}`);
    }
  };
  xhr.onerror = () => { finish(); setStatus("error", "Error: the request failed (network or server down)."); };
  xhr.send(form);
}

// The checkboxes start from the server's defaults (`serve --sharp-garment`, `--mirror-average`), since the page
// always sends both fields and would otherwise override them.
async function loadDefaults() {
  try {
    const response = await fetch("/healthz");
    const { defaults } = await response.json();
    $("sharp-garment").checked = Boolean(defaults && defaults.sharp_garment);
    $("mirror-average").checked = Boolean(defaults && defaults.mirror_average);
  } catch (error) {
    // An old server without defaults: the boxes stay unticked, as before.
  }
}

wireSlot("person");
wireSlot("garment");
$("tryon-form").addEventListener("submit", submit);
loadExamples();
loadDefaults();
