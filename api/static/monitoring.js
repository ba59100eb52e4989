// "Monitoring": GET /v1/monitoring, the MQL line's promise against what sales reported back.
"use strict";

(() => {
  const { api, el, pct, num, chart, humanise } = window.leadml;
  const $ = (id) => document.getElementById(id);
  const VERDICT_WORDS = { healthy: "Healthy", watch: "Watch", act: "Act" };

  function rate(share) {
    if (!share || share.rate === null || share.rate === undefined) return "unobserved";
    const range = share.low !== null && share.low !== undefined
      ? ` (${pct(share.low, 0)}–${pct(share.high, 0)})` : "";
    return `${pct(share.rate)}${range} of ${num(share.n)}`;
  }

  function promised(promise) {
    const range = (promise.intervals || {}).precision;
    return `${pct(promise.precision)}${range ? ` (${pct(range[0], 0)}–${pct(range[1], 0)})` : ""}`;
  }

  function verdictBadge(verdict, words) {
    return el("span", { class: `verdict-badge verdict-${verdict}` }, words || VERDICT_WORDS[verdict] || verdict);
  }

  function figure(term, value, id) {
    return el("div", {}, el("dt", {}, term), el("dd", { id }, value));
  }

  function show(report) {
    const groups = report.groups || [];
    const withOutcome = groups.reduce((sum, g) => sum + ((g.mql_conversion || {}).n || 0), 0);
    // Before enough outcomes arrive, "healthy" rests on MQL volume and drift alone: say so.
    const unchecked = report.verdict === "healthy" && !report.promise_checked;
    $("verdict").replaceChildren(verdictBadge(report.verdict, unchecked ? "Healthy so far" : undefined),
      unchecked ? el("span", { class: "hint", id: "promise-unchecked" },
        " on MQL volume and drift; the promise is not checked yet") : "");
    $("verdict").dataset.verdict = report.verdict;
    $("verdict").dataset.promiseChecked = String(Boolean(report.promise_checked));
    $("verdict-reason").textContent = report.reason;
    const none = $("no-outcomes");
    none.hidden = withOutcome > 0;
    none.textContent = withOutcome > 0 ? "" :
      "No outcomes have been recorded yet for the leads scored in this window: the promise cannot" +
      " be checked until sales reports back (POST /v1/outcomes, or leadml outcomes import).";
    $("monitor-figures").replaceChildren(
      figure("Leads scored", num(report.scored), "mon-scored"),
      figure("MQLs with an outcome", num(withOutcome), "mon-outcomes"),
      figure("Score drift (PSI)", report.score_drift ? `${num(report.score_drift.psi, 3)} · ${report.score_drift.reading}` : "–", "mon-psi"),
    );
    $("groups").querySelector("tbody").replaceChildren(...groups.map((g) => el("tr", {},
      el("th", { scope: "row" }, `policy ${g.policy_version ?? "default"} · model v${g.model_version}`),
      el("td", { "data-label": "Verdict" }, verdictBadge(g.verdict, g.verdict === "healthy" &&
        !(g.findings || []).some((f) => f.figure === "mql_conversion" && f.judged) ? "Healthy so far" : undefined)),
      el("td", { class: "num", "data-label": "Leads scored" }, num(g.scored)),
      el("td", { class: "num", "data-label": "MQLs" }, num(g.mqls)),
      el("td", { "data-label": "Promised" }, g.promise ? promised(g.promise) : "–"),
      el("td", { "data-label": "Realised" }, rate(g.mql_conversion)),
      el("td", { "data-label": "Below the line" }, g.below_line && g.below_line.observed ? rate(g.below_line) : "unobserved"),
      el("td", { "data-label": "SQL acceptance" }, rate(g.sql_acceptance)))));
    drawGrades(groups[0]);
    const reasons = groups.flatMap((g) => Object.entries(g.rejection_reasons || {}));
    $("rejections").textContent = reasons.length
      ? reasons.map(([why, count]) => `${why}: ${num(count)}`).join(" · ")
      : "No MQL has been turned down (or no decision has been reported yet).";
    $("score-drift").textContent = report.score_drift
      ? `Scores: PSI ${num(report.score_drift.psi, 3)} against the test leads (${report.score_drift.reading}).`
      : "No scores in this window.";
    const drift = (report.feature_drift || []).slice(0, 12);
    chart("drift-chart", [{
      type: "bar", orientation: "h", x: drift.map((d) => d.psi).reverse(),
      y: drift.map((d) => humanise(d.feature)).reverse(), marker: { color: "#1f5fbf" }, name: "PSI",
    }], { margin: { l: 150, r: 16, t: 8, b: 40 }, xaxis: { title: { text: "PSI" },
        // Against the 0.25 of a significant shift, so a small PSI looks small.
        range: [0, Math.max(0.3, ...drift.map((d) => d.psi * 1.1))] },
      showlegend: false, height: Math.max(220, 28 * drift.length + 60) });
    // A figure with too few leads behind it is reported, not judged: no green badge for it.
    $("findings").replaceChildren(...(report.findings || []).map((f) =>
      el("li", {}, f.judged ? verdictBadge(f.verdict)
        : el("span", { class: "verdict-badge verdict-unjudged" }, "Not judged yet"), " ", f.reason)));
  }

  function drawGrades(group) {
    if (!group) return;
    const grades = group.grades || [];
    const bar = (side, name, color) => ({
      type: "bar", name, marker: { color },
      x: grades.map((g) => g.grade),
      y: grades.map((g) => (g[side] && g[side].rate !== null ? g[side].rate : 0)),
      error_y: { type: "data", symmetric: false, visible: true,
        array: grades.map((g) => (g[side] && g[side].high !== null ? g[side].high - g[side].rate : 0)),
        arrayminus: grades.map((g) => (g[side] && g[side].low !== null ? g[side].rate - g[side].low : 0)) },
      text: grades.map((g) => (g[side] && g[side].rate !== null ? pct(g[side].rate, 0) : "no outcome yet")),
      textposition: "outside",
    });
    chart("grades-chart", [bar("promised", "promised", "#9aa3b2"), bar("realised", "realised", "#17663a")],
      { barmode: "group", yaxis: { tickformat: ".0%", range: [0, 1.1], title: { text: "Conversion rate" } } });
  }

  async function load() {
    try {
      show(await api("GET", `/v1/monitoring?days=${$("days").value}`));
      $("monitor-error").replaceChildren();
    } catch (error) {
      $("verdict").textContent = "";
      window.leadml.showError($("monitor-error"), error);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    window.leadml.model().catch(() => {});
    $("days").addEventListener("change", load);
    load();
  });
})();
