// The LPN latent explorer's page: plain JavaScript and SVG, talking to the JSON API of
// lpn_arc/explorer/server.py. Nothing here is fetched from the network.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const PLANE = 480;            // the plane's viewBox side
const TRACE = { w: 360, h: 180, left: 46, right: 10, top: 10, bottom: 26 };
const HEAT_STOPS = ["#0d0887", "#5302a3", "#8b0aa5", "#b83289", "#db5c68", "#f48849", "#febd2a", "#f0f921"];

const state = {
  info: null,         // /api/info
  task: null,         // the current task (ARC format)
  encoded: null,      // /api/encode of the task
  bounds: null,       // [u0, u1, v0, v1] of the plane
  frames: [],         // the frames of the current search
  runId: null,
  stop: false,
  colour: 1,
  probe: null,        // [u, v] of the last click
  generation: 0,      // bumped when the task changes, to drop stale answers
};

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- talking to the server
let pending = 0;
async function api(method, path, body) {
  pending += 1;
  $("busy").hidden = false;
  try {
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: body ? { "Content-Type": "application/json" } : {},
        body: body ? JSON.stringify(body) : undefined,
      });
    } catch (err) {
      throw new Error("the explorer's server does not answer (was it stopped?)");
    }
    let data;
    try { data = await response.json(); } catch (err) { data = { error: `HTTP ${response.status}` }; }
    if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
    return data;
  } finally {
    pending -= 1;
    $("busy").hidden = pending === 0;
  }
}

function showError(err) {
  const box = $("error");
  if (!err) { box.hidden = true; box.textContent = ""; return; }
  box.textContent = err.message || String(err);
  box.hidden = false;
}

// ---------------------------------------------------------------- grids
function gridElement(grid, { big = false, onCell = null } = {}) {
  const el = document.createElement("div");
  el.className = "grid" + (big ? " big" : "") + (onCell ? " editable" : "");
  if (!grid || !grid.length) {
    el.className = "empty";
    el.textContent = "(none)";
    return el;
  }
  el.style.gridTemplateColumns = `repeat(${grid[0].length}, auto)`;
  el.dataset.rows = grid.length;
  el.dataset.cols = grid[0].length;
  grid.forEach((row, r) => row.forEach((value, c) => {
    const cell = document.createElement("div");
    cell.className = `cell c${value}`;
    cell.dataset.r = r;
    cell.dataset.c = c;
    if (onCell) cell.addEventListener("click", () => onCell(r, c));
    el.appendChild(cell);
  }));
  return el;
}

function paint(grid, r, c) {
  if (grid[r][c] === state.colour) return false;
  grid[r][c] = state.colour;
  return true;
}

function renderTask() {
  const spec = $("spec");
  spec.replaceChildren();
  state.task.train.forEach((pair, i) => {
    const row = document.createElement("div");
    row.className = "pair";
    row.dataset.pair = i;
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = `${i + 1}`;
    const arrow = document.createElement("span");
    arrow.className = "arrow";
    arrow.textContent = "→";
    row.append(label,
      gridElement(pair.input, { onCell: (r, c) => paint(pair.input, r, c) && taskEdited() }),
      arrow,
      gridElement(pair.output, { onCell: (r, c) => paint(pair.output, r, c) && taskEdited() }));
    spec.appendChild(row);
  });
  const query = state.task.test[0];
  const row = document.createElement("div");
  row.className = "pair";
  const arrow = document.createElement("span");
  arrow.className = "arrow";
  arrow.textContent = "→";
  row.append(gridElement(query.input, { onCell: (r, c) => paint(query.input, r, c) && taskEdited() }),
    arrow, gridElement(query.output || null));
  $("query").replaceChildren(row);
}

function renderPalette() {
  const box = $("palette");
  box.replaceChildren();
  for (let colour = 0; colour < 10; colour++) {
    const swatch = document.createElement("div");
    swatch.className = `swatch c${colour}` + (colour === state.colour ? " selected" : "");
    swatch.title = `colour ${colour}`;
    swatch.dataset.colour = colour;
    swatch.addEventListener("click", () => { state.colour = colour; renderPalette(); });
    box.appendChild(swatch);
  }
}

function renderDecoded(target, decoded, verdict) {
  target.replaceChildren(gridElement(decoded.grid, { big: true }));
  if (verdict) {
    const v = $("verdict");
    v.className = decoded.correct === null ? "" : decoded.correct ? "right" : "wrong";
    v.textContent = decoded.correct === null ? "(no expected output)" : decoded.correct ? "✓ right" : "✗ wrong";
  }
}

// ---------------------------------------------------------------- the plane
function toScreen([u, v]) {
  const [u0, u1, v0, v1] = state.bounds;
  return [((u - u0) / (u1 - u0)) * PLANE, PLANE - ((v - v0) / (v1 - v0)) * PLANE];
}

function fromScreen(x, y) {
  const [u0, u1, v0, v1] = state.bounds;
  return [u0 + (x / PLANE) * (u1 - u0), v0 + ((PLANE - y) / PLANE) * (v1 - v0)];
}

function fitBounds(points) {
  let [u0, u1, v0, v1] = [Infinity, -Infinity, Infinity, -Infinity];
  for (const [u, v] of points) {
    u0 = Math.min(u0, u); u1 = Math.max(u1, u); v0 = Math.min(v0, v); v1 = Math.max(v1, v);
  }
  const side = Math.max(u1 - u0, v1 - v0, 0.2) * 1.25;
  const cu = (u0 + u1) / 2, cv = (v0 + v1) / 2;
  return [cu - side / 2, cu + side / 2, cv - side / 2, cv + side / 2];
}

function circle(parent, point, r, cls, attrs = {}) {
  const [x, y] = toScreen(point);
  const el = document.createElementNS(SVG, "circle");
  el.setAttribute("cx", x.toFixed(2));
  el.setAttribute("cy", y.toFixed(2));
  el.setAttribute("r", r);
  el.setAttribute("class", cls);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  parent.appendChild(el);
  return el;
}

function text(parent, x, y, content, attrs = {}) {
  const el = document.createElementNS(SVG, "text");
  el.setAttribute("x", x);
  el.setAttribute("y", y);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  el.textContent = content;
  parent.appendChild(el);
  return el;
}

function renderPlane() {
  if (!state.bounds) return;
  const cloud = $("cloud");
  cloud.replaceChildren();
  for (const p of state.info.cloud) circle(cloud, p, 2.5, "cloud", { fill: "#9aa5b1", "fill-opacity": 0.6 });
  const pairs = $("pairs");
  pairs.replaceChildren();
  if (state.encoded) {
    state.encoded.pairs.forEach((p, i) => {
      circle(pairs, p, 6, "pair", { fill: "#1f6feb", stroke: "#fff", "stroke-width": 1.5 });
      const [x, y] = toScreen(p);
      text(pairs, x + 8, y - 6, `${i + 1}`, { "font-size": 12, fill: "#1f6feb" });
    });
    circle(pairs, state.encoded.anchor, 7, "anchor", { fill: "#8250df", stroke: "#fff", "stroke-width": 2 });
  }
  renderSearchMarks();
}

function renderSearchMarks() {
  const line = $("trajectory");
  const steps = $("step-cloud");
  const marks = $("marks");
  steps.replaceChildren();
  marks.replaceChildren();
  const path = state.frames.map((f) => toScreen(f.point).map((x) => x.toFixed(2)).join(","));
  line.setAttribute("points", path.join(" "));
  line.dataset.count = state.frames.length;
  const last = state.frames[state.frames.length - 1];
  if (last) {
    for (const p of last.cloud) circle(steps, p, 2, "sample", { fill: "#d1242f", "fill-opacity": 0.35 });
    circle(marks, last.point, 4, "current", { fill: "#d1242f" });
    if (last.best_point) circle(marks, last.best_point, 6, "best", { fill: "#ffb000", stroke: "#6b4a00", "stroke-width": 1 });
  }
  if (state.probe) circle(marks, state.probe, 5, "probe", { fill: "none", stroke: "#1a7f37", "stroke-width": 2.5 });
}

function heatColour(t) {
  const x = Math.min(Math.max(t, 0), 1) * (HEAT_STOPS.length - 1);
  const i = Math.min(Math.floor(x), HEAT_STOPS.length - 2);
  const mix = (a, b, f) => Math.round(a + (b - a) * f);
  const parse = (h) => [1, 3, 5].map((k) => parseInt(h.slice(k, k + 2), 16));
  const [a, b] = [parse(HEAT_STOPS[i]), parse(HEAT_STOPS[i + 1])];
  return `rgb(${mix(a[0], b[0], x - i)},${mix(a[1], b[1], x - i)},${mix(a[2], b[2], x - i)})`;
}

async function renderLandscape() {
  const heat = $("heat");
  if (!$("show-landscape").checked || !state.task) {
    heat.replaceChildren();
    $("colorbar").hidden = true;
    return;
  }
  const generation = state.generation;
  const resolution = Number($("resolution").value);
  const started = performance.now();
  const data = await api("POST", "/api/landscape", { task: state.task, bounds: state.bounds, resolution, run: planeRun() });
  if (generation !== state.generation) return;
  const values = data.values.flat().filter((v) => v !== null).sort((a, b) => a - b);
  const high = values[values.length - 1];
  const low = values[Math.floor(values.length * 0.05)];  // the worst 5% do not stretch the scale
  const cell = PLANE / resolution;
  heat.replaceChildren();
  data.values.forEach((row, i) => row.forEach((value, j) => {
    const rect = document.createElementNS(SVG, "rect");
    rect.setAttribute("x", (j * cell).toFixed(2));
    rect.setAttribute("y", (PLANE - (i + 1) * cell).toFixed(2));  // row 0 is the lowest v
    rect.setAttribute("width", (cell + 0.5).toFixed(2));
    rect.setAttribute("height", (cell + 0.5).toFixed(2));
    rect.setAttribute("fill", value === null ? "#ccc" : heatColour((value - low) / Math.max(high - low, 1e-9)));
    heat.appendChild(rect);
  }));
  heat.dataset.resolution = resolution;
  const bar = $("colorbar");
  const gradient = HEAT_STOPS.join(",");
  bar.innerHTML = "";
  const digits = Math.max(1, Math.min(4, 1 - Math.floor(Math.log10(Math.max(high - low, 1e-4)))));
  bar.append(`${low.toFixed(digits)}`);
  const strip = document.createElement("div");
  strip.className = "bar";
  strip.style.background = `linear-gradient(to right, ${gradient})`;
  bar.append(strip, `${high.toFixed(digits)} log-likelihood`);
  bar.hidden = false;
  $("timing").textContent = `landscape ${resolution}×${resolution}: ${(performance.now() - started).toFixed(0)} ms`;
}

// The search whose best latent the plane goes through, or null for the task's aggregate.
function planeRun() {
  return $("through").value === "best" && state.runId !== null && state.frames.length ? state.runId : null;
}

async function probe(event) {
  if (!state.task || !state.bounds) return;
  const svg = $("plane");
  const box = svg.getBoundingClientRect();
  const x = ((event.clientX - box.left) / box.width) * PLANE;
  const y = ((event.clientY - box.top) / box.height) * PLANE;
  state.probe = fromScreen(x, y);
  renderSearchMarks();
  const generation = state.generation;
  try {
    const data = await api("POST", "/api/decode", { task: state.task, point: state.probe, run: planeRun() });
    if (generation !== state.generation) return;
    const box2 = $("probe");
    box2.replaceChildren();
    const title = document.createElement("p");
    title.className = "hint";
    const verdict = data.decoded.correct === null ? "" : data.decoded.correct ? " · ✓ right" : " · ✗ wrong";
    title.textContent = `latent at (${state.probe.map((v) => v.toFixed(2)).join(", ")}): ` +
      `log-likelihood ${data.score.toFixed(2)}${verdict}`;
    box2.append(title, gridElement(data.decoded.grid, { big: true }));
    box2.dataset.score = data.score;
    showError(null);
  } catch (err) { showError(err); }
}

// ---------------------------------------------------------------- the trace
function renderTrace() {
  const svg = $("trace");
  svg.replaceChildren();
  const frames = state.frames;
  const best = frames.map((f) => f.best);
  const current = frames.map((f) => f.score);
  svg.dataset.values = JSON.stringify(best);
  svg.dataset.current = JSON.stringify(current);
  const all = best.concat(current).filter((v) => v !== null);
  const { w, h, left, right, top, bottom } = TRACE;
  const axis = (x1, y1, x2, y2) => {
    const el = document.createElementNS(SVG, "line");
    Object.entries({ x1, y1, x2, y2, stroke: "#8c959f" }).forEach(([k, v]) => el.setAttribute(k, v));
    svg.appendChild(el);
  };
  axis(left, top, left, h - bottom);
  axis(left, h - bottom, w - right, h - bottom);
  text(svg, w / 2, h - 6, "step", { "font-size": 11, fill: "#5d6875", "text-anchor": "middle" });
  if (!all.length) return;
  let low = Math.min(...all), high = Math.max(...all);
  if (high - low < 1e-6) { low -= 0.5; high += 0.5; }
  const last = Math.max(frames[frames.length - 1].step, 1);
  const sx = (s) => left + (s / last) * (w - left - right);
  const sy = (v) => top + (1 - (v - low) / (high - low)) * (h - top - bottom);
  text(svg, left - 4, top + 8, high.toFixed(2), { "font-size": 10, fill: "#5d6875", "text-anchor": "end" });
  text(svg, left - 4, h - bottom, low.toFixed(2), { "font-size": 10, fill: "#5d6875", "text-anchor": "end" });
  text(svg, w - right, h - bottom + 12, `${last}`, { "font-size": 10, fill: "#5d6875", "text-anchor": "end" });
  const line = (values, colour, id) => {
    const points = frames.map((f, i) => (values[i] === null ? null : `${sx(f.step).toFixed(1)},${sy(values[i]).toFixed(1)}`));
    const el = document.createElementNS(SVG, "polyline");
    el.setAttribute("points", points.filter(Boolean).join(" "));
    el.setAttribute("fill", "none");
    el.setAttribute("stroke", colour);
    el.setAttribute("stroke-width", 2);
    el.id = id;
    svg.appendChild(el);
  };
  line(current, "#d1242f66", "trace-current");
  line(best, "#ffb000", "trace-best");
}

// ---------------------------------------------------------------- the search
function readSettings() {
  const number = (id) => Number($(id).value);
  return {
    kind: $("kind").value, steps: number("steps"), lr: number("lr"), optimizer: $("optimizer").value,
    samples: number("samples"), scale: number("scale"), population: number("population"),
    sigma: number("sigma"), seed: number("seed"),
  };
}

function showKindFields() {
  const kind = $("kind").value;
  document.querySelectorAll("[data-kinds]").forEach((el) => {
    el.hidden = !el.dataset.kinds.split(" ").includes(kind);
  });
}

function setRunning(running) {
  $("run").disabled = running;
  $("stop").disabled = !running;
  document.body.dataset.state = running ? "searching" : "ready";
}

async function runSearch() {
  if (!state.task) return;
  state.stop = false;
  setRunning(true);
  showError(null);
  const generation = state.generation;
  try {
    const started = performance.now();
    const first = await api("POST", "/api/search", { task: state.task, settings: readSettings() });
    state.runId = first.id;
    state.frames = first.frames;
    const latencies = [];
    let done = first.done;
    update(first, performance.now() - started, latencies);
    const perFrame = Math.max(1, Number($("per-frame").value) || 1);
    while (!done && !state.stop && generation === state.generation) {
      const t0 = performance.now();
      const answer = await api("POST", `/api/search/${state.runId}/step`, { steps: perFrame });
      if (generation !== state.generation) break;
      state.frames = state.frames.concat(answer.frames);
      latencies.push(performance.now() - t0);
      update(answer, null, latencies);
      done = answer.done;
      await new Promise((resolve) => requestAnimationFrame(resolve));
    }
  } catch (err) {
    showError(err);
  } finally {
    setRunning(false);
    document.body.dataset.searched = String(state.frames.length);
  }
  if (planeRun() !== null && generation === state.generation) await renderLandscape().catch(showError);
}

function update(answer, firstMs, latencies) {
  renderSearchMarks();
  renderTrace();
  renderDecoded($("decoded"), answer.decoded, true);
  $("decoded-of").textContent = "(of the best latent found)";
  const last = state.frames[state.frames.length - 1];
  $("search-status").textContent = `step ${answer.steps_done} / ${readSettings().steps} · ` +
    `${last.evaluations} evaluations · best log-likelihood ${last.best === null ? "–" : last.best.toFixed(3)}` +
    (answer.done ? " · done" : "");
  if (firstMs !== null) $("timing").textContent = `search started in ${firstMs.toFixed(0)} ms`;
  else if (latencies.length) {
    const sorted = [...latencies].sort((a, b) => a - b);
    $("timing").textContent = `last step shown in ${latencies[latencies.length - 1].toFixed(0)} ms ` +
      `(median ${sorted[Math.floor(sorted.length / 2)].toFixed(0)} ms over ${latencies.length})`;
  }
}

// ---------------------------------------------------------------- the task
async function setTask(task, refit = true) {
  document.body.dataset.state = "encoding";
  state.generation += 1;
  state.task = task;
  state.frames = [];
  state.runId = null;
  state.probe = null;
  state.stop = true;
  renderTask();
  renderTrace();
  await encodeTask(refit);
}

async function encodeTask(refit) {
  const generation = state.generation;
  try {
    const data = await api("POST", "/api/encode", { task: state.task });
    if (generation !== state.generation) return;
    state.encoded = data;
    if (refit || !state.bounds) state.bounds = fitBounds(state.info.cloud.concat(data.pairs, [data.anchor]));
    renderPlane();
    renderDecoded($("decoded"), data.decoded, true);
    $("decoded-of").textContent = "(of the aggregate)";
    $("search-status").textContent = `the aggregate latent: log-likelihood ${data.score.toFixed(3)}`;
    $("probe").replaceChildren();
    showError(null);
    await renderLandscape();
  } catch (err) {
    showError(err);
  } finally {
    if (generation === state.generation && document.body.dataset.state === "encoding") {
      document.body.dataset.state = "ready";
    }
  }
}

let editTimer = null;
function taskEdited() {
  renderTask();
  clearTimeout(editTimer);
  editTimer = setTimeout(() => {
    state.generation += 1;
    state.frames = [];
    state.runId = null;
    state.stop = true;
    renderTrace();
    encodeTask(false);
  }, 150);
}

async function pickTask(index) {
  try {
    const data = await api("GET", `/api/task/${index}`);
    await setTask(data.task);
  } catch (err) { showError(err); }
}

async function loadFile(file) {
  try {
    const text = await file.text();
    const data = await api("POST", "/api/upload", { text });
    const option = document.createElement("option");
    option.value = "file";
    option.textContent = `file: ${file.name}`;
    $("task-select").querySelector('option[value="file"]')?.remove();
    $("task-select").appendChild(option);
    $("task-select").value = "file";
    await setTask(data.task);
  } catch (err) {
    showError(new Error(`${file.name}: ${err.message}`));
  } finally {
    $("task-file").value = "";
  }
}

// ---------------------------------------------------------------- start
async function start() {
  renderPalette();
  showKindFields();
  try {
    state.info = await api("GET", "/api/info");
  } catch (err) { showError(err); return; }
  const info = state.info;
  $("model-info").textContent = `${info.model} · step ${info.step} · grids up to ` +
    `${info.grid[0]}×${info.grid[1]} · latent ${info.latent_dim}`;
  const select = $("task-select");
  for (let i = 0; i < info.tasks; i++) {
    const option = document.createElement("option");
    option.value = i;
    option.textContent = `task ${i}`;
    select.appendChild(option);
  }
  select.addEventListener("change", () => { if (select.value !== "file") pickTask(Number(select.value)); });
  $("task-file").addEventListener("change", (e) => { if (e.target.files[0]) loadFile(e.target.files[0]); });
  $("kind").addEventListener("change", showKindFields);
  $("run").addEventListener("click", runSearch);
  $("stop").addEventListener("click", () => { state.stop = true; });
  $("plane").addEventListener("click", probe);
  $("show-landscape").addEventListener("change", () => renderLandscape().catch(showError));
  $("through").addEventListener("change", () => {
    state.probe = null;
    $("probe").replaceChildren();
    renderSearchMarks();
    renderLandscape().catch(showError);
  });
  $("resolution").addEventListener("change", () => renderLandscape().catch(showError));
  const refit = (withCloud) => {
    if (!state.encoded) return;
    const points = state.encoded.pairs.concat([state.encoded.anchor],
      state.frames.map((f) => f.point), state.frames.map((f) => f.best_point),
      state.probe ? [state.probe] : [], withCloud ? state.info.cloud : []);
    state.bounds = fitBounds(points);
    renderPlane();
    renderLandscape().catch(showError);
  };
  $("zoom-task").addEventListener("click", () => refit(false));
  $("whole-view").addEventListener("click", () => refit(true));
  await pickTask(0);
  document.body.dataset.state = "ready";
}

start();
