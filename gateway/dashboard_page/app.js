// The reference dashboard: plain JS over the gateway's dashboard routes (docs/dashboard-api.md).
// Same origin, no build step, nothing fetched from anywhere else.
"use strict";

// The accounting platforms, in the order of their panels (index.html: #<provider>-panel).
const PROVIDERS = { qbo: "QuickBooks Online", xero: "Xero" };
// The provider the sync, preview and disconnect screens work on: the connected one.
let provider = "qbo";
const base = () => "/v1/integrations/" + provider;
const TOKEN_KEY = "aicollect.dashboard.token";
const STATE_LABELS = {
  CONNECTION_STATE_NOT_CONNECTED: "Not connected",
  CONNECTION_STATE_CONNECTED: "Connected",
  CONNECTION_STATE_NEEDS_REAUTHORIZATION: "Needs re-authorization: connect again",
  CONNECTION_STATE_DISCONNECTED: "Disconnected",
  CONNECTION_STATE_TOKENS_UNREADABLE: "Paused: support is restoring access",
};
const PHASE_LABELS = {
  BACKFILL_PHASE_NOT_STARTED: "starting",
  BACKFILL_PHASE_RUNNING: "reading invoices",
  BACKFILL_PHASE_COMPLETED: "done",
  BACKFILL_PHASE_FAILED: "stopped, will resume",
};
const PLACEMENT_LABELS = {
  PLACEMENT_STATUS_ACTIVE: ["Active", "active"],
  PLACEMENT_STATUS_PAUSED_PENDING_REVIEW: ["Paused for review", "review"],
  PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND: ["Closed", "closed"],
  PLACEMENT_STATUS_RESOLVED_PAID_PORTAL: ["Paid through the portal", "closed"],
  PLACEMENT_STATUS_CLOSED: ["Closed", "closed"],
  PLACEMENT_STATUS_NEEDS_REVIEW: ["Needs review", "review"],
};
const DISCONNECTABLE = new Set([
  "CONNECTION_STATE_CONNECTED",
  "CONNECTION_STATE_NEEDS_REAUTHORIZATION",
  "CONNECTION_STATE_TOKENS_UNREADABLE",
]);

const $ = (id) => document.getElementById(id);
let token = "";
let syncTimer = null;
let placingTimer = null;
let watchingConfirmation = "";
let placementsToken = "";
let placementsLoad = 0;
const OPEN_STATUSES = new Set([
  "PLACEMENT_STATUS_ACTIVE",
  "PLACEMENT_STATUS_PAUSED_PENDING_REVIEW",
  "PLACEMENT_STATUS_NEEDS_REVIEW",
]);

// ---- plumbing -------------------------------------------------------------------------

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function money(minorUnits, currency) {
  const code = currency || "USD";
  let digits = 2;
  try {
    digits = new Intl.NumberFormat("en-US", { style: "currency", currency: code })
      .resolvedOptions().maximumFractionDigits;
  } catch (e) { /* an unknown code: two decimals */ }
  const amount = Number(minorUnits || 0) / Math.pow(10, digits);
  try {
    return new Intl.NumberFormat("en-US", { style: "currency", currency: code }).format(amount);
  } catch (e) {
    return amount.toFixed(digits) + " " + code;
  }
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString("en-US", { timeZone: "UTC" }) + " UTC" : "—";
}

function show(message, isError) {
  const box = isError ? $("error") : $("notice");
  box.textContent = message;
  box.hidden = !message;
  if (isError && message) $("notice").hidden = true;
}

async function api(method, path, body) {
  const init = { method, headers: { Authorization: "Bearer " + token } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
  if (!resp.ok) {
    const why = data && data.error ? data.error.message : resp.status + " " + resp.statusText;
    if (resp.status === 401) signOut();
    throw new Error(why);
  }
  return data;
}

function guarded(fn) {
  return async (...args) => {
    try {
      show("", true);
      await fn(...args);
    } catch (e) {
      show(e.message, true);
    }
  };
}

// ---- sign-in --------------------------------------------------------------------------

function claims(jwt) {
  try {
    const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part));
  } catch (e) {
    return {};
  }
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  token = "";
  view("token");
}

function takeToken() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("token")) {
    sessionStorage.setItem(TOKEN_KEY, fragment.get("token"));
    history.replaceState(null, "", location.pathname + location.search);
  }
  token = sessionStorage.getItem(TOKEN_KEY) || "";
  const c = claims(token);
  $("who").textContent = token ? (c.sub || "") + " · tenant " + (c.tenant_id || "?") : "";
}

// ---- views ----------------------------------------------------------------------------

function view(name) {
  for (const section of document.querySelectorAll("main > section")) {
    section.hidden = section.id !== "view-" + name;
  }
  for (const button of document.querySelectorAll("header nav button")) {
    button.classList.toggle("current", button.dataset.view === name);
  }
  if (name !== "settings" && syncTimer) {
    clearTimeout(syncTimer);
    syncTimer = null;
  }
  if (name !== "settings" && placingTimer) {
    clearTimeout(placingTimer);
    placingTimer = null;
  }
  if (name === "settings") return loadSettings();
  if (name === "placements") return loadPlacements(false);
  if (name === "reports") return loadReports();
  return null;
}

// ---- settings: the connection panel, sync progress, preview ----------------------------

function lastSync(panel) {
  const times = [
    panel.backfill && panel.backfill.finish_time,
    panel.sync && panel.sync.last_cdc_poll_time,
  ].filter(Boolean).sort();
  return times.length ? when(times[times.length - 1]) : "—";
}

// One provider's panel (its enabled flag and kill switch are the provider's own).
function renderPanel(name, panel) {
  const box = $(name + "-panel");
  const part = (cls) => box.querySelector("." + cls);
  part("panel-state").textContent = STATE_LABELS[panel.state] || panel.state;
  part("panel-company").textContent = panel.company_name
    ? panel.company_name + " (" + panel.realm_id + ")" : "—";
  part("panel-last-sync").textContent = lastSync(panel);
  part("panel-disabled").hidden = panel.enabled;
  part("panel-killed").hidden = !panel.kill_switch;
  const connected = panel.state === "CONNECTION_STATE_CONNECTED";
  // Connect is offered only to an enabled tenant, outside an incident, when not connected.
  part("connect").hidden = !panel.enabled || panel.kill_switch || connected;
  part("disconnect").hidden = !DISCONNECTABLE.has(panel.state);
  return connected;
}

async function loadSettings() {
  await loadOutreach();
  const names = Object.keys(PROVIDERS);
  const panels = await Promise.all(names.map((name) => api("GET", "/v1/integrations/" + name)));
  const connected = names.filter((name, i) => renderPanel(name, panels[i]));
  if (connected.length) {
    // The sync and preview screens follow the connected provider (the first if several).
    if (!connected.includes(provider)) provider = connected[0];
    await loadProgress();
  } else {
    $("sync-card").hidden = true;
    $("preview-card").hidden = true;
  }
}

async function loadProgress() {
  const progress = await api("GET", base() + "/sync-progress");
  const phase = progress.backfill.phase;
  const running = phase === "BACKFILL_PHASE_RUNNING" || phase === "BACKFILL_PHASE_NOT_STARTED";
  $("sync-card").hidden = !running;
  $("sync-company").textContent = progress.company_name;
  $("sync-phase").textContent = PHASE_LABELS[phase] || phase;
  $("sync-seen").textContent = progress.backfill.invoices_seen;
  $("sync-staged").textContent = progress.backfill.candidates_staged;
  $("sync-placed").textContent = progress.backfill.placements_created;
  $("sync-totals").textContent = progress.candidate_totals.length
    ? progress.candidate_totals
      .map((t) => t.pending_count + " invoices, " + money(t.pending_balance_minor_units, t.currency_code))
      .join("; ")
    : "—";
  if (running) {
    $("preview-card").hidden = true;
    if (syncTimer) clearTimeout(syncTimer);
    syncTimer = setTimeout(guarded(loadProgress), 700);
    return;
  }
  if (syncTimer) renderPanel(provider, await api("GET", base()));  // the sync just finished: last sync
  syncTimer = null;
  if (showPlacing(progress.confirmation)) {
    $("preview-card").hidden = true;
    placingTimer = setTimeout(guarded(loadProgress), 1000);
    return;
  }
  const waiting = progress.intake_mode !== "PLACEMENT_INTAKE_MODE_AUTOMATIC"
    && progress.candidate_totals.some((t) => Number(t.pending_count) + Number(t.excluded_count) > 0);
  $("preview-card").hidden = !waiting;
  if (waiting) await loadPreview();
}

async function loadPreview() {
  const page = await api("GET", base() + "/candidates?status=pending&status=excluded&page_size=200");
  const body = $("preview-table").tBodies[0];
  body.replaceChildren();
  for (const c of page.candidates) {
    const row = el("tr");
    row.dataset.invoice = c.invoice_id;
    if (c.status === "CANDIDATE_STATUS_EXCLUDED") row.className = "excluded";
    row.append(
      el("td", c.doc_number || c.invoice_id),
      el("td", c.customer_display_name),
      el("td", c.due_date),
      el("td", c.days_past_due, "num"),
      el("td", money(c.balance.minor_units, c.balance.currency_code), "num"),
      el("td", c.status === "CANDIDATE_STATUS_EXCLUDED" ? "excluded" : "to be placed"),
    );
    const cell = el("td");
    const excluded = c.status === "CANDIDATE_STATUS_EXCLUDED";
    const button = el("button", excluded ? "Include" : "Exclude");
    button.type = "button";
    button.className = excluded ? "include" : "exclude";
    button.addEventListener("click", guarded(async () => {
      await api("POST", base() + "/candidates/" + encodeURIComponent(c.invoice_id)
        + (excluded ? "/include" : "/exclude"), {});
      await loadPreview();
    }));
    cell.append(button);
    row.append(cell);
    body.append(row);
  }
  $("preview-totals").textContent = page.totals
    .map((t) => t.pending_count + " to place (" + money(t.pending_balance_minor_units, t.currency_code)
      + "), " + t.excluded_count + " excluded")
    .join("; ");
}

// A confirmation the workers are still placing: "placing N of M" until it is done, then
// the notice of what was placed (true while it runs).
function showPlacing(confirmation) {
  const placing = !!confirmation && confirmation.state === "CONFIRMATION_STATE_CONFIRMING";
  $("placing-card").hidden = !placing;
  if (placingTimer) clearTimeout(placingTimer);
  placingTimer = null;
  if (placing) {
    const done = Number(confirmation.placed_count) + Number(confirmation.dropped_count);
    $("placing-bar").max = Number(confirmation.total_count) || 1;
    $("placing-bar").value = done;
    $("placing-progress").textContent = "Placing " + done + " of " + confirmation.total_count
      + " (" + confirmation.placed_count + " placed, " + confirmation.dropped_count
      + " left out as paid or changed).";
    watchingConfirmation = confirmation.confirmation_id;
  } else if (confirmation && confirmation.confirmation_id === watchingConfirmation) {
    watchingConfirmation = "";
    announceConfirmation(confirmation);
  }
  return placing;
}

function announceConfirmation(confirmation) {
  if (confirmation.state === "CONFIRMATION_STATE_FAILED") {
    show("Placing stopped: " + confirmation.error + " The invoices not placed wait for you again.", true);
  } else {
    show(confirmation.placed_count + " placements confirmed; outreach begins.", false);
  }
}

async function confirmPreview() {
  const reply = await api("POST", base() + "/candidates/confirm", { future_mode: $("future-mode").value });
  const confirmation = reply.confirmation;
  if (confirmation && confirmation.state === "CONFIRMATION_STATE_CONFIRMING") {
    watchingConfirmation = confirmation.confirmation_id;
    show("Confirmed; placing " + confirmation.total_count + " invoices.", false);
  } else {
    show(reply.placed_count + " placements confirmed; outreach begins.", false);
  }
  await loadSettings();
}

// ---- disconnect -----------------------------------------------------------------------

async function openDisconnect(name) {
  provider = name;
  const preview = await api("GET", base() + "/disconnect-preview");
  $("dc-provider").textContent = PROVIDERS[name];
  $("dc-company").textContent = preview.company_name + " (" + preview.realm_id + ")";
  const list = $("dc-consequences");
  list.replaceChildren(...preview.consequences.map((line) => el("li", line)));
  const totals = preview.continuing
    .map((t) => money(t.balance_minor_units, t.currency_code)).join(", ");
  $("dc-continuing").textContent = preview.active_placement_count + " active placement"
    + (preview.active_placement_count === "1" ? "" : "s")
    + (totals ? " (" + totals + " open)" : "") + " will continue to be collected.";
  $("dc-paused").textContent = Number(preview.paused_placement_count)
    ? preview.paused_placement_count + " placements paused for review stay paused." : "";
  $("dc-stop-outreach").parentElement.hidden = !preview.stop_all_outreach_available;
  $("dc-stop-outreach").checked = false;
  $("disconnect-dialog").showModal();
}

async function confirmDisconnect() {
  // stop_all_outreach: the creditor's choice to also stop outreach on the placements.
  const reply = await api("DELETE", base(), {
    reason: $("dc-reason").value || "disconnected from the dashboard",
    stop_all_outreach: $("dc-stop-outreach").checked,
  });
  $("disconnect-dialog").close();
  show(PROVIDERS[provider] + " disconnected (" + (STATE_LABELS[reply.state] || reply.state) + ")."
    + (reply.outreach_pause_id ? " All outreach is paused until you resume it." : ""), false);
  await loadSettings();
}

// ---- placements -----------------------------------------------------------------------

// ---- outreach pauses -------------------------------------------------------------------

// The open pauses of the tenant (GET /v1/outreach/pauses), by what they cover.
async function openPauses() {
  const reply = await api("GET", "/v1/outreach/pauses");
  const found = { tenant: null, placements: new Map(), debtors: new Map() };
  for (const pause of reply.pauses) {
    const t = pause.target;
    if (t.all_placements) found.tenant = pause;
    else if (t.placement_id) found.placements.set(t.placement_id, pause);
    else if (t.debtor) found.debtors.set(t.debtor.company_id + "/" + t.debtor.customer_id, pause);
  }
  return found;
}

function askReason(what, fallback) {
  const reason = window.prompt("Reason to " + what + ":", fallback);
  return reason === null ? null : (reason.trim() || fallback);
}

async function changeOutreach(base, resume, what, fallback) {
  const reason = askReason(what, fallback);
  if (reason === null) return false;
  const reply = await api("POST", base + (resume ? "/resume" : "/pause"), { reason });
  const n = Number(resume ? reply.placements_resumed : reply.placements_paused);
  show("Outreach " + (resume ? "resumed" : "paused") + " (" + n + " placement"
    + (n === 1 ? "" : "s") + ").", false);
  return true;
}

function renderOutreach(pauses) {
  const pause = pauses.tenant;
  $("outreach-state").textContent = pause
    ? "All outreach is paused since " + when(pause.pause_time) + " by " + pause.paused_by
      + " (" + pause.pause_reason + ")."
    : "Outreach is running for your active placements.";
  $("outreach-state").className = pause ? "warn" : "muted";
  $("stop-outreach").hidden = Boolean(pause);
  $("resume-outreach").hidden = !pause;
}

async function loadOutreach() {
  renderOutreach(await openPauses());
}

function placementPauseNote(p, pauses) {
  if (!p.outreach_paused) return null;
  const which = pauses.placements.has(p.placement_id) ? "this placement"
    : pauses.debtors.has(p.company_id + "/" + p.customer_id) ? "this debtor" : "all outreach";
  return el("span", "Outreach paused (" + which + ")", "badge paused");
}

function placementCard(item, pauses) {
  const p = item.placement;
  const card = el("article", null, "placement");
  card.dataset.placement = p.placement_id;
  const [label, cls] = PLACEMENT_LABELS[p.status] || [p.status, ""];
  const title = el("h3", "Invoice " + (p.doc_number || p.invoice_id) + " · "
    + (p.debtor ? p.debtor.display_name : "") + " ");
  const badge = el("span", p.resolution_reason ? label + " — " + p.resolution_reason : label,
    "badge " + cls);
  badge.dataset.status = p.status;
  title.append(badge);
  const note = placementPauseNote(p, pauses);
  if (note) title.append(" ", note);
  card.dataset.outreachPaused = String(Boolean(p.outreach_paused));
  card.append(title);
  card.append(el("p", "Placed " + money(p.original_amount.minor_units, p.original_amount.currency_code)
    + " · owed now " + money(p.balance.minor_units, p.balance.currency_code)
    + (p.resolve_time ? " · closed " + when(p.resolve_time) : ""), "muted"));
  const list = el("ol", null, "timeline");
  for (const event of item.timeline) {
    const li = el("li");
    li.append(el("time", when(event.create_time)), el("strong", event.action + " "),
      el("span", event.reason + " (" + event.actor + ")"));
    list.append(li);
  }
  card.append(list);
  // Its own pause can be resumed (even once it is closed: that resumes nothing); an open
  // placement without one can be paused.
  const own = pauses.placements.has(p.placement_id);
  if (own || OPEN_STATUSES.has(p.status)) {
    const button = el("button", own ? "Resume outreach" : "Pause outreach",
      own ? "resume-placement" : "pause-placement");
    button.type = "button";
    button.addEventListener("click", guarded(async () => {
      const base = "/v1/placements/" + encodeURIComponent(p.placement_id) + "/outreach";
      const what = (own ? "resume" : "pause") + " outreach for invoice "
        + (p.doc_number || p.invoice_id);
      if (await changeOutreach(base, own, what, own ? "resumed from the dashboard"
        : "paused from the dashboard")) await loadPlacements(false);
    }));
    const actions = el("p", null, "actions");
    actions.append(button);
    card.append(actions);
  }
  return card;
}

async function loadPlacements(more) {
  const query = new URLSearchParams();
  if ($("filter-status").value) query.append("status", $("filter-status").value);
  if ($("filter-reason").value) query.append("reason", $("filter-reason").value);
  query.append("page_size", "20");
  if (more && placementsToken) query.append("page_token", placementsToken);
  const load = ++placementsLoad;
  const [page, pauses] = await Promise.all([
    api("GET", "/v1/placements?" + query.toString()), openPauses()]);
  if (load !== placementsLoad) return;  // a newer load (other filters) answers instead
  const box = $("placements-list");
  if (!more) box.replaceChildren();
  for (const item of page.placements) box.append(placementCard(item, pauses));
  if (!box.children.length) box.append(el("p", "No placements match.", "muted"));
  placementsToken = page.next_page_token;
  $("placements-more").hidden = !placementsToken;
}

// ---- reports --------------------------------------------------------------------------

async function loadReports() {
  const page = await api("GET", "/v1/reconciliation-reports");
  const body = $("reports-table").tBodies[0];
  body.replaceChildren();
  $("reports-empty").hidden = page.reports.length > 0;
  for (const r of page.reports) {
    const row = el("tr");
    const cell = el("td");
    const view = el("button", "View");
    view.type = "button";
    const path = "/v1/reconciliation-reports/" + r.key.day + "?version=" + r.key.version;
    view.addEventListener("click", guarded(async () => {
      $("report-json").textContent = JSON.stringify(await api("GET", path), null, 2);
      $("report-json").hidden = false;
    }));
    const csv = el("button", "Download CSV");
    csv.type = "button";
    csv.addEventListener("click", guarded(async () => {
      const resp = await fetch("/v1/reconciliation-reports/" + r.key.day + ".csv?version="
        + r.key.version, { headers: { Authorization: "Bearer " + token } });
      if (!resp.ok) throw new Error("the CSV could not be fetched (" + resp.status + ")");
      const link = el("a");
      link.href = URL.createObjectURL(await resp.blob());
      link.download = "reconciliation-" + r.key.day + "-v" + r.key.version + ".csv";
      link.click();
    }));
    cell.append(view, " ", csv);
    row.append(el("td", r.key.day), el("td", r.key.version), el("td", when(r.generate_time)), cell);
    body.append(row);
  }
}

// ---- start ----------------------------------------------------------------------------

function start() {
  takeToken();
  for (const button of document.querySelectorAll("header nav button")) {
    button.addEventListener("click", guarded(() => {
      show("", false);  // a notice belongs to the screen it was shown on
      return view(button.dataset.view);
    }));
  }
  $("token-use").addEventListener("click", guarded(async () => {
    sessionStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
    takeToken();
    await view("settings");
  }));
  for (const name of Object.keys(PROVIDERS)) {
    const box = $(name + "-panel");
    box.querySelector(".connect").addEventListener("click", guarded(async () => {
      // Same origin: the gateway's binding cookie is kept for its callback.
      const reply = await api("POST", "/v1/integrations/" + name + "/connect-url");
      location.assign(reply.authorize_url);
    }));
    box.querySelector(".disconnect").addEventListener("click", guarded(() => openDisconnect(name)));
  }
  $("dc-cancel").addEventListener("click", () => $("disconnect-dialog").close());
  $("dc-confirm").addEventListener("click", guarded(confirmDisconnect));
  $("confirm").addEventListener("click", guarded(confirmPreview));
  $("stop-outreach").addEventListener("click", guarded(async () => {
    if (await changeOutreach("/v1/outreach", false, "stop all outreach",
      "stopped from the dashboard")) await loadOutreach();
  }));
  $("resume-outreach").addEventListener("click", guarded(async () => {
    if (await changeOutreach("/v1/outreach", true, "resume all outreach",
      "resumed from the dashboard")) await loadOutreach();
  }));
  $("filter-apply").addEventListener("click", guarded(() => loadPlacements(false)));
  $("placements-more").addEventListener("click", guarded(() => loadPlacements(true)));
  // The gateway's landing after a consent (?<provider>=connected|error&reason=...).
  const query = new URLSearchParams(location.search);
  for (const [name, label] of Object.entries(PROVIDERS)) {
    const landed = query.get(name);
    if (!landed) continue;
    provider = name;
    if (landed === "connected") show(label + " is connected. The initial sync has started.", false);
    else show(label + ": " + landed + " (" + (query.get("reason") || "no reason given") + ")",
      landed !== "disconnected");
  }
  if (!token) {
    view("token");
    return;
  }
  guarded(() => view("settings"))();
}

document.addEventListener("DOMContentLoaded", start);
