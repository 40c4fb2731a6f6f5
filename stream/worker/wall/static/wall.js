// The sales floor wall: asks the worker every few seconds and paints the tiles defined in stream/worker/wall/tiles.py
// (embedded below the page as JSON). No library, no build step: it must run on a TV's browser offline.
"use strict";

const CONFIG = JSON.parse(document.getElementById("wall-config").textContent);
const PARAMS = new URLSearchParams(location.search);
const TOKEN = PARAMS.get("token"); // sent as a bearer token when the deployment protects /kpis
const state = { lastAnswer: 0, docs: {}, status: null, trend: null, failure: null };

// --- formats: the browser test (tests/wall) checks the page against the same rules --------------------
const SYMBOLS = { USD: "$", EUR: "€", GBP: "£" };

function pad2(n) { return String(n).padStart(2, "0"); }

const FORMAT = {
  count: (v) => Math.round(v).toLocaleString("en-US"),
  duration: (v) => {
    const t = Math.floor(v);
    if (t < 60) return `${t}s`;
    if (t < 3600) return `${Math.floor(t / 60)}m ${pad2(t % 60)}s`;
    if (t < 86400) return `${Math.floor(t / 3600)}h ${pad2(Math.floor(t / 60) % 60)}m`;
    return `${Math.floor(t / 86400)}d ${Math.floor(t / 3600) % 24}h`;
  },
  percent: (v) => `${Math.round(v * 100)}%`,
  money: (v) => {
    const sym = SYMBOLS[CONFIG.currency] || `${CONFIG.currency} `;
    if (Math.abs(v) < 1000) return sym + Math.round(v);
    if (Math.abs(v) < 1e6) return sym + (v / 1e3).toFixed(1) + "k";
    return sym + (v / 1e6).toFixed(2) + "M";
  },
};

function format(kind, value) {
  return value === null || value === undefined ? "—" : FORMAT[kind](value);
}

function colourOf(steps, value) {
  if (value === null || value === undefined) return "none";
  let colour = steps[0][1];
  for (const [at, c] of steps) if (at === null || value >= at) colour = c;
  return colour;
}

// --- fetching ------------------------------------------------------------------------------------------
async function getJSON(path) {
  const headers = TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {};
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), CONFIG.refresh_seconds * 1000);
  try {
    const resp = await fetch(path, { headers, cache: "no-store", signal: ctl.signal });
    if (!resp.ok) throw new Error(`${path}: HTTP ${resp.status}`);
    return await resp.json();
  } finally {
    clearTimeout(timer);
  }
}

const teamQuery = CONFIG.team ? `&team=${encodeURIComponent(CONFIG.team)}` : "";

async function refresh() {
  try {
    const [status, ...docs] = await Promise.all([
      getJSON(`/wall/status?${teamQuery.slice(1)}`),
      ...CONFIG.windows.map((w) => getJSON(`/kpis?window=${w}`)),
    ]);
    CONFIG.windows.forEach((w, i) => { state.docs[w] = docs[i]; });
    state.status = status;
    state.lastAnswer = Date.now();
    state.failure = null;
    paint();
  } catch (err) {
    state.failure = String(err.message || err);
  }
  paintFreshness();
}

async function refreshTrend() {
  try {
    state.trend = await getJSON(`/wall/trend?${teamQuery.slice(1)}`);
    paintTrend();
  } catch (err) {
    // The next refresh tries again; the freshness badge reports a worker that stopped answering.
  }
}

// --- painting ------------------------------------------------------------------------------------------
function scopeOf(doc) {
  if (!doc) return null;
  if (!CONFIG.team) return doc.overall || {};
  return (doc.teams || {})[CONFIG.team] || {};
}

function valueOf(tile) {
  const scope = scopeOf(state.docs[tile.window]);
  return scope ? scope[tile.key] ?? null : null;
}

function tileElement(tile, wide) {
  const el = document.createElement("section");
  el.className = "tile" + (wide ? " wide" : "");
  el.id = `tile-${tile.id}`;
  el.dataset.key = tile.key;
  el.dataset.window = tile.window;
  el.dataset.format = tile.format;
  el.innerHTML = `<h2 class="title"></h2><div class="value">—</div><div class="sub"></div>`;
  el.querySelector(".title").textContent = tile.title;
  el.querySelector(".sub").textContent = (tile.note || "").replace("{sla}", format("duration", CONFIG.sla_seconds));
  return el;
}

function build() {
  const band = document.getElementById("headlines");
  const tiles = [...CONFIG.headlines];
  // Row one: the lead-response tiles; row two opens with won today against the target, then the month's
  // win rate, velocity, open pipeline and quota pace (five a row: won today is no longer wide).
  tiles.splice(5, 0, CONFIG.won_today);
  for (const tile of tiles) band.appendChild(tileElement(tile, false));
  const won = document.getElementById(`tile-${CONFIG.won_today.id}`);
  won.querySelector(".sub").insertAdjacentHTML("beforebegin", `<div class="progress"><div></div></div>`);
  document.getElementById("leaderboard-title").textContent = CONFIG.leaderboard.title;
  document.getElementById("trend-title").textContent = CONFIG.trend.title;
  document.getElementById("scope").textContent = CONFIG.team ? `team ${CONFIG.team}` : "all teams";
  document.title = `Sales floor wall — ${CONFIG.team || "all teams"}`;
}

function setValue(el, text, raw) {
  const value = el.querySelector(".value");
  if (value.textContent !== text) {
    value.textContent = text;
    fit(value);
  }
  value.dataset.value = raw === null || raw === undefined ? "" : String(raw);
}

// Shrink a big number until it fits its tile: nothing is ever cut off.
function fit(el) {
  el.style.fontSize = "";
  let size = parseFloat(getComputedStyle(el).fontSize);
  while ((el.scrollWidth > el.clientWidth || el.scrollHeight > el.clientHeight) && size > 24) {
    size *= 0.92;
    el.style.fontSize = `${size}px`;
  }
}

function paintTile(tile) {
  const el = document.getElementById(`tile-${tile.id}`);
  const v = valueOf(tile);
  setValue(el, format(tile.format, v), v);
  el.className = el.className.replace(/\bis-\w+/g, "").trim() + ` is-${colourOf(tile.steps, v)}`;
  return el;
}

function paint() {
  document.body.classList.remove("loading");
  for (const tile of CONFIG.headlines) paintTile(tile);
  const tile = CONFIG.won_today;
  const el = paintTile(tile);
  const won = valueOf(tile);
  const target = state.status && state.status.target ? state.status.target.day : null;
  const share = won !== null && target ? won / target : null;
  const colour = colourOf(CONFIG.won_today.target_steps, share);
  el.className = el.className.replace(/\bis-\w+/g, "").trim() + ` is-${colour}`;
  const bar = el.querySelector(".progress");
  bar.className = `progress is-${colour}`;
  bar.firstElementChild.style.width = `${Math.min(100, Math.round((share || 0) * 100))}%`;
  el.querySelector(".sub").textContent = target === null
    ? "no target in the roster"
    : `target ${format("money", target)} · ${format("percent", share)}`;
  paintLeaderboard();
}

function leaders() {
  const doc = state.docs[CONFIG.leaderboard.window];
  const reps = (doc && doc.reps) || {};
  const allowed = CONFIG.team_reps ? new Set(CONFIG.team_reps) : null;
  return Object.entries(reps)
    .filter(([rep, v]) => rep !== "unassigned" && (!allowed || allowed.has(rep)) && v[CONFIG.leaderboard.key] !== undefined)
    .map(([rep, v]) => [rep, v[CONFIG.leaderboard.key] || 0])
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, CONFIG.leaderboard.size);
}

function paintLeaderboard() {
  const list = document.getElementById("leaderboard");
  const rows = leaders();
  const top = rows.length ? Math.max(rows[0][1], 1) : 1;
  list.innerHTML = "";
  rows.forEach(([rep, amount], i) => {
    const li = document.createElement("li");
    li.dataset.rep = rep;
    li.dataset.value = String(amount);
    li.innerHTML = `<span class="rank">${i + 1}</span><span class="name"></span>` +
      `<span class="bar-track"><span class="bar-fill" style="display:block;width:${(100 * amount) / top}%"></span></span>` +
      `<span class="amount"></span>`;
    li.querySelector(".name").textContent = rep;
    li.querySelector(".amount").textContent = format("money", amount);
    list.appendChild(li);
  });
  if (!rows.length) list.innerHTML = `<li class="empty">no rep has a number this month yet</li>`;
}

function paintTrend() {
  const svg = document.getElementById("trend");
  const t = state.trend;
  if (!t) return;
  // Drawn at the element's own pixel size, so text is never stretched.
  const W = Math.max(300, svg.clientWidth), H = Math.max(150, svg.clientHeight), left = 120, bottom = 36, top = 14;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const sla = t.sla_seconds;
  const values = t.points.flatMap((p) => CONFIG.trend.keys.map(([label]) => p[label])).filter((v) => v !== null);
  const ymax = Math.max(sla * 1.25, ...values) * 1.05;
  const x = (i) => left + ((W - left - 40) * i) / Math.max(1, t.points.length - 1);
  const y = (v) => top + (H - top - bottom) * (1 - v / ymax);
  const parts = [];
  for (const v of [0, sla, ymax / 1.05]) {
    parts.push(`<line class="grid" x1="${left}" x2="${W}" y1="${y(v)}" y2="${y(v)}"/>`);
    parts.push(`<text x="${left - 10}" y="${y(v) + 8}" text-anchor="end">${format("duration", v)}</text>`);
  }
  parts.push(`<line class="sla" x1="${left}" x2="${W}" y1="${y(sla)}" y2="${y(sla)}"/>`);
  t.points.forEach((p, i) => {
    if (i % 3 === 0) {
      const d = new Date(p.at);
      const anchor = i === t.points.length - 1 ? "end" : "middle";
      parts.push(`<text x="${x(i)}" y="${H - 6}" text-anchor="${anchor}">${pad2(d.getHours())}:${pad2(d.getMinutes())}</text>`);
    }
  });
  for (const [label] of CONFIG.trend.keys) {
    let path = "";
    t.points.forEach((p, i) => {
      const v = p[label];
      if (v === null || v === undefined) return;
      path += `${path && t.points[i - 1] && t.points[i - 1][label] !== null ? "L" : "M"}${x(i)},${y(v)} `;
    });
    parts.push(`<path class="${label}" d="${path}"/>`);
  }
  svg.innerHTML = parts.join("");
  document.getElementById("trend-legend").innerHTML =
    `<span class="key median">median</span><span class="key p90">p90</span>` +
    `<span class="key sla">SLA ${format("duration", sla)}</span><span>every ${CONFIG.trend.step_minutes} min, ` +
    `last ${CONFIG.trend.hours} h</span>`;
}

// Stale when no answer came for no_answer_seconds, or when the answers say the data stopped moving.
function staleReason() {
  const silent = (Date.now() - state.lastAnswer) / 1000;
  if (!state.lastAnswer) return state.failure ? "no answer from the worker" : null;
  if (silent > CONFIG.no_answer_seconds) return `no answer from the worker for ${Math.round(silent)}s`;
  const f = state.status.freshness;
  if (f.seconds_since_last_event === null) return "no event processed yet";
  if (f.seconds_since_last_event > CONFIG.stale_seconds) return `no event for ${format("duration", f.seconds_since_last_event)}`;
  if (f.event_time_lag_seconds > CONFIG.stale_seconds) return `newest event is ${format("duration", f.event_time_lag_seconds)} old`;
  return null;
}

function paintFreshness() {
  const badge = document.getElementById("freshness");
  const reason = staleReason();
  const f = state.status && state.status.freshness;
  let colour = "grey", label = "connecting", detail = "";
  if (f) {
    const since = f.seconds_since_last_event, lag = f.event_time_lag_seconds;
    const worst = Math.max(since ?? Infinity, lag ?? Infinity);
    colour = worst >= CONFIG.stale_seconds ? "red" : worst >= CONFIG.fresh_seconds ? "orange" : "green";
    label = "live";
    detail = `last event ${format("duration", since)} ago · event time lag ${format("duration", lag)}`;
    if (f.unreachable_workers.length) detail += ` · ${f.unreachable_workers.length} worker(s) not answering`;
  }
  if (reason) {
    colour = "red";
    label = "stale";
    detail = reason;
  }
  badge.className = `badge is-${colour}`;
  document.getElementById("freshness-state").textContent = label;
  document.getElementById("freshness-detail").textContent = detail;
  document.body.classList.toggle("stale", Boolean(reason));
  const banner = document.getElementById("stale-banner");
  banner.hidden = !reason;
  banner.textContent = reason ? "STALE" : "";
  badge.dataset.reason = reason || "";
}

function tickClock() {
  const d = new Date();
  document.getElementById("clock").textContent = `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
  paintFreshness();
}

build();
refresh();
refreshTrend();
setInterval(refresh, CONFIG.refresh_seconds * 1000);
setInterval(refreshTrend, CONFIG.trend_refresh_seconds * 1000);
setInterval(tickClock, 1000);
tickClock();
