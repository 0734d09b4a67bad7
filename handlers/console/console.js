// The operator console: plain DOM, no framework, no build step. Every string that comes
// from the gateway or an agent is set as text (textContent, Text nodes), never as HTML,
// and the page's Content-Security-Policy runs no script but this file.

const KEY_STORAGE = "agent-gateway-key";
const ACTIVE = new Set(["queued", "running", "waiting_input"]);
const LONG_TEXT = 1200; // a tool result or result longer than this starts folded
const RUNS_LISTED = 200; // the runs view shows the newest this many
const TEXT_CHUNK = 16384; // characters of streamed text per element (see Transcript.extend)
const FRAME_BUDGET_MS = 12; // rendering work per animation frame, so input stays responsive

const $ = (id) => document.getElementById(id);

// ---- the API ------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const api = {
  key: sessionStorage.getItem(KEY_STORAGE) || "",
  caller: null, // GET /whoami

  headers(extra = {}) {
    return this.key ? { "X-API-Key": this.key, ...extra } : extra;
  },

  async request(method, path, body, withHeaders = false) {
    const init = { method, headers: this.headers(), cache: "no-store" };
    if (body !== undefined) {
      init.headers = this.headers({ "Content-Type": "application/json" });
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    if (!response.ok) throw new ApiError(response.status, await errorMessage(response));
    const data = response.status === 204 ? null : await response.json();
    return withHeaders ? { data, headers: response.headers } : data;
  },

  get(path) {
    return this.request("GET", path);
  },

  post(path, body = {}) {
    return this.request("POST", path, body);
  },

  mayRun() {
    return this.caller && (this.caller.role === "run" || this.caller.role === "admin");
  },
};

async function errorMessage(response) {
  try {
    const body = await response.json();
    return body.error ? body.error.message : `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

// ---- SSE over fetch -----------------------------------------------------------------

// Parses a text/event-stream body; yields the events of each chunk together, so a
// backlog of thousands is handed over (and rendered) in a few passes, not one by one.
async function* readEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = { id: null, name: "message", data: "" };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      // \r\n and \r end lines too (a \r at the end waits: a \n may follow it)
      const lines = buffer.split(/\r\n|\n|\r(?!$)/);
      buffer = lines.pop();
      const events = [];
      for (const line of lines) {
        if (line === "") {
          if (event.data) {
            try {
              events.push({ id: event.id, name: event.name, data: JSON.parse(event.data) });
            } catch {
              // the gateway only sends JSON; anything else is not ours to show
            }
          }
          event = { id: null, name: "message", data: "" };
        } else if (!line.startsWith(":")) {
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let value = colon < 0 ? "" : line.slice(colon + 1);
          if (value.startsWith(" ")) value = value.slice(1);
          if (field === "id") event.id = Number(value);
          else if (field === "event") event.name = value;
          else if (field === "data") event.data += event.data ? "\n" + value : value;
        }
      }
      if (events.length) yield events;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

// Follows a stream until it sends `done` or `stop()` is called, resuming after the last
// id whenever the connection ends early (a restart, a slow-subscriber cut, the network).
// fetch, not EventSource: the runs feed needs the key in a header, and EventSource would
// reconnect (and replay) after `done`. `open(lastId)` gives the URL and headers to use.
function follow(open, onEvents, onState) {
  const controller = new AbortController();
  let stopped = false;
  let lastId = null;
  (async () => {
    let delay = 500;
    while (!stopped) {
      try {
        const { url, headers } = await open(lastId);
        const response = await fetch(url, {
          headers: lastId === null ? headers : { ...headers, "Last-Event-ID": String(lastId) },
          signal: controller.signal,
          cache: "no-store",
        });
        if (!response.ok) throw new ApiError(response.status, await errorMessage(response));
        onState("live");
        delay = 500;
        for await (const events of readEvents(response.body)) {
          for (const event of events) if (event.id !== null) lastId = event.id;
          onEvents(events);
          if (events.some((event) => event.name === "done")) stopped = true;
          if (stopped) break;
        }
        if (stopped) return;
        onState("reconnecting");
      } catch (error) {
        if (stopped) return;
        if ([401, 403, 404].includes(error.status)) {
          onState(`stopped: ${error.message}`); // will not get better by trying again
          return;
        }
        onState(`reconnecting: ${error.message}`);
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 10000);
    }
  })();
  return () => {
    stopped = true;
    controller.abort();
  };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- small DOM helpers --------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "text") node.textContent = value;
    else if (name === "className") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) if (child !== null) node.append(child);
  return node;
}

function cell(text) {
  return el("td", { text: text ?? "" });
}

function json(value) {
  return JSON.stringify(value, null, 2);
}

function shortId(id) {
  return id.slice(0, 8);
}

function since(iso, until = Date.now()) {
  if (!iso) return "";
  const seconds = Math.max(0, Math.round((until - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${seconds % 60}s`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
  return `${Math.floor(seconds / 86400)}d`;
}

function duration(record) {
  if (!record.started_at) return "";
  return since(record.started_at, record.finished_at ? Date.parse(record.finished_at) : Date.now());
}

function tokens(record) {
  if (record.input_tokens === null && record.output_tokens === null) return "";
  return `${record.input_tokens ?? "?"} / ${record.output_tokens ?? "?"}`;
}

function cost(value) {
  return value === null || value === undefined ? "" : `$${value.toFixed(4)}`;
}

function toast(message) {
  const node = $("toast");
  node.textContent = message;
  node.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (node.hidden = true), 6000);
}

// A block of text that starts folded when it is long.
function foldable(label, text, className = "") {
  const pre = el("pre", { className, text });
  if (text.length <= LONG_TEXT && text.split("\n").length <= 20) return pre;
  return el("details", {}, el("summary", { text: `${label} (${text.length} characters)` }), pre);
}

// ---- views --------------------------------------------------------------------------

const VIEWS = ["login", "runs", "run", "providers", "projects"];
let leaveView = () => {};
let navigation = 0; // counts route() calls: a view opened by an older one is stale

function show(name) {
  for (const view of VIEWS) $(`${view}-view`).hidden = view !== name;
  $("nav").hidden = name === "login";
}

async function route() {
  leaveView();
  leaveView = () => {};
  const current = ++navigation;
  const stale = () => current !== navigation;
  if (!api.caller) {
    show("login");
    $("api-key").focus();
    return;
  }
  const [, view, ...rest] = location.hash.split("/");
  try {
    let leave = () => {};
    if (view === "run" && rest.length === 2) leave = await openRun(rest[0], rest[1], stale);
    else if (view === "providers") await openProviders();
    else if (view === "projects") await openProjects();
    else leave = await openRuns(stale);
    if (stale()) leave();
    else leaveView = leave;
  } catch (error) {
    toast(error.message);
  }
}

async function signIn(key) {
  api.key = key;
  try {
    api.caller = await api.get("/whoami");
  } catch (error) {
    api.caller = null;
    throw error;
  }
  sessionStorage.setItem(KEY_STORAGE, key);
  const who = api.caller.name ? `${api.caller.name} (${api.caller.role})` : "auth off";
  $("who").textContent = who;
}

function signOut() {
  sessionStorage.removeItem(KEY_STORAGE);
  api.key = "";
  api.caller = null;
  location.hash = "";
  route();
}

// ---- runs: the list, live from the runs feed ----------------------------------------

async function openRuns(stale) {
  show("runs");
  const project = $("filter-project").value;
  const status = $("filter-status").value;
  const rows = new Map(); // run_id -> {record, row}
  const tbody = $("runs-table").tBodies[0];
  const positions = new Map(); // run_id -> queue position

  const query = new URLSearchParams({ limit: String(RUNS_LISTED) });
  if (project) query.set("project", project);
  if (status) query.set("status", status);
  const list = () => api.request("GET", `/runs?${query}`, undefined, true);
  const [listed, entries] = await Promise.all([list(), api.get("/queue")]);
  if (stale()) return () => {};
  tbody.replaceChildren();
  showQueue(entries);
  for (const record of listed.data) tbody.append(upsert(record).row);
  addProjects(listed.data.map((record) => record.project_id));
  countRuns();

  function matches(record) {
    return (!project || record.project_id === project) && (!status || record.status === status);
  }

  function upsert(record) {
    let entry = rows.get(record.run_id);
    if (!entry) {
      const link = el("a", { href: `#/run/${record.project_id}/${record.run_id}`, text: shortId(record.run_id) });
      const row = el("tr", {}, el("td", {}, link));
      for (let i = 0; i < 7; i++) row.append(el("td"));
      entry = { record, row };
      rows.set(record.run_id, entry);
    }
    entry.record = record;
    const cells = entry.row.cells;
    cells[1].textContent = record.project_id;
    cells[2].textContent = record.provider ?? "";
    const position = positions.get(record.run_id);
    cells[3].textContent = position ? `${record.status} #${position}` : record.status;
    cells[3].className = `status ${record.status}`;
    cells[4].textContent = since(record.created_at);
    cells[5].textContent = duration(record);
    cells[6].textContent = tokens(record);
    cells[7].textContent = cost(record.cost_usd);
    return entry;
  }

  function countRuns() {
    $("runs-count").textContent = `(${rows.size})`;
  }

  async function refreshQueue() {
    const entries = await api.get("/queue");
    if (!stale()) showQueue(entries);
  }

  function showQueue(entries) {
    positions.clear();
    const queueBody = $("queue-table").tBodies[0];
    queueBody.replaceChildren();
    for (const entry of entries) {
      if (project && entry.project_id !== project) continue;
      positions.set(entry.run_id, entry.position);
      const link = el("a", { href: `#/run/${entry.project_id}/${entry.run_id}`, text: shortId(entry.run_id) });
      queueBody.append(
        el("tr", {}, cell(entry.position), el("td", {}, link), cell(entry.project_id),
          cell(entry.priority), cell(since(entry.queued_at))),
      );
    }
    $("queue-count").textContent = `(${positions.size})`;
    for (const entry of rows.values()) upsert(entry.record);
  }

  // Queue positions are not in run records: re-read the queue when a run joins or leaves
  // it, at most once a second.
  let queueTimer = null;
  function queueChanged() {
    if (queueTimer === null) {
      queueTimer = setTimeout(() => {
        queueTimer = null;
        refreshQueue().catch((error) => toast(error.message));
      }, 1000);
    }
  }

  // Newest first, at most RUNS_LISTED: a run the list has not got goes where its start
  // puts it, and the oldest goes when there are too many.
  function insert(entry) {
    const created = entry.record.created_at;
    const next = [...rows.values()].find((other) => other !== entry && other.record.created_at < created);
    tbody.insertBefore(entry.row, next ? next.row : null);
    if (rows.size <= RUNS_LISTED) return;
    const oldest = tbody.rows[tbody.rows.length - 1];
    for (const [runId, other] of rows) {
      if (other.row === oldest) {
        oldest.remove();
        rows.delete(runId);
        break;
      }
    }
  }

  function onEvents(events) {
    for (const { name, data: record } of events) {
      if (name === "gap") {
        relist(); // changes were missed: the list is read again
        continue;
      }
      if (name !== "run") continue;
      const known = rows.get(record.run_id);
      if (record.status === "queued" || positions.has(record.run_id)) queueChanged();
      if (!matches(record)) {
        if (known) {
          known.row.remove();
          rows.delete(record.run_id);
        }
        continue;
      }
      const entry = upsert(record);
      if (!known) insert(entry);
    }
    addProjects(events.map((event) => event.data.project_id).filter(Boolean));
    countRuns();
  }

  function relist() {
    list().then(({ data }) => {
      if (stale()) return;
      onEvents(data.map((record) => ({ name: "run", data: record })));
    }, (error) => toast(error.message));
  }

  const feed = new URLSearchParams();
  if (project) feed.set("project", project);
  // From where the list was taken: the feed's history before it is not sent again.
  const from = Number(listed.headers.get("Feed-Last-Event-ID") || 0);
  const stop = follow(
    async (lastId) => {
      const resume = lastId ?? from;
      return { url: `/events?${feed}`, headers: api.headers(resume ? { "Last-Event-ID": String(resume) } : {}) };
    },
    onEvents,
    (state) => ($("feed-state").textContent = state),
  );
  // Ages and durations move on without events.
  const ticker = setInterval(() => {
    for (const { record, row } of rows.values()) {
      row.cells[4].textContent = since(record.created_at);
      if (ACTIVE.has(record.status)) row.cells[5].textContent = duration(record);
    }
  }, 1000);
  return () => {
    stop();
    clearInterval(ticker);
    clearTimeout(queueTimer);
  };
}

function addProjects(projects) {
  const select = $("filter-project");
  const known = new Set([...select.options].map((option) => option.value));
  for (const project of projects) {
    if (project && !known.has(project)) {
      known.add(project);
      select.append(el("option", { value: project, text: project }));
    }
  }
}

// ---- one run: its stream as a person reads it ---------------------------------------

async function openRun(projectId, runId, stale) {
  show("run");
  const path = `/projects/${encodeURIComponent(projectId)}/runs/${encodeURIComponent(runId)}`;
  const first = await api.get(path);
  if (stale()) return () => {};
  $("run-title").textContent = `Run ${runId} in ${projectId}`;
  const transcript = new Transcript($("transcript"), $("side-lines"), $("side-count"), path);
  let record = null;

  const showRecord = (fresh) => {
    record = fresh;
    renderFacts(record);
    const active = ACTIVE.has(record.status);
    const interactive = Boolean(record.settings && record.settings.interactive);
    const mayRun = api.mayRun();
    $("cancel-run").hidden = !mayRun;
    $("cancel-run").disabled = !active;
    $("interrupt-run").hidden = !(mayRun && interactive);
    $("close-run").hidden = !(mayRun && interactive);
    $("interrupt-run").disabled = $("close-run").disabled = !active;
    $("message-form").hidden = !(mayRun && interactive && active);
  };
  showRecord(first);
  $("run-settings").querySelector("pre").textContent = json({
    template: record.template,
    ...record.settings,
  });

  const actions = new AbortController();
  const act = async (what, body) => {
    try {
      showRecord(await api.post(`${path}/${what}`, body));
    } catch (error) {
      toast(`${what}: ${error.message}`);
    }
  };
  $("cancel-run").addEventListener("click", () => act("cancel"), { signal: actions.signal });
  $("interrupt-run").addEventListener("click", () => act("interrupt"), { signal: actions.signal });
  $("close-run").addEventListener("click", () => act("close"), { signal: actions.signal });
  $("message-form").addEventListener(
    "submit",
    (submit) => {
      submit.preventDefault();
      const message = $("message").value;
      if (!message.trim()) return;
      $("message").value = "";
      act("input", { message, when: $("message-when").value });
    },
    { signal: actions.signal },
  );

  const stop = follow(
    // Each (re)connect reads the record again: fresh facts and a freshly signed URL.
    async (lastId) => {
      if (lastId !== null) showRecord(await api.get(path));
      return { url: record.stream_url, headers: {} };
    },
    (events) => {
      transcript.add(events);
      const changed = events.some((event) => event.name === "status" || event.name === "done");
      if (changed) api.get(path).then(showRecord, (error) => toast(error.message));
    },
    (state) => ($("stream-state").textContent = state),
  );
  return () => {
    stop();
    actions.abort();
    transcript.close();
  };
}

function renderFacts(record) {
  const facts = [
    ["Status", record.status],
    ["Provider", record.provider ?? "not started"],
    ["Skipped", record.providers_skipped.join("; ")],
    ["Template", record.template ?? ""],
    ["Created", record.created_at],
    ["Duration", duration(record)],
    ["Turns", record.turns ? String(record.turns) : ""],
    ["Tokens in / out", tokens(record)],
    ["Cost", cost(record.cost_usd)],
    ["Exit code", record.exit_code ?? ""],
    ["Session", record.session_id ?? ""],
    ["Credentials", record.credentials.join(", ")],
    ["Pipeline", record.pipeline ? record.pipeline.link || record.pipeline.error || json(record.pipeline) : ""],
    ["Metadata", Object.entries(record.metadata).map(([k, v]) => `${k}=${v}`).join(" ")],
    ["Error", record.error ?? ""],
  ];
  const list = $("run-facts");
  list.replaceChildren();
  for (const [name, value] of facts) {
    if (value === "" || value === null) continue;
    list.append(el("div", {}, el("dt", { text: name }), el("dd", { text: String(value) })));
  }
}

// Renders a run's events incrementally: they wait in a queue and are turned into DOM in
// slices of at most FRAME_BUDGET_MS per animation frame. Consecutive text (or thinking)
// deltas grow one Text node, so a 50,000-delta stream is a handful of nodes.
class Transcript {
  constructor(root, side, sideCount, runPath) {
    this.root = root;
    this.side = side;
    this.sideCount = sideCount;
    this.runPath = runPath;
    this.waiting = [];
    this.next = 0;
    this.frame = null;
    this.open = null; // {type, body, chunk: Text, pending} of the block deltas extend
    this.tools = new Map(); // tool_use id -> the element its result goes in
    this.requests = new Map(); // request_id -> its card's controls
    this.sideLines = 0;
    this.sideOpen = null; // {type, text: Text} that the next line of that type extends
    root.replaceChildren();
    side.replaceChildren();
    sideCount.textContent = "0";
  }

  add(events) {
    for (const event of events) this.waiting.push(event);
    if (this.frame === null) this.frame = requestAnimationFrame(() => this.flush());
  }

  close() {
    if (this.frame !== null) cancelAnimationFrame(this.frame);
    this.frame = null;
    this.waiting = [];
  }

  flush() {
    this.frame = null;
    const root = this.root;
    const stick = root.scrollHeight - root.scrollTop - root.clientHeight < 48;
    const deadline = performance.now() + FRAME_BUDGET_MS;
    while (this.next < this.waiting.length && performance.now() < deadline) {
      const end = Math.min(this.next + 200, this.waiting.length);
      for (; this.next < end; this.next++) this.render(this.waiting[this.next]);
    }
    this.commit();
    if (this.next < this.waiting.length) {
      this.frame = requestAnimationFrame(() => this.flush());
    } else {
      this.waiting = [];
      this.next = 0;
    }
    if (stick) root.scrollTop = root.scrollHeight;
  }

  block(className, ...children) {
    this.commit();
    const node = el("div", { className }, ...children);
    this.root.append(node);
    this.open = null;
    return node;
  }

  // Text and thinking deltas: extend the open block of that type, or start one. What a
  // frame's deltas add is written once (`commit`), and a long block is split into
  // chunks of TEXT_CHUNK characters, so the browser lays out only the last chunk anew.
  extend(type, content) {
    if (!this.open || this.open.type !== type) {
      const body = el(type === "thinking" ? "pre" : "div", {});
      if (type === "thinking") {
        this.block("thinking", el("details", {}, el("summary", { text: "Thinking" }), body));
      } else {
        this.block("text", body);
      }
      this.open = { type, body, chunk: null, pending: "" };
    }
    this.open.pending += content;
  }

  commit() {
    const open = this.open;
    if (!open || !open.pending) return;
    // a new chunk starts on a new line (chunks are blocks, a split breaks a line), or
    // when a line without end makes it four times too long
    const full = open.chunk && open.chunk.length >= TEXT_CHUNK;
    if (!open.chunk || (full && (open.chunk.data.endsWith("\n") || open.chunk.length >= 4 * TEXT_CHUNK))) {
      open.chunk = document.createTextNode("");
      open.body.append(el("div", { className: "chunk" }, open.chunk));
    }
    open.chunk.appendData(open.pending);
    open.pending = "";
  }

  render({ name, data }) {
    if (name === "output") this.output(data);
    else if (name === "status") this.block("status muted", `status: ${data.status}${data.position ? ` #${data.position}` : ""}`);
    else if (name === "input_request") this.inputRequest(data);
    else if (name === "input_resolved") this.inputResolved(data);
    else if (name === "error") {
      this.block("error", el("strong", { text: "Error: " }), data.message);
      if (data.partial_content) this.root.lastChild.append(foldable("partial content", data.partial_content));
    } else if (name === "gap") this.block("status muted", `events before ${data.first_available} are no longer kept`);
    else if (name === "done") this.done(data);
  }

  output(data) {
    const type = data.type;
    if (type === "text" || type === "thinking") return this.extend(type, data.content);
    if (type === "tool_use") {
      const result = el("div", { className: "tool-result" });
      const details = el(
        "details",
        {},
        el("summary", {}, el("strong", { text: data.tool || data.content }), " ", el("span", { className: "muted", text: preview(data.input) })),
        el("pre", { text: json(data.input) }),
        result,
      );
      this.block("tool", details);
      if (data.id) this.tools.set(data.id, result);
      return;
    }
    if (type === "tool_result") {
      const target = this.tools.get(data.tool_use_id);
      this.tools.delete(data.tool_use_id);
      const body = foldable(data.is_error ? "error result" : "result", data.content, data.is_error ? "error" : "");
      if (target) {
        target.append(body);
        target.closest("details").open = data.is_error || data.content.length <= LONG_TEXT;
        this.commit();
        this.open = null;
      } else {
        this.block("tool", el("div", { className: "muted", text: "tool result" }), body);
      }
      return;
    }
    if (type === "stderr" || type === "stdout" || type === "unparsed") {
      this.sideLines += 1;
      this.sideCount.textContent = String(this.sideLines);
      const line = `${type}: ${data.content}\n`;
      if (this.sideOpen && this.sideOpen.type === type && this.sideOpen.text.length < TEXT_CHUNK) {
        this.sideOpen.text.appendData(line);
      } else {
        const text = document.createTextNode(line);
        this.side.append(el("span", { className: type }, text));
        this.sideOpen = { type, text };
      }
      return;
    }
    if (type === "turn_end") {
      const figures = [`turn ${data.turn} ended`, tokens(data), cost(data.cost_usd)].filter(Boolean);
      return this.block("turn-end", figures.join(" · "));
    }
    // system and whatever a provider adds later: a quiet line
    const subtype = data.subtype ? ` ${data.subtype}` : "";
    this.block("system muted", `${type}${subtype}: ${data.content}`);
  }

  inputRequest(request) {
    const card = this.block("request");
    const title = request.kind === "question" ? "The agent asks" : `Permission for ${request.tool}`;
    card.append(el("h3", { text: title }));
    if (request.description) card.append(el("p", { text: request.description }));
    card.append(foldable("input", json(request.input)));
    const state = el("p", { className: "request-state", text: "waiting for an answer" });
    const controls = el("div", { className: "controls" });
    card.append(state, controls);
    this.requests.set(request.request_id, { card, state, controls });
    if (!api.mayRun()) return;
    const answer = (body) =>
      api.post(`${this.runPath}/input`, { request_id: request.request_id, ...body }).catch((error) => toast(`answer: ${error.message}`));
    if (request.kind === "question" && Array.isArray(request.questions)) {
      this.questionControls(request, controls, answer);
      return;
    }
    const message = el("input", { type: "text", placeholder: "message (for a deny)", "aria-label": "message" });
    controls.append(
      el("button", { type: "button", className: "allow", text: "Allow", onclick: () => answer({ decision: "allow" }) }),
      el("button", { type: "button", className: "danger", text: "Deny", onclick: () => answer({ decision: "deny", message: message.value || null }) }),
      message,
    );
  }

  questionControls(request, controls, answer) {
    const answers = {};
    for (const question of request.questions) {
      const text = String(question.question ?? "");
      const group = el("fieldset", {}, el("legend", { text }));
      for (const option of question.options || []) {
        const label = String(option.label ?? option);
        const button = el("button", { type: "button", text: label });
        button.addEventListener("click", () => {
          answers[text] = label;
          for (const other of group.querySelectorAll("button")) other.setAttribute("aria-pressed", String(other === button));
        });
        if (option.description) button.title = String(option.description);
        group.append(button);
      }
      const own = el("input", { type: "text", placeholder: "or your own answer", "aria-label": `answer to ${text}` });
      own.addEventListener("input", () => (answers[text] = own.value));
      group.append(own);
      controls.append(group);
    }
    controls.append(
      el("button", { type: "button", className: "allow", text: "Answer", onclick: () => answer({ decision: "allow", answers }) }),
      el("button", { type: "button", className: "danger", text: "Decline", onclick: () => answer({ decision: "deny" }) }),
    );
  }

  inputResolved(resolved) {
    const request = this.requests.get(resolved.request_id);
    if (!request) return;
    request.state.textContent = `${resolved.decision}${resolved.by ? ` by ${resolved.by}` : ""}`;
    request.card.classList.add("resolved", resolved.decision);
    request.controls.remove();
    this.requests.delete(resolved.request_id);
  }

  done(data) {
    const figures = [
      `Done: ${data.status}`,
      data.exit_code !== null ? `exit ${data.exit_code}` : "",
      data.duration_ms !== null ? `${(data.duration_ms / 1000).toFixed(1)} s` : "",
      tokens(data) ? `tokens ${tokens(data)}` : "",
      cost(data.cost_usd),
      data.provider ?? "",
      data.model ?? "",
    ].filter(Boolean);
    const summary = this.block(`done ${data.status}`, el("strong", { text: figures.join(" · ") }));
    if (data.error) summary.append(el("p", { className: "error", text: data.error }));
    if (data.result) summary.append(foldable("result", data.result));
    for (const request of this.requests.values()) request.controls.remove();
  }
}

function preview(input) {
  const text = input && typeof input === "object" ? Object.values(input).map(String).join(" ") : String(input ?? "");
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

// ---- providers, projects, templates (read-only) -------------------------------------

async function openProviders() {
  show("providers");
  const tbody = $("providers-table").tBodies[0];
  tbody.replaceChildren();
  for (const p of await api.get("/providers")) {
    const caps = p.capabilities;
    const yes = (value) => (value ? "yes" : "no");
    tbody.append(
      el("tr", {}, cell(p.name), cell(yes(p.default)), cell(yes(p.available)), cell(p.detail),
        cell(yes(caps.streaming)), cell(yes(caps.resume)), cell(yes(caps.cancel)),
        cell(yes(caps.token_usage)), cell(caps.models.join(", "))),
    );
  }
}

async function openProjects() {
  show("projects");
  const [projects, templates] = await Promise.all([api.get("/projects"), api.get("/templates")]);
  const tbody = $("projects-table").tBodies[0];
  tbody.replaceChildren();
  for (const project of projects) {
    const credentials = cell("");
    tbody.append(
      el("tr", {}, cell(project.project_id), cell(project.template ?? ""),
        el("td", {}, el("pre", { text: json(project.overrides) })), credentials, cell(project.updated_at)),
    );
    // Credential names need the admin role; values are never returned to anyone.
    if (api.caller.role === "admin") {
      api.get(`/projects/${project.project_id}/credentials`).then(
        (list) => (credentials.textContent = list.map((c) => `${c.name} (${c.fingerprint})`).join(", ")),
        (error) => (credentials.textContent = error.message),
      );
    } else {
      credentials.textContent = "listed for admin keys";
    }
  }
  const templateBody = $("templates-table").tBodies[0];
  templateBody.replaceChildren();
  for (const template of templates) {
    templateBody.append(
      el("tr", {}, cell(template.name), cell(template.source),
        el("td", {}, el("pre", { text: json(template.settings) })), cell(template.updated_at)),
    );
  }
}

// ---- start --------------------------------------------------------------------------

$("login-form").addEventListener("submit", async (submit) => {
  submit.preventDefault();
  $("login-error").textContent = "";
  try {
    await signIn($("api-key").value.trim());
    $("api-key").value = "";
    if (!location.hash || location.hash === "#/") location.hash = "#/runs";
    else route();
  } catch (error) {
    $("login-error").textContent = error.status === 401 ? "This key is not valid here." : error.message;
  }
});
$("sign-out").addEventListener("click", signOut);
$("filter-project").addEventListener("change", route);
$("filter-status").addEventListener("change", route);
window.addEventListener("hashchange", route);

(async () => {
  if (sessionStorage.getItem(KEY_STORAGE) !== null) {
    try {
      await signIn(api.key); // the key this tab kept (empty when auth is off)
    } catch {
      api.caller = null;
    }
  }
  route();
})();
