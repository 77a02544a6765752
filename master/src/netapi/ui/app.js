// The Brine web UI: plain DOM, no framework, no network beyond this
// master. Talks to the salt-api compatible REST API (POST /login, POST /
// with lowstates) and follows the event bus over the /ws WebSocket.
"use strict";

const MAX_EVENTS = 1000;   // kept in memory for the tag filter
const SHOWN_EVENTS = 200;  // rendered in the log
const SHOWN_JOBS = 50;
const BUFFERED_JOBS = 64;  // returns that arrive before their publish reply

const $ = (id) => document.getElementById(id);

/** An element with attributes and children (strings become text). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

const state = {
  token: sessionStorage.getItem("brine.token"),
  user: sessionStorage.getItem("brine.user") || "",
  ws: null,
  retries: 0,
  keys: {},
  lastSeen: new Map(),
  live: null,
  publishing: 0,      // publishes awaiting their reply
  early: new Map(),   // jid -> [return event data] while publishing, bounded
  events: [],
  unlogged: [],       // events not yet drawn (drawn once per frame)
  paused: false,
  timers: {},
};

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (state.token) headers["X-Auth-Token"] = state.token;
  const res = await fetch(path, {
    method: body === undefined ? "GET" : "POST",
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  let data = null;
  try { data = await res.json(); } catch { /* not JSON */ }
  if (res.status === 401 && path !== "/login") showLogin("Your session has ended; please log in again.");
  if (!res.ok) {
    const reason = data && typeof data.return === "string" ? data.return : res.statusText;
    throw new ApiError(res.status, `${res.status}: ${reason}`);
  }
  return data;
}

/** Runs one lowstate and gives its return. */
async function low(chunk) {
  const data = await api("/", [chunk]);
  return data.return[0];
}

/** Calls `fn` once, `ms` after the last of several quick calls. */
function debounce(name, ms, fn) {
  clearTimeout(state.timers[name]);
  state.timers[name] = setTimeout(fn, ms);
}

const show = (value) => typeof value === "string" ? value : JSON.stringify(value, null, 2);
const scalar = (value) => value === null || typeof value !== "object";
/** A grain: a list of plain values on one line, anything else as JSON. */
const showGrain = (value) => Array.isArray(value) && value.every(scalar) ? value.join(", ") : show(value);
const clock = (ms) => new Date(ms).toLocaleTimeString();

// ---- login ---------------------------------------------------------------

function showLogin(message) {
  state.token = null;
  sessionStorage.removeItem("brine.token");
  if (state.ws) { state.ws.onclose = null; state.ws.close(); state.ws = null; }
  setStream("offline");
  $("app-view").hidden = true;
  $("who").hidden = $("logout").hidden = true;
  $("login-view").hidden = false;
  $("login-error").textContent = message || "";
  $("login-user").focus();
}

function showApp() {
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  $("who").textContent = state.user;
  $("who").hidden = $("logout").hidden = false;
  connect();
  loadKeys();
  loadJobs();
  $("run-tgt").focus();
}

async function login(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const creds = Object.fromEntries(form.entries());
  $("login-error").textContent = "";
  try {
    const data = await api("/login", creds);
    const session = data.return[0];
    state.token = session.token;
    state.user = session.user;
    sessionStorage.setItem("brine.token", state.token);
    sessionStorage.setItem("brine.user", state.user);
    $("login-password").value = "";
    showApp();
  } catch (err) {
    $("login-error").textContent = err.status === 401 ? "Wrong user, password or authentication." : err.message;
  }
}

async function logout() {
  try { await api("/logout", {}); } catch { /* gone already */ }
  showLogin("");
}

// ---- live events -----------------------------------------------------------

function setStream(text) {
  $("stream").textContent = text;
  $("stream").dataset.state = text;
}

function connect() {
  if (!state.token) return;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/ws?token=${encodeURIComponent(state.token)}`);
  state.ws = ws;
  setStream("connecting");
  ws.onopen = () => {
    const reconnected = state.retries > 0;
    state.retries = 0;
    setStream("live");
    if (reconnected) { loadKeys(); loadJobs(); }
  };
  ws.onmessage = (msg) => {
    let event;
    try { event = JSON.parse(msg.data); } catch { return; }
    if (event && typeof event.tag === "string") onEvent(event.tag, event.data || {});
  };
  let opened = false;
  ws.addEventListener("open", () => { opened = true; });
  ws.onclose = () => {
    state.ws = null;
    if (!state.token) return;
    if (!opened) loadKeys(); // a refused upgrade: a 401 here shows the login
    setStream("reconnecting");
    const delay = Math.min(10000, 500 * 2 ** state.retries++);
    setTimeout(() => { if (state.token && !state.ws) connect(); }, delay);
  };
}

function onEvent(tag, data) {
  const at = Date.now();
  const id = typeof data.id === "string" ? data.id : null;
  const parts = tag.split("/");
  if (parts[0] === "salt" && parts[1] === "job" && parts[3] === "ret") {
    if (id) seen(id, at);
    onReturn(parts[2], data);
  } else if (parts[0] === "salt" && parts[1] === "job" && parts[3] === "new") {
    debounce("jobs", 800, loadJobs);
  } else if (tag === "salt/key" || tag === "salt/auth") {
    if (tag === "salt/auth" && id) seen(id, at);
    debounce("keys", 250, loadKeys);
  } else if (id && (tag.startsWith("minion_start") || tag.startsWith("salt/minion/"))) {
    seen(id, at);
  }
  logEvent({ at, tag, data });
}

// ---- minions and keys -------------------------------------------------------

const KEY_STATES = [
  ["minions_pre", "pending"],
  ["minions", "accepted"],
  ["minions_rejected", "rejected"],
  ["minions_denied", "denied"],
];

async function loadKeys() {
  try {
    const reply = await low({ client: "wheel", fun: "key.list_all" });
    state.keys = reply.data.return;
    renderKeys();
    $("keys-status").textContent = "";
  } catch (err) {
    $("keys-status").textContent = `Could not list keys: ${err.message}`;
  }
}

function renderKeys() {
  const rows = [];
  for (const [field, label] of KEY_STATES) {
    for (const id of [...(state.keys[field] || [])].sort()) rows.push(minionRow(id, label));
  }
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 4, class: "muted", text: "No minion keys yet." })));
  $("minion-rows").replaceChildren(...rows);
}

function minionRow(id, keyState) {
  const actions = el("td", { class: "actions" });
  const act = (fun, label, extra = {}) =>
    el("button", { type: "button", text: label, "aria-label": `${label} ${id}`, onclick: () => keyAction(fun, id, extra) });
  if (keyState === "pending") actions.append(act("key.accept", "Accept"), act("key.reject", "Reject"));
  else if (keyState === "rejected") actions.append(act("key.accept", "Accept", { include_rejected: true }));
  else if (keyState === "denied") actions.append(act("key.accept", "Accept", { include_denied: true }));
  else actions.append(el("button", { type: "button", text: "Grains", "aria-label": `Grains of ${id}`, onclick: () => loadGrains(id) }));
  const seenAt = state.lastSeen.get(id);
  return el("tr", { "data-minion": id, "data-key": keyState },
    el("th", { scope: "row" }, el("button", { type: "button", class: "link", title: "Use as target", text: id, onclick: () => target(id) })),
    el("td", {}, el("span", { class: `badge ${keyState}`, text: keyState })),
    el("td", { class: "seen", title: seenAt ? new Date(seenAt).toString() : "", text: seenAt ? clock(seenAt) : "—" }),
    actions);
}

function target(id) {
  $("run-tgt").value = id;
  $("run-tgt-type").value = "list";
  $("run-fun").focus();
}

async function keyAction(fun, id, extra) {
  $("keys-status").textContent = `${fun} ${id}…`;
  try {
    const reply = await low({ client: "wheel", fun, match: id, ...extra });
    $("keys-status").textContent = reply.data.success ? `${fun} ${id}: done` : `${fun} ${id}: ${show(reply.data.return)}`;
  } catch (err) {
    $("keys-status").textContent = `${fun} ${id} failed: ${err.message}`;
  }
  loadKeys();
}

function seen(id, at) {
  state.lastSeen.set(id, at);
  const row = document.querySelector(`#minion-rows tr[data-minion="${CSS.escape(id)}"] .seen`);
  if (row) { row.textContent = clock(at); row.title = new Date(at).toString(); }
}

async function loadGrains(id) {
  $("grains").hidden = false;
  $("grains-title").textContent = `Grains of ${id}`;
  $("grains-status").textContent = "Loading…";
  $("grain-rows").replaceChildren();
  try {
    const reply = await low({ client: "local", tgt: id, tgt_type: "list", fun: "grains.items" });
    const grains = reply[id];
    if (!grains || typeof grains !== "object") {
      $("grains-status").textContent = `${id} did not return its grains.`;
      return;
    }
    $("grains-status").textContent = "";
    $("grain-rows").replaceChildren(...Object.keys(grains).sort().map((name) =>
      el("tr", { "data-grain": name }, el("th", { scope: "row", text: name }), el("td", {}, el("pre", { text: showGrain(grains[name]) })))));
  } catch (err) {
    $("grains-status").textContent = `Could not load grains: ${err.message}`;
  }
}

// ---- run a job, returns live --------------------------------------------------

/** Splits arguments as a shell would: spaces separate, quotes group. */
function splitArgs(text) {
  const out = [];
  let cur = null, quote = null;
  for (const ch of text) {
    if (quote) { if (ch === quote) quote = null; else cur += ch; }
    else if (ch === "'" || ch === '"') { quote = ch; cur = cur ?? ""; }
    else if (/\s/.test(ch)) { if (cur !== null) { out.push(cur); cur = null; } }
    else cur = (cur ?? "") + ch;
  }
  if (cur !== null) out.push(cur);
  return out;
}

async function run(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const chunk = {
    client: "local_async",
    tgt: form.get("tgt").trim(),
    tgt_type: form.get("tgt_type"),
    fun: form.get("fun").trim(),
    arg: splitArgs(form.get("arg")),
  };
  $("run-error").textContent = "";
  $("run-submit").disabled = true;
  const started = performance.now();
  state.publishing++;
  try {
    const pub = await low(chunk);
    if (!pub || !pub.jid) {
      $("job-live").hidden = true;
      $("run-error").textContent = `No minions matched ${chunk.tgt_type} target ${chunk.tgt}.`;
      return;
    }
    startLive(pub.jid, pub.minions || [], chunk, started);
  } catch (err) {
    $("run-error").textContent = `Could not publish: ${err.message}`;
  } finally {
    $("run-submit").disabled = false;
    if (--state.publishing === 0) state.early.clear();
  }
}

function startLive(jid, minions, chunk, started) {
  const rows = new Map();
  for (const id of [...minions].sort()) rows.set(id, resultRow(id));
  state.live = { jid, expected: new Set(minions), returned: new Set(), done: 0, rows, started };
  $("job-live").hidden = false;
  $("job-live").dataset.jid = jid;
  $("live-title").textContent = `${chunk.fun} on ${chunk.tgt} — job ${jid}`;
  $("live-rows").replaceChildren(...rows.values());
  for (const data of state.early.get(jid) || []) addReturn(state.live, data);
  state.early.delete(jid);
  progress();
}

function onReturn(jid, data) {
  if (state.live && state.live.jid === jid) { addReturn(state.live, data); progress(); return; }
  if (state.publishing === 0) return;
  if (!state.early.has(jid) && state.early.size >= BUFFERED_JOBS) state.early.delete(state.early.keys().next().value);
  const list = state.early.get(jid) || [];
  if (list.length < 10000) list.push(data);
  state.early.set(jid, list);
}

function resultRow(id, data) {
  const row = el("tr", { "data-minion": id });
  fillResult(row, id, data);
  return row;
}

function fillResult(row, id, data) {
  let status, cls, body;
  if (data === undefined) { status = "waiting"; cls = "waiting"; body = ""; }
  else {
    const ok = data.success !== false && (data.retcode === undefined || data.retcode === 0);
    status = ok ? "ok" : `retcode ${data.retcode ?? "?"}`;
    cls = ok ? "ok" : "failed";
    body = show(data.return);
  }
  row.dataset.status = cls;
  row.replaceChildren(
    el("th", { scope: "row", text: id }),
    el("td", {}, el("span", { class: `badge ${cls}`, text: status })),
    el("td", {}, el("pre", { text: body })));
}

function addReturn(live, data) {
  const id = typeof data.id === "string" ? data.id : "?";
  if (live.expected.has(id) && !live.returned.has(id)) live.done++;
  live.returned.add(id);
  let row = live.rows.get(id);
  if (!row) { row = resultRow(id); live.rows.set(id, row); $("live-rows").append(row); }
  fillResult(row, id, data);
}

function progress() {
  const live = state.live;
  const expected = live.expected.size;
  const done = live.done;
  $("live-progress").max = Math.max(expected, 1);
  $("live-progress").value = done;
  let text = `${done} of ${expected} minion${expected === 1 ? "" : "s"} returned`;
  if (done >= expected) {
    text += ` in ${Math.round(performance.now() - live.started)} ms`;
    $("job-live").dataset.complete = "true";
  } else {
    delete $("job-live").dataset.complete;
  }
  $("live-count").textContent = text;
}

// ---- job history ----------------------------------------------------------------

async function loadJobs() {
  try {
    const jobs = await low({ client: "runner", fun: "jobs.list_jobs" });
    const jids = Object.keys(jobs || {}).sort().reverse().slice(0, SHOWN_JOBS);
    $("job-rows").replaceChildren(...jids.map((jid) => jobRow(jid, jobs[jid])));
    const open = $("job-detail").hidden ? null : $("job-detail").dataset.jid;
    for (const row of $("job-rows").rows) row.classList.toggle("open", row.dataset.jid === open);
    $("jobs-status").textContent = jids.length ? "" : "No jobs yet.";
  } catch (err) {
    $("jobs-status").textContent = `Could not list jobs: ${err.message}`;
  }
}

function jobRow(jid, job) {
  const tgt = Array.isArray(job.Target) ? job.Target.join(",") : String(job.Target ?? "");
  return el("tr", { "data-jid": jid },
    el("td", { class: "mono", title: job.StartTime || "", text: jid }),
    el("td", { text: job.Function || "" }),
    el("td", { class: "mono", text: tgt }),
    el("td", { text: job.User || "" }),
    el("td", {}, el("button", { type: "button", text: "Open", "aria-label": `Open job ${jid}`, onclick: () => openJob(jid, job) })));
}

async function openJob(jid, job) {
  $("job-detail").hidden = false;
  $("job-detail").dataset.jid = jid;
  for (const row of $("job-rows").rows) row.classList.toggle("open", row.dataset.jid === jid);
  $("detail-title").textContent = `Job ${jid}: ${job.Function || ""} (${job.StartTime || ""})`;
  $("detail-rows").replaceChildren();
  try {
    const returns = await low({ client: "runner", fun: "jobs.lookup_jid", jid, missing: true });
    const ids = Object.keys(returns || {}).sort();
    $("detail-rows").replaceChildren(...ids.map((id) => {
      const value = returns[id];
      const missing = value === "Minion did not return";
      const row = el("tr", { "data-minion": id });
      row.dataset.status = missing ? "waiting" : "ok";
      row.append(el("th", { scope: "row", text: id }),
        el("td", {}, el("span", { class: `badge ${missing ? "failed" : "ok"}`, text: missing ? "no return" : "returned" })),
        el("td", {}, el("pre", { text: show(value) })));
      return row;
    }));
    if (!ids.length) $("detail-rows").append(el("tr", {}, el("td", { class: "muted", text: "No returns stored." })));
  } catch (err) {
    $("detail-rows").append(el("tr", {}, el("td", { class: "error", text: `Could not look up the job: ${err.message}` })));
  }
}

// ---- event log ------------------------------------------------------------------

/** A tag filter: glob when it has `*` or `?`, otherwise a substring. */
function tagMatcher(text) {
  const filter = text.trim();
  if (!filter) return () => true;
  if (!/[*?]/.test(filter)) return (tag) => tag.includes(filter);
  const re = new RegExp("^" + filter.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".") + "$");
  return (tag) => re.test(tag);
}

let matches = tagMatcher("");

function logEvent(event) {
  state.events.push(event);
  if (state.events.length > MAX_EVENTS) state.events.shift();
  if (!state.paused && matches(event.tag)) {
    state.unlogged.push(event);
    if (state.unlogged.length > SHOWN_EVENTS) state.unlogged.shift();
  }
  if (!state.timers.draw) state.timers.draw = requestAnimationFrame(drawEvents);
}

/** Draws the events that arrived since the last frame, newest first. */
function drawEvents() {
  state.timers.draw = 0;
  const list = $("event-list");
  const fresh = document.createDocumentFragment();
  for (const event of state.unlogged.reverse()) fresh.append(eventItem(event));
  state.unlogged = [];
  list.prepend(fresh);
  while (list.childElementCount > SHOWN_EVENTS) list.lastElementChild.remove();
  countEvents();
}

function eventItem(event) {
  const details = el("details", {}, el("summary", {},
    el("time", { text: clock(event.at) }), " ", el("code", { text: event.tag })));
  // the JSON is built on first open: big returns cost nothing until looked at
  details.addEventListener("toggle", () => {
    if (details.open && details.childElementCount === 1) details.append(el("pre", { text: show(event.data) }));
  });
  return el("li", { "data-tag": event.tag }, details);
}

function renderEvents() {
  state.unlogged = [];
  const shown = state.events.filter((e) => matches(e.tag)).slice(-SHOWN_EVENTS).reverse();
  $("event-list").replaceChildren(...shown.map(eventItem));
  countEvents();
}

function countEvents() {
  const shown = $("event-list").childElementCount;
  $("events-count").textContent = `${shown} shown of ${state.events.length} received${state.paused ? " (paused)" : ""}`;
}

// ---- wiring -----------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("keys-refresh").addEventListener("click", loadKeys);
  $("jobs-refresh").addEventListener("click", loadJobs);
  $("run-form").addEventListener("submit", run);
  $("grains-close").addEventListener("click", () => { $("grains").hidden = true; });
  $("event-filter").addEventListener("input", (e) => {
    matches = tagMatcher(e.target.value);
    debounce("filter", 120, renderEvents);
  });
  $("events-pause").addEventListener("click", (e) => {
    state.paused = !state.paused;
    e.target.setAttribute("aria-pressed", String(state.paused));
    e.target.textContent = state.paused ? "Resume" : "Pause";
    if (!state.paused) renderEvents(); else countEvents();
  });
  $("events-clear").addEventListener("click", () => { state.events = []; renderEvents(); });
  if (state.token) showApp(); else showLogin("");
});
