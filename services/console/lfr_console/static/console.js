// The control room's page: no framework and no build step. It signs in, lists the alerts of a
// deployment (newest first), follows new ones and their revisions over server-sent events, and
// sends the officer's decisions with the session's CSRF token. Images are loaded by URL, never kept.
"use strict";

const $ = (id) => document.getElementById(id);
// perceived: alert id -> the perceived groups chosen on its card, sent with its adjudication.
// scenes: alert id -> {revision, composed, reason} (whether it has a scene; the image is loaded by URL).
const state = { session: null, alerts: new Map(), selected: null, stream: null, deployments: [], perceived: new Map(),
                scenes: new Map() };

const STEPS = {
  raised: ["adjudication"],
  adjudicated: ["engagement"],
  engaged: ["outcome"],
  not_engaged: [],
  resolved: [],
};
const KEYS = {
  t: ["adjudication", { outcome: "true" }],
  f: ["adjudication", { outcome: "false" }],
  u: ["adjudication", { outcome: "undetermined" }],
  y: ["engagement", { engaged: true }],
  n: ["engagement", { engaged: false }],
  a: ["outcome", { outcome: "arrest" }],
  x: ["outcome", { outcome: "no_further_action" }],
  s: ["outcome", { outcome: "safeguarding" }],
};

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && state.session) headers["X-CSRF-Token"] = state.session.csrf;
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
                                       credentials: "same-origin", cache: "no-store" });
  const data = await response.json().catch(() => ({}));
  if (response.status === 401) { showSignIn(data.error || "Signed out."); throw new Error(data.error); }
  if (!response.ok) throw new Error(data.error || `${response.status}`);
  return data;
}

function banner(text) {
  $("banner").textContent = text || "";
  $("banner").hidden = !text;
}

function showSignIn(message) {
  state.session = null;
  if (state.stream) state.stream.close();
  $("console").hidden = true;
  $("sign-out").hidden = true;
  $("who").textContent = "";
  $("sign-in").hidden = false;
  $("sign-in-message").textContent = message || "";
}

async function start() {
  try {
    state.session = await api("GET", "/api/session");
  } catch (error) {
    return; // the sign-in form is showing
  }
  $("sign-in").hidden = true;
  $("console").hidden = false;
  $("sign-out").hidden = false;
  const s = state.session;
  $("who").textContent = `${s.officer} (${s.identity}, ${s.role}${s.may_decide ? "" : ": read only"})`;
  await loadDeployments();
  setInterval(refreshDeployments, 10000);
  setInterval(renderTimes, 1000);
  setInterval(loadCounters, 5000);
}

async function loadDeployments() {
  state.deployments = await api("GET", "/api/deployments");
  const select = $("deployment");
  const current = select.value;
  select.replaceChildren(...state.deployments.map((d) => new Option(`${d.name} (${d.deployment_id})`, d.deployment_id)));
  if (state.deployments.some((d) => d.deployment_id === current)) select.value = current;
  if (!state.deployments.length) {
    state.alerts.clear();
    render();
    return;
  }
  await switchDeployment();
}

async function refreshDeployments() {
  if (!state.session) return;
  try {
    const open = await api("GET", "/api/deployments");
    const before = $("deployment").value;
    if (open.map((d) => d.deployment_id).join() !== state.deployments.map((d) => d.deployment_id).join()) {
      state.deployments = open;
      if (!open.some((d) => d.deployment_id === before)) { // closed: its queue empties at once
        state.alerts.clear();
        render();
      }
      await loadDeployments();
    }
  } catch (error) {
    banner(`Cannot reach the deployments: ${error.message}`);
  }
}

async function switchDeployment() {
  const deployment = $("deployment").value;
  const info = state.deployments.find((d) => d.deployment_id === deployment);
  $("van").replaceChildren(new Option("all", ""), ...(info ? info.vans : []).map((v) => new Option(v, v)));
  await reload();
  follow(deployment);
}

async function reload() {
  const deployment = $("deployment").value;
  if (!deployment) return;
  try {
    const alerts = await api("GET", `/api/alerts?deployment=${encodeURIComponent(deployment)}`);
    state.alerts = new Map(alerts.map((a) => [a.alert_id, a]));
    render();
    loadCounters();
  } catch (error) {
    banner(`Cannot load the alerts: ${error.message}`);
  }
}

function follow(deployment) {
  if (state.stream) state.stream.close();
  const stream = new EventSource(`/api/events?deployment=${encodeURIComponent(deployment)}`);
  state.stream = stream;
  stream.addEventListener("alert", (event) => upsert(JSON.parse(event.data)));
  stream.addEventListener("resync", reload);
  stream.addEventListener("signed_out", () => showSignIn("Your session ended: sign in again."));
  stream.addEventListener("status", (event) => {
    const status = JSON.parse(event.data);
    const away = [];
    if (!status.broker) away.push("the message broker");
    if (!status.alert_service) away.push("the AlertService");
    banner(away.length ? `Cannot reach ${away.join(" and ")}: new alerts may not show; reconnecting by itself.` : "");
    if (!away.length) reload(); // back: catch up on what was raised meanwhile
  });
  // EventSource reconnects by itself; while it is away, say so.
  stream.onerror = () => banner("Lost the connection to the console: reconnecting by itself.");
  stream.onopen = () => reload();
}

function upsert(alert) {
  const current = state.alerts.get(alert.alert_id);
  if (current && current.revision > alert.revision) return; // revisions may arrive out of order
  state.alerts.set(alert.alert_id, alert);
  render();
  loadCounters();
}

// The deployment's figures so far (its report): faces scanned, alerts, decided, true, false, held.
async function loadCounters() {
  const deployment = $("deployment").value;
  if (!state.session || !deployment) return;
  try {
    const counters = await api("GET", `/api/counters?deployment=${encodeURIComponent(deployment)}`);
    if (deployment !== $("deployment").value) return;
    for (const cell of document.querySelectorAll("#counters [data-counter]")) {
      cell.textContent = String(counters[cell.dataset.counter]);
    }
    $("counters").hidden = false;
  } catch (error) {
    $("counters").hidden = true;
  }
}

// Whether an alert has a scene, asked once per revision (a better match may bring another, or none).
async function loadScene(a) {
  const known = state.scenes.get(a.alert_id);
  if (known && known.revision === a.revision) return;
  state.scenes.set(a.alert_id, { revision: a.revision, composed: false, reason: "scene: loading", pending: true });
  try {
    const scene = await api("GET", `/api/alerts/${encodeURIComponent(a.alert_id)}/scene`);
    state.scenes.set(a.alert_id, { revision: a.revision, composed: scene.composed, reason: scene.reason });
  } catch (error) {
    state.scenes.set(a.alert_id, { revision: a.revision, composed: false, reason: `no scene: ${error.message}` });
  }
  // Only this card changes: a whole render would load every card's images again.
  const item = document.querySelector(`[data-alert-id="${CSS.escape(a.alert_id)}"]`);
  const current = state.alerts.get(a.alert_id);
  if (item && current && current.revision === a.revision) showScene(item, current);
}

function showScene(item, a) {
  const scene = state.scenes.get(a.alert_id);
  if (!scene || scene.revision !== a.revision) loadScene(a);
  const open = item.querySelector(".scene-open");
  const caption = item.querySelector(".scene-caption");
  const composed = Boolean(scene && scene.composed && scene.revision === a.revision);
  item.dataset.scene = composed ? "composed" : scene && !scene.pending ? "none" : "loading";
  open.hidden = !composed;
  if (composed) {
    open.querySelector("img").src = sceneUrl(a);
    caption.textContent = "scene (click or v to enlarge)";
  } else {
    caption.textContent = scene ? scene.reason : "scene: loading";
  }
}

function sceneUrl(a) {
  return `/api/alerts/${encodeURIComponent(a.alert_id)}/scene.jpg?r=${a.revision}`;
}

function enlargeScene(alertId) {
  const a = state.alerts.get(alertId);
  const scene = a && state.scenes.get(alertId);
  if (!scene || !scene.composed) return;
  const dialog = $("scene-large");
  if (dialog.open) return dialog.close();
  $("scene-large-image").src = sceneUrl(a);
  dialog.dataset.alertId = alertId;
  dialog.showModal();
}

function visible() {
  const van = $("van").value;
  const wanted = $("state").value;
  return [...state.alerts.values()]
    .filter((a) => (!van || a.van_id === van) && (!wanted || a.state === wanted))
    .sort((a, b) => (a.raised_at < b.raised_at ? 1 : -1));
}

function since(iso) {
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return seconds < 120 ? `${seconds} s ago` : `${Math.round(seconds / 60)} min ago`;
}

function describe(a) {
  if (a.state === "raised") return a.held_for_supervisor ? "waiting for a supervisor's decision" : "waiting for a decision";
  const parts = [`adjudicated ${a.outcome}`];
  if (a.engaged !== null) parts.push(a.engaged ? "engaged" : "not engaged");
  if (a.final_outcome) parts.push(a.final_outcome.replaceAll("_", " ") + (a.final_detail ? `: ${a.final_detail}` : ""));
  const perceived = [a.perceived_sex, a.perceived_ethnicity].filter(Boolean).join(", ");
  const by = a.adjudication ? ` (${a.adjudication.officer}${perceived ? `; perceived ${perceived}` : ""})` : "";
  return parts.join(", ") + by;
}

// The runner-up: the best other subject for the same face, so that a lookalike scoring nearly as
// high is seen before anyone acts.
function runnerUp(a) {
  if (!a.runner_up_subject_id) return "runner-up: none (no other subject on the watchlist)";
  return `runner-up ${a.runner_up_subject_id} ${a.runner_up_score.toFixed(3)} \u00b7 margin ${a.margin.toFixed(3)}`;
}

// The steps this session may take on an alert: none when it only reads, and no adjudication of an
// alert held for a supervisor unless it is one (the AlertService refuses it anyway).
function allowedSteps(a) {
  if (!state.session || !state.session.may_decide) return [];
  const steps = STEPS[a.state] || [];
  if (a.held_for_supervisor && !state.session.may_decide_held) return steps.filter((s) => s !== "adjudication");
  return steps;
}

function render() {
  const alerts = visible();
  const template = $("alert-template");
  const items = alerts.map((a) => {
    const item = template.content.firstElementChild.cloneNode(true);
    item.dataset.alertId = a.alert_id;
    item.dataset.state = a.state;
    item.dataset.outcome = a.outcome;
    const id = encodeURIComponent(a.alert_id);
    item.querySelector(".probe").src = `/api/alerts/${id}/probe.jpg?r=${a.revision}`;
    item.querySelector(".reference").src = `/api/alerts/${id}/reference.jpg`;
    item.querySelector(".subject").textContent = `${a.subject_id} \u00b7 ${a.category}`;
    item.querySelector(".score").textContent =
      `score ${a.score.toFixed(3)} against threshold ${a.threshold.toFixed(2)} \u00b7 seen ${a.match_count} ` +
      (a.match_count === 1 ? "time" : "times");
    item.querySelector(".runner-up").textContent = runnerUp(a);
    showScene(item, a);
    item.dataset.held = String(a.held_for_supervisor);
    const hold = item.querySelector(".hold");
    hold.hidden = !a.held_for_supervisor;
    hold.textContent = a.held_for_supervisor ? `Held for a supervisor: ${a.hold_reason}` : "";
    item.querySelector(".where").textContent = `${a.van_id} / ${a.camera_id}`;
    item.querySelector(".when").dataset.raised = a.raised_at;
    item.querySelector(".when").textContent = `raised ${since(a.raised_at)}`;
    item.querySelector(".state").textContent = describe(a);
    const allowed = allowedSteps(a);
    for (const step of item.querySelectorAll(".step")) {
      const name = [...step.classList].find((c) => c !== "step");
      step.hidden = !allowed.includes(name);
    }
    item.querySelector(".actions").hidden = !allowed.length;
    perceivedChoices(item, a);
    if (a.alert_id === state.selected) item.classList.add("selected");
    item.addEventListener("click", (event) => {
      state.selected = a.alert_id;
      if (event.target.closest(".perceived")) return; // choosing a perceived group: no re-render under it
      if (event.target.closest(".scene-open")) return enlargeScene(a.alert_id);
      const button = event.target.closest("button");
      if (button) decideFromButton(a.alert_id, button);
      else render();
    });
    return item;
  });
  $("queue").replaceChildren(...items);
  $("empty").hidden = alerts.length > 0;
  $("count").textContent = `${alerts.length} shown, ${[...state.alerts.values()].filter((a) => a.state === "raised").length} waiting`;
}

// The optional perceived sex and ethnicity of an alert's adjudication, from the deployment's lists
// (the policy's): what the officer chose is kept across re-renders and sent with the adjudication.
function perceivedChoices(item, a) {
  const info = state.deployments.find((d) => d.deployment_id === a.deployment_id);
  const lists = (info && info.perceived_groups) || {};
  const chosen = state.perceived.get(a.alert_id) || {};
  for (const dimension of ["sex", "ethnicity"]) {
    const select = item.querySelector(`.perceived-${dimension}`);
    const values = lists[dimension] || [];
    select.append(...values.map((v) => new Option(v, v)));
    select.value = chosen[dimension] || "";
    select.closest("label").hidden = !values.length;
    select.addEventListener("change", () => {
      state.perceived.set(a.alert_id, { ...(state.perceived.get(a.alert_id) || {}), [dimension]: select.value });
    });
  }
}

function renderTimes() {
  for (const when of document.querySelectorAll(".when")) {
    if (when.dataset.raised) when.textContent = `raised ${since(when.dataset.raised)}`;
  }
}

function decideFromButton(alertId, button) {
  const step = button.dataset.step;
  const body = step === "engagement" ? { engaged: button.dataset.engaged === "true" } : { outcome: button.dataset.outcome };
  if (step === "outcome" && body.outcome === "other") {
    const detail = window.prompt("What happened?");
    if (!detail) return;
    body.detail = detail;
  }
  decide(alertId, step, body);
}

async function decide(alertId, step, body) {
  // The revision the officer saw: if the alert changed meanwhile, the decision is refused, not misapplied.
  const seen = state.alerts.get(alertId);
  if (seen) body.revision = seen.revision;
  if (step === "adjudication") {
    const chosen = state.perceived.get(alertId) || {};
    if (chosen.sex) body.perceived_sex = chosen.sex;
    if (chosen.ethnicity) body.perceived_ethnicity = chosen.ethnicity;
  }
  try {
    const alert = await api("POST", `/api/alerts/${encodeURIComponent(alertId)}/${step}`, body);
    upsert(alert);
    banner("");
  } catch (error) {
    banner(`Not recorded: ${error.message}`);
  }
}

function move(delta) {
  const alerts = visible();
  if (!alerts.length) return;
  const index = alerts.findIndex((a) => a.alert_id === state.selected);
  const next = index < 0 ? 0 : Math.min(alerts.length - 1, Math.max(0, index + delta));
  state.selected = alerts[next].alert_id;
  render();
  document.querySelector(`[data-alert-id="${CSS.escape(state.selected)}"]`)?.scrollIntoView({ block: "nearest" });
}

document.addEventListener("keydown", (event) => {
  if (!state.session || event.target.closest("input, select, textarea") || event.ctrlKey || event.metaKey) return;
  if ($("scene-large").open) { // the enlarged scene is on top: v closes it too (Esc by itself), nothing else acts
    if (event.key === "v") $("scene-large").close();
    return;
  }
  if (event.key === "v") return state.selected && enlargeScene(state.selected);
  if (event.key === "j" || event.key === "ArrowDown") return move(1);
  if (event.key === "k" || event.key === "ArrowUp") return move(-1);
  const action = KEYS[event.key];
  if (!action || !state.selected || !state.session.may_decide) return;
  const alert = state.alerts.get(state.selected);
  if (alert && allowedSteps(alert).includes(action[0])) decide(alert.alert_id, action[0], action[1]);
});

$("sign-in").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const response = await fetch("/api/session", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token: $("token").value, officer: $("officer").value }),
      credentials: "same-origin",
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      $("sign-in-message").textContent = data.error || "Could not sign in.";
      return;
    }
    $("token").value = "";
    await start();
  } catch (error) {
    $("sign-in-message").textContent = "The console cannot be reached.";
  }
});
$("sign-out").addEventListener("click", async () => {
  await api("DELETE", "/api/session").catch(() => {});
  showSignIn("Signed out.");
});
$("deployment").addEventListener("change", switchDeployment);
// Closed (Esc, v or its button): the browser gives focus back to what had it; the image is not kept.
$("scene-large").addEventListener("close", () => $("scene-large-image").removeAttribute("src"));
$("van").addEventListener("change", render);
$("state").addEventListener("change", render);

start();
