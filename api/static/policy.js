// "The MQL line": the policy in force, what moving it would change, setting it, its history.
"use strict";

(() => {
  const { api, el, pct, num, signed, interval, when, gradeBadge, isNumber, message } = window.leadml;
  const $ = (id) => document.getElementById(id);
  const scoreOf = (probability) => Math.round(probability * 100);
  let holdoutSize = null;
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
      figure("Cut-off", `${pct(policy.cutoff, 1)}`, `probability; score ${scoreOf(policy.cutoff)} and up`, "policy-cutoff"),
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
    const leadsPerWeek = e.context && e.context.leads_per_week;
    if (isNumber(leadsPerWeek) && !$("sim-leads-per-week").value) {
      $("sim-leads-per-week").value = String(leadsPerWeek);
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
    $("simulation").hidden = false;
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

  const SIM_IDS = { shift_points: "shift-points", leads_per_week: "sim-leads-per-week" };

  async function simulate(event) {
    if (event) event.preventDefault();
    const form = $("simulate-form");
    clearFieldErrors(form);
    $("simulate-error").replaceChildren();
    const body = { shift_points: Number($("shift-points").value) };
    const leadsPerWeek = $("sim-leads-per-week").value;
    if (leadsPerWeek !== "") body.leads_per_week = Number(leadsPerWeek);
    $("simulate-button").disabled = true;
    try {
      showSimulation(await api("POST", "/v1/mql-policy/simulate", { json: body }));
    } catch (error) {
      $("simulation").hidden = true;
      showProblems(form, $("simulate-error"), error, (name) => SIM_IDS[name] || "");
    } finally {
      $("simulate-button").disabled = false;
    }
  }

  // -- set ----------------------------------------------------------------------------------
  function showKindFields() {
    const kind = $("set-kind").value;
    for (const field of $("set-form").querySelectorAll("[data-kinds]")) {
      field.hidden = !field.dataset.kinds.split(" ").includes(kind);
    }
    for (const hint of $("set-form").querySelectorAll("[data-optional]")) {
      hint.hidden = !hint.dataset.optional.split(" ").includes(kind);
    }
  }

  /** The PUT body, and problems found before sending (percentages are asked as 0-100). */
  function policyBody() {
    const form = $("set-form");
    const body = { kind: $("set-kind").value };
    const problems = [];
    for (const input of form.querySelectorAll("input")) {
      if (input.closest("[hidden]")) continue;
      if (input.validity.badInput) {
        problems.push({ loc: ["body", input.name], msg: "Enter a number (use a dot for decimals)" });
        continue;
      }
      if (input.value.trim() === "") continue;
      if (input.type !== "number") {
        body[input.name] = input.value.trim();
        continue;
      }
      const value = Number(input.value);
      if (input.hasAttribute("data-percent") && !(value >= 0 && value <= 100)) {
        problems.push({ loc: ["body", input.name], msg: "Enter a percentage from 0 to 100" });
      }
      body[input.name] = input.hasAttribute("data-percent") ? value / 100 : value;
    }
    return { body, problems };
  }

  async function setPolicy(event) {
    event.preventDefault();
    const form = $("set-form");
    clearFieldErrors(form);
    $("set-error").replaceChildren();
    $("set-status").textContent = "";
    const { body, problems } = policyBody();
    if (problems.length) {
      showProblems(form, $("set-error"), { problems }, (name) => `set-${name}`);
      return;
    }
    $("set-button").disabled = true;
    try {
      const policy = await api("PUT", "/v1/mql-policy", { json: body });
      $("set-status").textContent = `Stored as version ${policy.version}.`;
      showPolicy(policy);
      await Promise.all([loadHistory(), window.leadml.model(true)]);
    } catch (error) {
      showProblems(form, $("set-error"), error, (name) => `set-${name}`);
    } finally {
      $("set-button").disabled = false;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("simulate-form").addEventListener("submit", simulate);
    for (const button of document.querySelectorAll("[data-shift]")) {
      button.addEventListener("click", () => {
        $("shift-points").value = button.dataset.shift;
        simulate();
      });
    }
    $("set-kind").addEventListener("change", showKindFields);
    $("set-form").addEventListener("submit", setPolicy);
    showKindFields();
    window.leadml.model().catch(() => {});
    loadPolicy().then(loadHistory);
  });
})();
