// tunesmith studio: the page's whole script. No library, nothing fetched but this server's API.
"use strict";

const COLOURS = ["#d9480f", "#1971c2", "#2f9e44", "#9c36b5", "#e8590c", "#0c8599",
                 "#c2255c", "#5c940d"];
const $ = (id) => document.getElementById(id);
const state = { models: {}, piece: null, evalSeq: 0 };
// timings of the last action, read by benchmarks/studio_latency.py and the browser tests
window.studioTimes = {};
// the piece on the page (its notes, bars and files), for the same readers
window.studioPiece = () => state.piece;

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function setStatus(text) { $("status").textContent = text; }

function setBusy(busy) {
  for (const id of ["generate", "continue", "regenerate", "upload", "model"]) {
    $(id).disabled = busy || (id !== "generate" && id !== "upload" && id !== "model" && !canUse(id));
  }
  document.body.classList.toggle("busy", busy);
}

function canUse(id) {
  const info = state.models[$("model").value];
  if (!state.piece || !info || state.piece.model !== info.key) return false;
  if (id === "continue") return info.can_continue;
  if (id === "regenerate") return info.regenerate !== null;
  return true;
}

async function api(path, options) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    throw new Error("the studio server does not answer (" + err.message + ")");
  }
  let body;
  try { body = await response.json(); } catch (err) { body = null; }
  if (!response.ok || body === null) {
    throw new Error((body && body.error) || ("the server answered " + response.status));
  }
  return body;
}

function postJSON(path, params) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" },
                     body: JSON.stringify(params) });
}

// ---------------------------------------------------------------- models

function describeModel() {
  const info = state.models[$("model").value];
  const dl = $("model-info");
  dl.innerHTML = "";
  if (!info) return;
  const rows = [["family", info.family], ["corpus", info.corpus || "?"],
                ["tracks", info.tracks.join(", ")], ["encoding", info.representation],
                ["parameters", info.parameters ? info.parameters.toLocaleString() : "?"]];
  if (info.fixed_bars) rows.push(["phrase", info.fixed_bars + " bars"]);
  // the model's own sampling (a shipped model's card) fills the controls
  if (info.sampling) {
    $("temperature").value = info.sampling.temperature;
    $("top-p").value = info.sampling.top_p;
  }
  for (const [k, v] of rows) {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v;
    dl.append(dt, dd);
  }
  for (const label of document.querySelectorAll("label.family")) {
    label.hidden = !info.controls.some((c) => label.classList.contains(c));
  }
  $("regenerate-how").textContent = {
    conditional: "Resamples the bars given the music on both sides.",
    "left-context": "Resamples the bars given the music before them; the rest is kept.",
    interpolation: "Interpolates the bars towards a new phrase (amount 0 … 1).",
  }[info.regenerate] || "This model cannot regenerate bars.";
  setBusy(false);
}

async function loadModels() {
  try {
    const models = await api("/api/models");
    const select = $("model");
    for (const info of models) {
      state.models[info.key] = info;
      const option = document.createElement("option");
      option.value = info.key;
      option.textContent = info.key + " (" + info.family + ")";
      select.append(option);
    }
    describeModel();
    setStatus("ready");
  } catch (err) {
    showError(err.message);
    setStatus("no models");
  }
}

// ---------------------------------------------------------------- piano-roll

function drawRoll(piece) {
  const canvas = $("roll");
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, top = 14;
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, W, H);
  let low = 127, high = 0;
  for (const n of piece.notes) { low = Math.min(low, n[1]); high = Math.max(high, n[1]); }
  if (low > high) { low = 55; high = 79; }
  low -= 2; high += 2;
  const quarters = Math.max(piece.quarters, 1e-6);
  const x = (q) => (q / quarters) * W;
  const rowH = (H - top) / (high - low + 1);
  const y = (p) => top + (high - p) * rowH;
  // selected bars
  const from = Number($("from-bar").value), to = Number($("to-bar").value);
  if (from >= 1 && to >= from) {
    ctx.fillStyle = "rgba(43,108,176,0.08)";
    ctx.fillRect(x((from - 1) * piece.quarters_per_bar), top,
                 x(to * piece.quarters_per_bar) - x((from - 1) * piece.quarters_per_bar), H - top);
  }
  // C rows and bar lines
  ctx.fillStyle = "#f1f1ec";
  for (let p = low; p <= high; p++) if (p % 12 === 0) ctx.fillRect(0, y(p), W, rowH);
  ctx.font = "10px sans-serif";
  const nBars = Math.ceil(piece.bars - 1e-9);
  for (let b = 0; b <= nBars; b++) {
    const bx = Math.round(x(b * piece.quarters_per_bar)) + 0.5;
    ctx.strokeStyle = "#c8c8c0";
    ctx.beginPath(); ctx.moveTo(bx, top); ctx.lineTo(bx, H); ctx.stroke();
    if (b < nBars) { ctx.fillStyle = "#888"; ctx.fillText(String(b + 1), bx + 3, 10); }
  }
  let drawn = 0;
  for (const [track, pitch, start, dur] of piece.notes) {
    ctx.fillStyle = COLOURS[track % COLOURS.length];
    ctx.fillRect(x(start), y(pitch), Math.max(1, x(start + dur) - x(start) - 1),
                 Math.max(1, rowH - 1));
    drawn++;
  }
  canvas.dataset.notes = String(drawn);
  canvas.dataset.piece = piece.id;
  const legend = $("legend");
  legend.innerHTML = "";
  piece.tracks.forEach((t, i) => {
    const span = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = COLOURS[i % COLOURS.length];
    span.append(swatch, document.createTextNode(t.name));
    legend.append(span);
  });
}

function barAt(event) {
  if (!state.piece) return null;
  const canvas = $("roll");
  const rect = canvas.getBoundingClientRect();
  const q = ((event.clientX - rect.left) / rect.width) * state.piece.quarters;
  return Math.min(Math.floor(q / state.piece.quarters_per_bar) + 1, Math.ceil(state.piece.bars));
}

// ---------------------------------------------------------------- pieces

function showPiece(piece) {
  state.piece = piece;
  drawRoll(piece);
  window.studioTimes.drawn = performance.now();
  $("piece-note").textContent = piece.note + " · " + piece.bars.toFixed(2).replace(/\.?0+$/, "")
    + " bars, " + piece.seconds.toFixed(1) + " s";
  const player = $("player");
  player.src = piece.wav;
  player.load();
  for (const [id, url] of [["download-mid", piece.midi], ["download-wav", piece.wav]]) {
    const a = $(id);
    a.href = url + "?download=1";
    a.setAttribute("download", "");
    a.classList.remove("disabled");
  }
  $("from-bar").max = $("to-bar").max = String(Math.ceil(piece.bars));
  evaluate(piece);
}

async function run(label, call) {
  window.studioTimes = { click: performance.now() };
  showError("");
  setBusy(true);
  setStatus(label + "…");
  try {
    const piece = await call();
    showPiece(piece);
    setStatus("ready");
  } catch (err) {
    showError(err.message);
    setStatus("failed");
  } finally {
    setBusy(false);
  }
}

function samplingParams() {
  return {
    model: $("model").value,
    temperature: $("temperature").value,
    top_p: $("top-p").value,
    seed: $("seed").value,
    key: $("key").closest("label").hidden ? "" : $("key").value,
    chords: $("chords").value,
  };
}

function generate() {
  run("generating", () => postJSON("/api/generate", { ...samplingParams(), bars: $("bars").value }));
}

function continuePiece() {
  run("continuing", () => postJSON("/api/continue",
    { ...samplingParams(), piece: state.piece.id, bars: $("continue-bars").value }));
}

function regenerate() {
  run("regenerating", () => postJSON("/api/regenerate", {
    ...samplingParams(), piece: state.piece.id, from_bar: $("from-bar").value,
    to_bar: $("to-bar").value, amount: $("amount").value,
  }));
}

function upload() {
  const file = $("upload").files[0];
  if (!file) return;
  run("reading " + file.name, async () => {
    const query = "?model=" + encodeURIComponent($("model").value) + "&name="
      + encodeURIComponent(file.name);
    try {
      return await api("/api/upload" + query, { method: "POST", body: file,
        headers: { "Content-Type": "application/octet-stream" } });
    } finally {
      $("upload").value = "";  // the same file can be chosen again
    }
  });
}

// ---------------------------------------------------------------- evaluation

function fmt(v, digits = 3) {
  return v === null || v === undefined ? "–" : Number(v).toFixed(digits);
}

function drawPitchClasses(pc) {
  const canvas = $("pitch-classes");
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, bottom = 16;
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
  const names = ["C", "C♯", "D", "E♭", "E", "F", "F♯", "G", "A♭", "A", "B♭", "B"];
  const peak = Math.max(...pc.piece, ...pc.train, ...pc.test, 1e-6);
  const slot = W / 12, bar = slot / 4;
  const series = [["piece", "#d9480f"], ["train", "#868e96"], ["test", "#adb5bd"]];
  ctx.font = "10px sans-serif";
  for (let i = 0; i < 12; i++) {
    series.forEach(([key, colour], s) => {
      const h = (pc[key][i] / peak) * (H - bottom - 14);
      ctx.fillStyle = colour;
      ctx.fillRect(i * slot + bar * (s + 0.5), H - bottom - h, bar - 1, h);
    });
    ctx.fillStyle = "#555";
    ctx.fillText(names[i], i * slot + slot / 2 - 5, H - 4);
  }
  series.forEach(([key, colour], s) => {
    ctx.fillStyle = colour; ctx.fillRect(6 + s * 60, 4, 8, 8);
    ctx.fillStyle = "#333"; ctx.fillText(key, 18 + s * 60, 12);
  });
}

function bandCell(row) {
  if (!row || row.low === null || row.high === null) return ["–", ""];
  const verdict = row.within === null ? "" : (row.within ? "within" : "outside");
  return ["[" + fmt(row.low) + ", " + fmt(row.high) + "]", verdict];
}

async function evaluate(piece) {
  const seq = ++state.evalSeq;
  $("eval-status").textContent = "(measuring against the corpus; the first time, its "
    + "pieces are summarised once, which takes minutes for a large corpus…)";
  const tbody = $("eval-table").querySelector("tbody");
  try {
    const result = await postJSON("/api/evaluate", { piece: piece.id });
    if (seq !== state.evalSeq) return;
    drawPitchClasses(result.pitch_classes);
    tbody.innerHTML = "";
    const addRow = (cells, cls) => {
      const tr = document.createElement("tr");
      cells.forEach((c, i) => {
        const td = document.createElement(i === 0 ? "th" : "td");
        td.textContent = c;
        if (i === cells.length - 1 && cls) td.className = cls;
        tr.append(td);
      });
      tbody.append(tr);
    };
    addRow(["metric", "piece", "corpus band (test vs train)", ""]);
    const js = result.pitch_class_js;
    const [jsBand, jsVerdict] = bandCell(js);
    addRow(["pitch-class JS (bits)", fmt(js.samples), jsBand, jsVerdict], jsVerdict);
    for (const row of result.voice_activity) {
      const [band, verdict] = bandCell(row);
      addRow(["voice activity " + row.track, fmt(row.samples), band, verdict], verdict);
    }
    const p = result.plagiarism;
    addRow(["longest common subsequence", p.n_events ? fmt(p.lcs_ratio, 2) + " of "
      + p.n_events + " notes" : "–", p.lcs_match || "", p.flagged ? "copied" : "original"],
      p.flagged ? "outside" : "within");
    addRow(["longest copied span", p.copied_span + " notes", p.copied_span_match || "", ""]);
    $("eval-status").textContent = "(" + result.corpus + ": " + result.train_pieces
      + " train, " + result.test_pieces + " test pieces)";
  } catch (err) {
    if (seq !== state.evalSeq) return;
    tbody.innerHTML = "";
    $("eval-status").textContent = "(not available: " + err.message + ")";
  }
}

// ---------------------------------------------------------------- wiring

$("model").addEventListener("change", describeModel);
$("generate").addEventListener("click", generate);
$("continue").addEventListener("click", continuePiece);
$("regenerate").addEventListener("click", regenerate);
$("upload").addEventListener("change", upload);
for (const id of ["from-bar", "to-bar"]) {
  $(id).addEventListener("input", () => { if (state.piece) drawRoll(state.piece); });
}
$("roll").addEventListener("click", (event) => {
  const bar = barAt(event);
  if (bar === null) return;
  if (event.shiftKey) {
    $("to-bar").value = String(Math.max(bar, Number($("from-bar").value)));
  } else {
    $("from-bar").value = $("to-bar").value = String(bar);
  }
  drawRoll(state.piece);
});
$("player").addEventListener("canplaythrough", () => {
  if (!window.studioTimes.audio) window.studioTimes.audio = performance.now();
});
loadModels();
