// "The MQL line": the policy in force, what moving it would change, setting it, its history.
"use strict";

(() => {
  const { api, el, pct, num, signed, interval, when, gradeBadge, isNumber, message, chart } =
    window.leadml;
  const $ = (id) => document.getElementById(id);
  /** The score a lead at this probability gets: numpy's rint (half to even), as the server. */
  function scoreOf(probability) {
    const x = Math.min(1, Math.max(0, probability)) * 100;
    const floor = Math.floor(x);
    const rest = x - floor;
    if (rest !== 0.5) return rest > 0.5 ? floor + 1 : floor;
    return floor % 2 === 0 ? floor : floor + 1;
  }
  let holdoutSize = null;
  let currentPolicy = null;
  let curves = null;
  let preview = null; // {body, result}: the last previewed policy and what simulate answered
  let canSave = { ok: false, why: "Checking your key's role…" };
  const points = (share) => (isNumber(share) ? `${(share * 100).toFixed(1)} pts` : "–");

  // -- the policy now -----------------------------------------------------------------------
  function figure(term, value, note, id) {
    return el("div", {}, el("dt", {}, term),
      el("dd", { id }, value, note ? el("span", { class: "hint" }, note) : null));
  }

  function intervalNote(expected, name, formatter) {
    const range = interval((expected.intervals || {})[name], formatter);
    return range ? `${Math.round(expected.level * 100)} % interval ${range}` : "";
  }

  function showPolicy(policy) {
    currentPolicy = policy;
    const e = policy.expected;
    holdoutSize = e.n_holdout;
    $("policy-sentence").textContent = policy.sentence;
    $("policy-meta").textContent = policy.version === null
      ? `Default policy: none has been set for model ${policy.model_name} yet.`
      : `Version ${policy.version}, set by ${policy.set_by || "–"} on ${when(policy.created_at)}` +
        (policy.reason ? ` — “${policy.reason}”` : "") + ".";
    const stale = $("policy-stale");
    stale.hidden = !policy.stale;
    stale.textContent = policy.stale
      ? `This line was worked out on model version ${policy.model_version}; version` +
        ` ${policy.serving_model_version} is serving now. Set the policy again to re-fit it.`
      : "";
    const weekly = isNumber(e.mqls_per_week)
      ? [figure("MQLs a week", num(e.mqls_per_week), `of ${num(e.context.leads_per_week)} new leads`)]
      : [];
    const conversions = isNumber(e.expected_conversions_per_week)
      ? [figure("Expected conversions a week", num(e.expected_conversions_per_week, 1), "among the MQLs")]
      : [];
    $("policy-figures").replaceChildren(
      figure("Cut-off", `${pct(policy.cutoff, 1)}`, `probability; MQLs score ${scoreOf(policy.cutoff)} and up`, "policy-cutoff"),
      figure("MQL volume", pct(e.mql_share), `of all leads · ${intervalNote(e, "mql_share", pct)}`, "policy-volume"),
      ...weekly,
      figure("Conversion rate of MQLs", pct(e.precision), intervalNote(e, "precision", pct), "policy-precision"),
      figure("Conversions captured", pct(e.recall), intervalNote(e, "recall", pct), "policy-recall"),
      figure("Lift", isNumber(e.lift) ? `${num(e.lift, 2)}×` : "–", `over the ${pct(e.base_rate)} base rate`),
      ...conversions,
    );
    $("grades").querySelector("tbody").replaceChildren(
      ...(e.grades || []).map((g) => el("tr", {},
        el("td", {}, gradeBadge(g.grade)),
        el("td", { class: "num" }, pct(g.lower_bound)),
        el("td", { class: "num" }, pct(g.share_of_leads)),
        el("td", { class: "num" }, pct(g.conversion_rate)),
        el("td", { class: "num" }, pct(g.share_of_conversions)))),
    );
    window.leadml.labelCells($("grades"));
    // Saving without the exploration share would turn it off: start from the one in force.
    const exploring = policy.exploration_share || 0;
    if (!$("sim-exploration_share").value) {
      $("sim-exploration_share").value = exploring ? `${num(exploring * 100, 1)} %` : "0 %";
    }
    const leadsPerWeek = e.context && e.context.leads_per_week;
    if (isNumber(leadsPerWeek) && !$("sim-leads_per_week").value) {
      $("sim-leads_per_week").value = String(leadsPerWeek);
    }
  }

  async function loadPolicy() {
    try {
      showPolicy(await api("GET", "/v1/mql-policy"));
      $("policy-error").replaceChildren();
    } catch (error) {
      $("policy-sentence").textContent = "";
      window.leadml.showError($("policy-error"), error);
    }
  }

  // -- history ------------------------------------------------------------------------------
  async function loadHistory() {
    try {
      const history = await api("GET", "/v1/mql-policy/history");
      $("history").querySelector("tbody").replaceChildren(
        ...history.versions.map((v) => el("tr", {},
          el("td", { class: "num" }, v.version ?? "–"),
          el("td", {}, when(v.created_at)),
          el("td", {}, v.set_by || "–"),
          el("td", {}, v.sentence, v.stale ? el("span", { class: "hint" }, " (earlier model)") : null),
          el("td", { class: "num" }, pct(v.cutoff)),
          el("td", {}, v.reason || ""))),
      );
      window.leadml.labelCells($("history"));
      $("history-empty").hidden = history.versions.length > 0;
      $("history-error").replaceChildren();
    } catch (error) {
      window.leadml.showError($("history-error"), error);
    }
  }

  // -- simulate -----------------------------------------------------------------------------
  function changeText(value, formatter, coloured) {
    if (!isNumber(value)) return "–";
    const text = signed(formatter(value), value);
    const tone = !coloured ? "" : value > 0 ? "up" : value < 0 ? "down" : "";
    return el("span", { class: tone || null }, text);
  }

  function simRow(label, key, now, moved, change, formatter, changeFormatter = formatter) {
    // A lower cut-off is neither good nor bad in itself: only its consequences are coloured.
    const coloured = key !== "cutoff";
    return el("tr", { dataset: { figure: key } },
      el("th", { scope: "row" }, label),
      el("td", { class: "num", id: `sim-now-${key}` }, formatter(now[key])),
      el("td", { class: "num", id: `sim-moved-${key}` }, formatter(moved[key])),
      el("td", { class: "num", id: `sim-change-${key}` },
        changeText(change[key], changeFormatter, coloured)));
  }

  function showSimulation(result) {
    const { current: now, proposed: moved, change } = result;
    const count = (x) => num(x);
    const rows = [
      simRow("Cut-off (probability)", "cutoff", now, moved, change, pct, points),
      simRow("MQL volume (share of leads)", "mql_share", now, moved, change, pct, points),
    ];
    if (isNumber(moved.mqls_per_week)) {
      rows.push(simRow("MQLs a week", "mqls_per_week", now, moved, change, count));
      rows.push(simRow("Expected conversions a week", "expected_conversions_per_week", now, moved,
        change, (x) => num(x, 1)));
    }
    rows.push(
      simRow("MQLs among the test leads", "holdout_mqls", now, moved, change, count),
      simRow("Conversions among those MQLs", "holdout_conversions", now, moved, change, count),
      simRow("Conversion rate of MQLs", "precision", now, moved, change, pct, points),
      simRow("Conversions captured", "recall", now, moved, change, pct, points),
    );
    $("sim-table").querySelector("tbody").replaceChildren(...rows);
    $("sim-sentence").textContent = result.sentence;
    showPreviewFigures(result);
    $("sim-exploration").textContent = (result.exploration && result.exploration.sentence) || "";
    $("sim-holdout").textContent = isNumber(holdoutSize) ? num(holdoutSize) : "";
    const weekly = result.rows.some((r) => isNumber(r.mqls_per_week));
    $("sim-rows-weekly").hidden = !weekly;
    $("sim-rows").querySelector("tbody").replaceChildren(
      ...result.rows.map((r) => el("tr", { class: r.chosen ? "chosen" : null },
        el("td", { class: "num" }, pct(r.cutoff)),
        el("td", { class: "num" }, pct(r.mql_share)),
        weekly ? el("td", { class: "num" }, num(r.mqls_per_week)) : null,
        el("td", { class: "num" }, pct(r.precision)),
        el("td", { class: "num" }, pct(r.recall)),
        el("td", { class: "num" }, isNumber(r.lift) ? `${num(r.lift, 2)}×` : "–"))),
    );
    window.leadml.labelCells($("sim-table"));
    window.leadml.labelCells($("sim-rows"));
    $("simulation").hidden = false;
  }

  /** MQLs a week and their conversion, each with its interval (the bootstrap's, at `level`). */
  function showPreviewFigures(result) {
    const p = result.proposed;
    const level = `${Math.round(p.level * 100)} % interval`;
    const weekly = result.context.leads_per_week;
    const share = p.intervals.mql_share || [];
    const perWeek = isNumber(weekly) && isNumber(share[0])
      ? `${level} ${num(share[0] * weekly)} – ${num(share[1] * weekly)}` : "give the new leads a week";
    $("sim-figures").replaceChildren(
      figure("Line (probability)", pct(p.cutoff, 1), `MQLs score ${scoreOf(p.cutoff)} and up`, "sim-line"),
      figure("MQLs a week", isNumber(p.mqls_per_week) ? num(p.mqls_per_week) : "–", perWeek, "sim-weekly"),
      figure("Expected conversion of MQLs", pct(p.precision),
        intervalNote({ intervals: p.intervals, level: p.level }, "precision", pct), "sim-precision"),
      figure("Conversions captured", pct(p.recall),
        intervalNote({ intervals: p.intervals, level: p.level }, "recall", pct), "sim-recall"),
    );
  }

  function drawGains(result) {
    if (!curves) return;
    const g = curves.gains;
    const point = (figures, name, color) => ({
      x: [figures.mql_share], y: [figures.recall], name, mode: "markers",
      marker: { size: 13, color, line: { color: "#fff", width: 2 } },
      text: [`${name}: ${pct(figures.mql_share)} of leads, ${pct(figures.recall)} of conversions`],
      hoverinfo: "text",
    });
    const axis = (title) => ({ title: { text: title }, tickformat: ".0%", range: [0, 1], gridcolor: "#e6eaf1" });
    chart("sim-gains", [
      { x: g.map((r) => r.share_of_leads), y: g.map((r) => r.share_of_conversions),
        name: "gains", mode: "lines", line: { color: "#1f5fbf", width: 3 } },
      { x: [0, 1], y: [0, 1], name: "random order", mode: "lines", line: { color: "#9aa3b2", dash: "dash" } },
      point(result.current, "line now", "#5a6374"),
      point(result.proposed, "previewed line", "#f0a500"),
    ], { xaxis: axis("Share of leads made MQLs"), yaxis: axis("Share of conversions captured") });
  }

  function clearFieldErrors(form) {
    for (const p of form.querySelectorAll(".field-error")) p.textContent = "";
    for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  }

  /** Problems next to the inputs named by their loc's last part; the rest in `box`. */
  function showProblems(form, box, error, idOf) {
    const general = [];
    const problems = error.problems || [];
    for (const problem of problems) {
      const names = (problem.loc || []).filter((part) => typeof part === "string");
      const name = names[names.length - 1];
      const input = name && name !== "body" ? $(idOf(name)) : null;
      if (!input || input.closest("[hidden]")) {
        general.push(message(problem));
        continue;
      }
      $(`${input.id}-error`).textContent = message(problem);
      input.setAttribute("aria-invalid", "true");
    }
    box.replaceChildren(...(general.length ? [general.join("; ")] : []));
    if (!problems.length) window.leadml.showError(box, error);
  }

  // -- the proposal -------------------------------------------------------------------------
  /**
   * A percentage as typed: "70", "70 %", "70%", "12.5" (a comma for decimals too). 0.7 is
   * refused: it is a share, and as a percentage it would make nearly every lead an MQL.
   */
  function parsePercent(text, zeroOk, most = 100) {
    const match = /^\s*(\d+(?:[.,]\d+)?)\s*(%?)\s*$/.exec(text);
    if (!match) return { error: "Enter a percentage such as 70 or 70 %" };
    const value = Number(match[1].replace(",", "."));
    if (!match[2] && value > 0 && value < 1) {
      return { error: `${match[1]} looks like a share: enter ${num(value * 100)} for ${num(value * 100)} %` };
    }
    if (value > most) return { error: `Enter a percentage from 0 to ${most}` };
    if (value === 0 && !zeroOk) return { error: "Enter a percentage above 0" };
    return { value: value / 100 };
  }

  function showKindFields() {
    const kind = $("sim-kind").value;
    for (const field of $("simulate-form").querySelectorAll("[data-kinds]")) {
      field.hidden = !field.dataset.kinds.split(" ").includes(kind);
    }
    for (const hint of $("simulate-form").querySelectorAll("[data-optional]")) {
      hint.hidden = !hint.dataset.optional.split(" ").includes(kind);
    }
  }

  /** The simulate body, and problems found before sending. */
  function proposalBody() {
    const form = $("simulate-form");
    const kind = $("sim-kind").value;
    const body = kind === "shift" ? {} : { kind };
    const problems = [];
    for (const input of form.querySelectorAll("input")) {
      if (input.closest("[hidden]")) continue;
      const text = input.value.trim();
      if (input.validity.badInput) {
        problems.push({ loc: ["body", input.name], msg: "Enter a number (use a dot for decimals)" });
        continue;
      }
      if (text === "") continue;
      if (input.hasAttribute("data-percent")) {
        const most = input.dataset.max ? Number(input.dataset.max) : 100;
        const parsed = parsePercent(text, input.hasAttribute("data-zero-ok"), most);
        if (parsed.error) problems.push({ loc: ["body", input.name], msg: parsed.error });
        else body[input.name] = parsed.value;
      } else {
        const value = Number(text);
        const low = Number(input.min);
        const high = input.max === "" ? Infinity : Number(input.max);
        if (!(value >= low && value <= high)) {
          problems.push({ loc: ["body", input.name], msg: `Enter a number from ${num(low)}${Number.isFinite(high) ? ` to ${num(high)}` : " up"}` });
        } else body[input.name] = value;
      }
    }
    return { body, problems };
  }

  const fieldId = (name) => `sim-${name}`;

  async function simulate(event) {
    if (event) event.preventDefault();
    const form = $("simulate-form");
    clearFieldErrors(form);
    $("simulate-error").replaceChildren();
    $("set-status").textContent = "";
    const { body, problems } = proposalBody();
    if (problems.length) {
      $("simulation").hidden = true;
      showProblems(form, $("simulate-error"), { problems }, fieldId);
      return;
    }
    $("simulate-button").disabled = true;
    try {
      const result = await api("POST", "/v1/mql-policy/simulate", { json: body });
      preview = { body, result };
      showSimulation(result);
      drawGains(result); // once shown: plotly sizes a chart to its box
      showSaveControl();
    } catch (error) {
      preview = null;
      $("simulation").hidden = true;
      showProblems(form, $("simulate-error"), error, fieldId);
    } finally {
      $("simulate-button").disabled = false;
    }
  }

  // -- saving -------------------------------------------------------------------------------
  function showSaveControl() {
    $("save-button").disabled = !canSave.ok;
    $("save-why").textContent = canSave.ok ? "" : canSave.why;
  }

  async function checkRole() {
    try {
      const model = await window.leadml.model(true);
      const roles = model.your_roles || [];
      canSave = roles.includes("admin")
        ? { ok: true, why: "" }
        : { ok: false, why: `Saving needs an admin key; this key has the ${roles.join(", ") || "no"} role. Use "Change API key" to enter an admin key (the form stays as it is).` };
    } catch (error) {
      canSave = { ok: false, why: "Saving needs an admin key." };
    }
    showSaveControl();
  }

  /** The PUT body of the previewed policy: a move by points is saved as the cut-off it found. */
  function changeBody() {
    const { body, result } = preview;
    if (body.kind) return { ...body };
    const change = { kind: "fixed", cutoff: result.proposed.cutoff };
    if (isNumber(body.leads_per_week)) change.leads_per_week = body.leads_per_week;
    if (isNumber(body.exploration_share)) change.exploration_share = body.exploration_share;
    return change;
  }

  function changeRow(label, before, after) {
    return el("tr", {}, el("th", { scope: "row" }, label), el("td", { class: "num" }, before),
      el("td", { "aria-hidden": "true" }, "→"), el("td", { class: "num" }, after));
  }

  function askToSave() {
    if (!preview || !canSave.ok) return;
    const { current: now, proposed: next } = preview.result;
    const weekly = (f) => (isNumber(f.mqls_per_week) ? ` · ${num(f.mqls_per_week)} a week` : "");
    $("confirm-change").querySelector("tbody").replaceChildren(
      changeRow("Line", `${pct(now.cutoff)} (score ${scoreOf(now.cutoff)})`, `${pct(next.cutoff)} (score ${scoreOf(next.cutoff)})`),
      changeRow("MQL volume", `${pct(now.mql_share)}${weekly(now)}`, `${pct(next.mql_share)}${weekly(next)}`),
      changeRow("Conversion of MQLs", pct(now.precision), pct(next.precision)),
      changeRow("Conversions captured", pct(now.recall), pct(next.recall)),
      changeRow("Exploration share", pct(currentPolicy.exploration_share || 0),
        pct((preview.result.exploration || {}).share || 0)),
    );
    clearFieldErrors($("confirm-form"));
    $("confirm-dialog").showModal();
    $("confirm-set_by").focus();
  }

  async function confirmSave(event) {
    event.preventDefault();
    const form = $("confirm-form");
    clearFieldErrors(form);
    let missing = false;
    for (const name of ["set_by", "reason"]) {
      const input = $(`confirm-${name}`);
      if (!input.value.trim()) {
        $(`confirm-${name}-error`).textContent = name === "reason" ? "Say why, for the history" : "Say who sets it";
        input.setAttribute("aria-invalid", "true");
        missing = true;
      }
    }
    if (missing) return;
    const body = { ...changeBody(), set_by: $("confirm-set_by").value.trim(), reason: $("confirm-reason").value.trim() };
    $("confirm-save").disabled = true;
    try {
      const policy = await api("PUT", "/v1/mql-policy", { json: body });
      $("confirm-dialog").close();
      $("set-error").replaceChildren();
      $("set-status").textContent = `Stored as version ${policy.version}.`;
      showPolicy(policy);
      await Promise.all([loadHistory(), window.leadml.model(true)]);
    } catch (error) {
      $("confirm-dialog").close();
      showProblems($("simulate-form"), $("set-error"), error, fieldId);
    } finally {
      $("confirm-save").disabled = false;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("simulate-form").addEventListener("submit", simulate);
    for (const button of document.querySelectorAll("[data-shift]")) {
      button.addEventListener("click", () => {
        $("sim-kind").value = "shift";
        showKindFields();
        $("sim-shift_points").value = button.dataset.shift;
        simulate();
      });
    }
    $("sim-kind").addEventListener("change", showKindFields);
    $("save-button").addEventListener("click", askToSave);
    $("confirm-form").addEventListener("submit", confirmSave);
    $("confirm-cancel").addEventListener("click", () => $("confirm-dialog").close());
    // A new API key keeps the form: only what the key may do is checked again.
    document.addEventListener("leadml:key-changed", (event) => {
      event.preventDefault();
      checkRole();
    });
    showKindFields();
    checkRole();
    api("GET", "/v1/model/curves").then((c) => { curves = c; }).catch(() => {});
    loadPolicy().then(loadHistory);
  });
})();
