// "Ranked leads": send a CSV (or pasted rows) to POST /v1/leads/score-batch and show the ranking.
"use strict";

(() => {
  const { api, el, num, gradeBadge, mqlText, reasonList, policyLabel } = window.leadml;
  const SHOWN_PROBLEMS = 20;
  // The direction a column sorts in when first selected: the best leads first.
  const FIRST_DIRECTION = {
    rank: "ascending", lead_id: "ascending", score: "descending", grade: "ascending",
    is_mql: "descending", percentile: "descending",
  };

  const state = { leads: [], key: "rank", direction: "ascending", modelVersion: null, policy: null };

  const $ = (id) => document.getElementById(id);

  function compare(a, b, key) {
    const x = a[key];
    const y = b[key];
    if (x === y) return 0;
    if (x === null || x === undefined) return 1;
    if (y === null || y === undefined) return -1;
    if (typeof x === "string") return x.localeCompare(y, "en", { numeric: true });
    return x < y ? -1 : 1;
  }

  function visibleLeads() {
    const onlyMqls = $("mql-only").checked;
    const leads = state.leads.filter((lead) => !onlyMqls || lead.is_mql);
    const sign = state.direction === "ascending" ? 1 : -1;
    // Ties keep the ranking order, whichever way the column is sorted.
    return leads.sort((a, b) => sign * compare(a, b, state.key) || a.rank - b.rank);
  }

  function row(lead) {
    return el(
      "tr",
      { dataset: { rank: lead.rank } },
      el("td", { class: "num" }, lead.rank),
      el("td", {}, lead.lead_id === null ? el("span", { class: "muted" }, `row ${lead.row}`) : lead.lead_id),
      el("td", { class: "num", dataset: { probability: lead.probability } }, lead.score),
      el("td", {}, gradeBadge(lead.grade)),
      el("td", {}, mqlText(lead.is_mql)),
      el("td", { class: "num" }, num(lead.percentile, 1)),
      el("td", {}, reasonList(lead.reasons, "for")),
      el("td", {}, reasonList(lead.reasons, "against")),
    );
  }

  function render() {
    const shown = visibleLeads();
    const fragment = document.createDocumentFragment();
    for (const lead of shown) fragment.append(row(lead));
    document.querySelector("#ranked tbody").replaceChildren(fragment);
    for (const th of document.querySelectorAll("#ranked th[data-key]")) {
      if (th.dataset.key === state.key) th.setAttribute("aria-sort", state.direction);
      else th.removeAttribute("aria-sort");
    }
    const mqls = state.leads.filter((lead) => lead.is_mql).length;
    $("result-summary").textContent =
      `${num(state.leads.length)} leads scored, ${num(mqls)} MQLs` +
      (shown.length !== state.leads.length ? `; showing ${num(shown.length)}` : "");
    $("result-versions").textContent =
      `Scored by model version ${state.modelVersion ?? "–"} under MQL ${policyLabel(state.policy)}`;
  }

  function sortBy(key) {
    if (state.key === key) {
      state.direction = state.direction === "ascending" ? "descending" : "ascending";
    } else {
      state.key = key;
      state.direction = FIRST_DIRECTION[key] || "ascending";
    }
    render();
  }

  // -- download -----------------------------------------------------------------------------
  // The server renders the CSV (POST /v1/csv), with leadml's one rule for cells a spreadsheet
  // would run as formulas; the page only says which rows and columns.
  const RANKED_COLUMNS = [
    "rank", "lead_id", "score", "probability", "grade", "is_mql", "percentile",
    "reasons_for", "reasons_against", "model_version", "policy_version",
  ];

  function reasonTexts(lead, side) {
    return ((lead.reasons && lead.reasons[side]) || []).map((r) => r.text).join("; ");
  }

  function rankedRows(leads) {
    return leads.map((lead) => [
      lead.rank, lead.lead_id, lead.score, lead.probability, lead.grade,
      lead.is_mql ? "yes" : "no", lead.percentile, reasonTexts(lead, "for"),
      reasonTexts(lead, "against"), lead.model_version, lead.policy_version,
    ]);
  }

  async function download(name, columns, rows) {
    try {
      const text = await window.leadml.api("POST", "/v1/csv", { json: { columns, rows } });
      const url = URL.createObjectURL(new Blob([text], { type: "text/csv;charset=utf-8" }));
      const link = el("a", { href: url, download: name });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch (error) {
      window.leadml.showError($("batch-error"), error);
    }
  }

  // -- scoring ------------------------------------------------------------------------------
  function requestBody() {
    const file = $("csv-file").files[0];
    if (file) {
      const form = new FormData();
      form.append("file", file, file.name);
      return { body: form };
    }
    const text = $("csv-text").value.trim();
    if (!text) return null;
    const type = text.startsWith("[") ? "application/json" : "text/csv";
    return { body: text, headers: { "Content-Type": type } };
  }

  function problemItem(problem) {
    const loc = (problem.loc || []).filter((part) => part !== "body");
    let where = "";
    if (loc[0] === "columns") where = `Column ${loc.slice(1).join(" / ")}: `;
    else if (typeof loc[0] === "number") {
      where = `Row ${loc[0] + 1}${loc.length > 1 ? `, ${loc.slice(1).join(" / ")}` : ""}: `;
    } else if (loc.length) where = `${loc.join(" / ")}: `;
    return el("li", {}, `${where}${window.leadml.message(problem)}`);
  }

  function showBatchError(error) {
    const box = $("batch-error");
    box.replaceChildren();
    if (error.problems && error.problems.length) {
      const problems = error.problems;
      const more = problems.length - SHOWN_PROBLEMS;
      box.append(
        "These leads cannot be scored; fix the file and try again.",
        el("ul", {}, problems.slice(0, SHOWN_PROBLEMS).map(problemItem),
          more > 0 ? el("li", {}, `…and ${more} more`) : null),
      );
    } else {
      window.leadml.showError(box, error);
    }
  }

  async function rank(event) {
    event.preventDefault();
    const request = requestBody();
    $("batch-error").replaceChildren();
    if (!request) {
      $("batch-error").textContent = "Choose a CSV file or paste rows first.";
      return;
    }
    const button = $("rank-button");
    button.disabled = true;
    $("batch-status").textContent = "Scoring…";
    try {
      const result = await api("POST", "/v1/leads/score-batch", request);
      state.leads = result.leads;
      state.modelVersion = result.model_version;
      state.policy = result.policy_version;
      state.key = "rank";
      state.direction = "ascending";
      $("result").hidden = false;
      render();
      const notes = (result.notes || []).join(" ");
      $("batch-status").textContent = `Ranked ${num(result.count)} leads.${notes ? " " + notes : ""}`;
    } catch (error) {
      $("batch-status").textContent = "";
      showBatchError(error);
    } finally {
      button.disabled = false;
    }
  }

  async function describeFields() {
    try {
      const model = await window.leadml.model();
      const names = model.fields.map((f) => (f.required ? `${f.name}*` : f.name));
      const header = [model.id_field, ...model.fields.map((f) => f.name)];
      $("csv-template").onclick = () => download("leads-template.csv", header, []);
      $("csv-template").disabled = false;
      $("field-list").textContent =
        `Fields (* required): ${[`${model.id_field} (optional)`, ...names].join(", ")}.` +
        ` At most ${num(model.max_batch_leads)} leads a batch.`;
    } catch (error) {
      window.leadml.showError($("batch-error"), error);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("batch-form").addEventListener("submit", rank);
    $("mql-only").addEventListener("change", render);
    $("download").addEventListener("click", () =>
      download("ranked-leads.csv", RANKED_COLUMNS, rankedRows(visibleLeads())),
    );
    for (const th of document.querySelectorAll("#ranked th[data-key]")) {
      th.querySelector("button").addEventListener("click", () => sortBy(th.dataset.key));
    }
    describeFields();
  });
})();
