// "The model": GET /v1/model/report drawn as figures, tables and two charts.
"use strict";

(() => {
  const { api, el, pct, num, when, chart, humanise } = window.leadml;
  const $ = (id) => document.getElementById(id);
  const SHARE_METRICS = new Set(["base_rate"]);
  const COUNT_METRICS = new Set(["n"]);
  const HISTORY_METRICS = ["roc_auc", "pr_auc", "lift_top_decile", "brier", "ece", "base_rate", "n"];
  const ROLE_WORDS = {
    leakage: "Left out: it gives the outcome away",
    id: "Left out: an identifier",
    constant: "Left out: the same in every row",
    empty: "Left out: always empty",
    excluded: "Left out: excluded by whoever trained it",
  };

  function metricText(name, value) {
    if (SHARE_METRICS.has(name)) return pct(value);
    if (COUNT_METRICS.has(name)) return num(value);
    if (name === "lift_top_decile") return `${num(value, 2)}×`;
    return num(value, 3);
  }

  function fact(term, value, id) {
    return el("div", {}, el("dt", {}, term), el("dd", { id }, value));
  }

  function showVersion(report) {
    const version = report.version ? `version ${report.version}` : "an unversioned model";
    const alias = report.alias ? ` (alias “${report.alias}”)` : "";
    $("model-sentence").textContent =
      `${report.name} ${version}${alias}, a ${report.kind} model with ${report.calibration}` +
      ` calibration, predicts “${report.target}” from ${report.n_features} traits.`;
    const trainedOn = (report.history.find((v) => v.version === report.version) || {}).data_source;
    $("model-facts").replaceChildren(
      fact("Version", report.version ?? "–", "fact-version"),
      fact("Aliases", report.aliases.length ? report.aliases.join(", ") : "none", "fact-aliases"),
      fact("Trained", when(report.trained_at), "fact-trained"),
      fact("Trained on", trainedOn || report.source, "fact-data"),
      fact("Test leads", num(report.curves.n_holdout), "fact-holdout"),
    );
    $("model-selection").textContent = report.selection_reason || "";
  }

  function showMetrics(report) {
    $("metrics").querySelector("tbody").replaceChildren(...report.metrics.map((m) =>
      el("tr", { dataset: { metric: m.name } },
        el("th", { scope: "row" }, m.label),
        el("td", { class: "num" }, metricText(m.name, m.value)),
        el("td", {}, m.meaning))));
  }

  function drawCharts(curves) {
    const gains = curves.gains;
    const axis = (title) => ({ title: { text: title }, tickformat: ".0%", range: [0, 1], gridcolor: "#e6eaf1" });
    chart("gains-chart", [
      { x: gains.map((g) => g.share_of_leads), y: gains.map((g) => g.share_of_conversions),
        name: "this model", mode: "lines", line: { color: "#1f5fbf", width: 3 } },
      { x: [0, 1], y: [0, 1], name: "random order", mode: "lines",
        line: { color: "#9aa3b2", dash: "dash" } },
    ], { xaxis: axis("Share of leads worked"), yaxis: axis("Share of conversions caught") });
    const bins = curves.calibration;
    const top = Math.min(1, Math.max(...bins.map((b) => Math.max(b.predicted, b.observed))) * 1.1);
    const calAxis = (title) => ({ title: { text: title }, tickformat: ".0%", range: [0, top], gridcolor: "#e6eaf1" });
    chart("calibration-chart", [
      { x: bins.map((b) => b.predicted), y: bins.map((b) => b.observed), name: "test leads",
        mode: "lines+markers", line: { color: "#17663a", width: 3 },
        text: bins.map((b) => `${b.n} leads`) },
      { x: [0, top], y: [0, top], name: "perfectly calibrated", mode: "lines",
        line: { color: "#9aa3b2", dash: "dash" } },
    ], { xaxis: calAxis("Predicted chance"), yaxis: calAxis("Observed conversion rate") });
  }

  function showDrivers(drivers) {
    $("drivers").querySelector("tbody").replaceChildren(...drivers.map((d) =>
      el("tr", {},
        el("th", { scope: "row" }, d.label),
        el("td", { class: "num" }, pct(d.share)),
        el("td", {}, d.summary.replace(/^[^:]*:\s*/, "")))));
  }

  function showColumns(columns) {
    const rows = [
      ...columns.excluded.map((c) => [c.name, ROLE_WORDS[c.role] || `Left out (${c.role})`, c.evidence]),
      ...columns.flagged.map((c) => [c.name, "Used, but flagged: check it", c.evidence]),
    ];
    $("columns").querySelector("tbody").replaceChildren(...rows.map(([name, what, evidence]) =>
      el("tr", {}, el("th", { scope: "row" }, el("code", {}, name)),
        el("td", { "data-label": "What leadml did" }, what),
        el("td", { class: "evidence", "data-label": "Evidence" }, evidence || "–"))));
  }

  function showHistory(report) {
    const versions = report.history;
    $("history-note").textContent = report.history_error
      ? `The registry could not be read: ${report.history_error}`
      : `${versions.length} registered version${versions.length === 1 ? "" : "s"}, newest first; figures on each version's own test leads.`;
    const labels = Object.fromEntries(report.metrics.map((m) => [m.name, m.label]));
    $("versions").querySelector("thead").replaceChildren(el("tr", {},
      el("th", { scope: "col" }, "Version"), el("th", { scope: "col" }, "Registered"),
      el("th", { scope: "col" }, "Kind"),
      ...HISTORY_METRICS.map((m) => el("th", { scope: "col", class: "num" }, labels[m] || humanise(m)))));
    $("versions").querySelector("tbody").replaceChildren(...versions.map((v) =>
      el("tr", { class: v.version === report.version ? "chosen" : null, dataset: { version: v.version } },
        el("th", { scope: "row" }, `v${v.version}`,
          v.aliases.length ? el("span", { class: "hint" }, ` ${v.aliases.join(", ")}`) : null),
        el("td", { "data-label": "Registered" }, when(v.created_at)),
        el("td", { "data-label": "Kind" }, v.model_kind || "–"),
        ...HISTORY_METRICS.map((m) => el("td", { class: "num", "data-label": labels[m] || humanise(m) },
          v.metrics[m] === undefined ? "–" : metricText(m, v.metrics[m]))))));
  }

  async function load() {
    try {
      const report = await api("GET", "/v1/model/report");
      const current = report.history.find((v) => v.version === report.version);
      report.aliases = current ? current.aliases : report.alias ? [report.alias] : [];
      showVersion(report);
      showMetrics(report);
      drawCharts(report.curves);
      showDrivers(report.drivers);
      showColumns(report.columns);
      showHistory(report);
      $("model-error").replaceChildren();
    } catch (error) {
      $("model-sentence").textContent = "";
      window.leadml.showError($("model-error"), error);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    window.leadml.model().catch(() => {});
    load();
  });
})();
