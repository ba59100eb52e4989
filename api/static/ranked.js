// "Ranked leads": read a CSV (or pasted rows) in the browser, score it with
// POST /v1/leads/score-batch in parts no larger than the server takes at once, and show the
// ranking a page at a time, with search, filters and a download that keeps the lead's columns.
"use strict";

(() => {
  const { api, el, num, gradeBadge, mqlText, reasonList, policyLabel } = window.leadml;
  const SHOWN_PROBLEMS = 20;
  // Requests in flight at once: two keep the server busy without queueing behind each other.
  const PARALLEL_PARTS = 2;
  // Keep each part well under the body limit: quoting and multi-byte characters add a little.
  const BODY_SHARE = 0.8;
  // The direction a column sorts in when first selected: the best leads first.
  const FIRST_DIRECTION = {
    rank: "ascending", lead_id: "ascending", score: "descending", grade: "ascending",
    is_mql: "descending", percentile: "descending",
  };
  const SEPARATORS = [",", ";", "\t"];

  const state = {
    leads: [], // scored leads, each with `source`: the lead's own cells, by column
    columns: [], // the lead's own columns, in file order
    key: "rank", direction: "ascending", page: 0, modelVersion: null, policy: null,
    model: null, open: new Set(), running: null,
  };

  const $ = (id) => document.getElementById(id);

  // -- reading the input --------------------------------------------------------------------
  /** The separator the header line uses most, as the server decides it. */
  function separatorOf(text) {
    const header = text.split("\n", 1)[0];
    let best = ",";
    let most = 0;
    for (const sep of SEPARATORS) {
      const count = header.split(sep).length - 1;
      if (count > most) [best, most] = [sep, count];
    }
    return best;
  }

  /** RFC 4180 CSV: quoted cells may hold separators, quotes ("") and line breaks. */
  function parseCsv(text, sep) {
    const rows = [];
    let row = [];
    let cell = "";
    let quoted = false;
    for (let i = 0; i < text.length; i += 1) {
      const c = text[i];
      if (quoted) {
        if (c === '"') {
          if (text[i + 1] === '"') {
            cell += '"';
            i += 1;
          } else quoted = false;
        } else cell += c;
      } else if (c === '"') quoted = true;
      else if (c === sep) {
        row.push(cell);
        cell = "";
      } else if (c === "\n" || c === "\r") {
        if (c === "\r" && text[i + 1] === "\n") i += 1;
        row.push(cell);
        rows.push(row);
        row = [];
        cell = "";
      } else cell += c;
    }
    if (cell !== "" || row.length) {
      row.push(cell);
      rows.push(row);
    }
    return rows.filter((r) => r.some((value) => value.trim() !== ""));
  }

  function csvCell(value, sep) {
    const text = value === null || value === undefined ? "" : String(value);
    return /["\r\n]/.test(text) || text.includes(sep) ? `"${text.replace(/"/g, '""')}"` : text;
  }

  function csvLine(cells, sep) {
    return cells.map((c) => csvCell(c, sep)).join(sep);
  }

  /** The input as {columns, rows (arrays of cells), format, sep}, or null when there is none. */
  async function readInput() {
    const file = $("csv-file").files[0];
    let text;
    if (file) text = await file.text();
    else text = $("csv-text").value.trim();
    if (!text) return null;
    text = text.replace(/^\uFEFF/, "");
    if (!file && text.startsWith("[")) {
      let leads;
      try {
        leads = JSON.parse(text);
      } catch (error) {
        throw new Error(`The pasted JSON cannot be read: ${error.message}`);
      }
      if (!Array.isArray(leads)) throw new Error("Paste a JSON array of leads.");
      const columns = [];
      for (const lead of leads) {
        for (const name of Object.keys(lead || {})) if (!columns.includes(name)) columns.push(name);
      }
      return { format: "json", columns, leads, rows: leads.map((l) => columns.map((c) => l[c])) };
    }
    const sep = separatorOf(text);
    const [header, ...rows] = parseCsv(text, sep);
    if (!header) throw new Error("The CSV has no header row.");
    return { format: "csv", sep, columns: header.map((h) => h.trim()), rows };
  }

  /** Parts of at most `maxLeads` rows and about `maxBytes` of body each: [{first, body, type}]. */
  function parts(input, maxLeads, maxBytes) {
    const out = [];
    const budget = Math.max(1024, Math.floor(maxBytes * BODY_SHARE));
    const encoder = new TextEncoder();
    if (input.format === "json") {
      let first = 0;
      while (first < input.leads.length) {
        let size = 2;
        let end = first;
        while (end < input.leads.length && end - first < maxLeads) {
          const bytes = encoder.encode(JSON.stringify(input.leads[end])).length + 1;
          if (end > first && size + bytes > budget) break;
          size += bytes;
          end += 1;
        }
        out.push({ first, count: end - first, type: "application/json",
          body: JSON.stringify(input.leads.slice(first, end)) });
        first = end;
      }
      return out;
    }
    const header = csvLine(input.columns, input.sep);
    const headerBytes = encoder.encode(header).length + 2;
    let first = 0;
    while (first < input.rows.length) {
      const lines = [];
      let size = headerBytes;
      let end = first;
      while (end < input.rows.length && end - first < maxLeads) {
        const line = csvLine(input.rows[end], input.sep);
        const bytes = encoder.encode(line).length + 2;
        if (end > first && size + bytes > budget) break;
        lines.push(line);
        size += bytes;
        end += 1;
      }
      out.push({ first, count: end - first, type: "text/csv",
        body: [header, ...lines].join("\r\n") + "\r\n" });
      first = end;
    }
    return out;
  }

  // -- the list -----------------------------------------------------------------------------
  function compare(a, b, key) {
    const x = a[key];
    const y = b[key];
    if (x === y) return 0;
    if (x === null || x === undefined) return 1;
    if (y === null || y === undefined) return -1;
    if (typeof x === "string") return x.localeCompare(y, "en", { numeric: true });
    return x < y ? -1 : 1;
  }

  function filters() {
    return {
      id: $("search-id").value.trim().toLowerCase(),
      grade: $("filter-grade").value,
      mql: $("filter-mql").value,
      trait: $("filter-trait").value,
      value: $("filter-value").value,
    };
  }

  function traitValue(lead, trait) {
    const value = lead.source[trait];
    return value === null || value === undefined || value === "" ? "(empty)" : String(value);
  }

  function visibleLeads() {
    const f = filters();
    const leads = state.leads.filter((lead) =>
      (!f.id || String(lead.lead_id ?? "").toLowerCase().includes(f.id)) &&
      (!f.grade || lead.grade === f.grade) &&
      (!f.mql || lead.is_mql === (f.mql === "yes")) &&
      (!f.trait || !f.value || traitValue(lead, f.trait) === f.value));
    const sign = state.direction === "ascending" ? 1 : -1;
    // Ties keep the ranking order, whichever way the column is sorted.
    return leads.sort((a, b) => sign * compare(a, b, state.key) || a.rank - b.rank);
  }

  function idCell(lead) {
    return lead.lead_id === null || lead.lead_id === undefined
      ? el("span", { class: "muted" }, `row ${lead.row}`)
      : String(lead.lead_id);
  }

  function row(lead) {
    const open = state.open.has(lead.rank);
    return el(
      "tr",
      { dataset: { rank: lead.rank }, class: open ? "open" : null, "aria-expanded": String(open) },
      el("td", { class: "num rank" }, lead.rank),
      el("td", { class: "id" }, idCell(lead)),
      el("td", { class: "num score", dataset: { probability: lead.probability } }, lead.score),
      el("td", { class: "grade-cell" }, gradeBadge(lead.grade)),
      el("td", { class: "mql" }, mqlText(lead.is_mql)),
      el("td", { class: "num percentile" }, num(lead.percentile, 1)),
      el("td", { class: "reasons-for" }, el("span", { class: "phone-only reason-title" }, "Reasons for"),
        reasonList(lead.reasons, "for")),
      el("td", { class: "reasons-against" }, el("span", { class: "phone-only reason-title" }, "Reasons against"),
        reasonList(lead.reasons, "against")),
    );
  }

  function pageSize() {
    return Number($("page-size").value) || 50;
  }

  function render() {
    const shown = visibleLeads();
    const size = pageSize();
    const pages = Math.max(1, Math.ceil(shown.length / size));
    state.page = Math.min(Math.max(0, state.page), pages - 1);
    const slice = shown.slice(state.page * size, (state.page + 1) * size);
    const fragment = document.createDocumentFragment();
    for (const lead of slice) fragment.append(row(lead));
    document.querySelector("#ranked tbody").replaceChildren(fragment);
    for (const th of document.querySelectorAll("#ranked th[data-key]")) {
      if (th.dataset.key === state.key) th.setAttribute("aria-sort", state.direction);
      else th.removeAttribute("aria-sort");
    }
    const from = shown.length ? state.page * size + 1 : 0;
    $("page-info").textContent =
      `Page ${state.page + 1} of ${pages} · leads ${num(from)}–${num(from + slice.length - (slice.length ? 1 : 0))} of ${num(shown.length)}`;
    $("page-first").disabled = $("page-prev").disabled = state.page === 0;
    $("page-next").disabled = state.page >= pages - 1;
    $("no-match").hidden = shown.length > 0;
    const mqls = state.leads.filter((lead) => lead.is_mql).length;
    $("result-summary").textContent =
      `${num(state.leads.length)} leads scored, ${num(mqls)} MQLs` +
      (shown.length !== state.leads.length ? `; ${num(shown.length)} match the filters` : "");
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
    state.page = 0;
    render();
  }

  function refilter() {
    state.page = 0;
    render();
  }

  /** Grade choices from the policy, trait choices from the model's categorical fields. */
  function fillFilterChoices() {
    const grades = [...new Set(state.leads.map((l) => l.grade))].sort();
    $("filter-grade").replaceChildren(el("option", { value: "" }, "All grades"),
      ...grades.map((g) => el("option", { value: g }, g)));
    const model = state.model;
    const categorical = model
      ? model.fields.filter((f) => f.role === "categorical" || f.role === "boolean").map((f) => f.name)
      : [];
    const traits = categorical.filter((name) => state.columns.includes(name));
    $("filter-trait").replaceChildren(el("option", { value: "" }, "Any trait"),
      ...traits.map((t) => el("option", { value: t }, window.leadml.humanise(t))));
    fillValueChoices();
  }

  function fillValueChoices() {
    const trait = $("filter-trait").value;
    const select = $("filter-value");
    select.disabled = !trait;
    const counts = new Map();
    if (trait) for (const lead of state.leads) {
      const value = traitValue(lead, trait);
      counts.set(value, (counts.get(value) || 0) + 1);
    }
    const values = [...counts.keys()].sort((a, b) => counts.get(b) - counts.get(a));
    select.replaceChildren(el("option", { value: "" }, "Any value"),
      ...values.map((v) => el("option", { value: v }, `${v} (${num(counts.get(v))})`)));
  }

  // -- download -----------------------------------------------------------------------------
  // The server renders the CSV (POST /v1/csv), with leadml's one rule for cells a spreadsheet
  // would run as formulas; the page only says which rows and columns, in parts that fit the
  // body limit, and joins the answers under one header.
  const SCORE_COLUMNS = [
    "score", "probability", "grade", "is_mql", "percentile", "reasons_for", "reasons_against",
    "model_version", "policy_version",
  ];

  function reasonTexts(lead, side) {
    return ((lead.reasons && lead.reasons[side]) || []).map((r) => r.text).join("; ");
  }

  /** rank, the lead's own columns, then leadml's (renamed leadml_… if the file has the name). */
  function downloadColumns() {
    const own = state.columns;
    const ours = SCORE_COLUMNS.map((c) => (own.includes(c) ? `leadml_${c}` : c));
    return { header: [own.includes("rank") ? "leadml_rank" : "rank", ...own, ...ours] };
  }

  function downloadRow(lead) {
    return [
      lead.rank, ...state.columns.map((c) => lead.source[c] ?? null),
      lead.score, lead.probability, lead.grade, lead.is_mql ? "yes" : "no", lead.percentile,
      reasonTexts(lead, "for"), reasonTexts(lead, "against"), lead.model_version, lead.policy_version,
    ];
  }

  async function csvInParts(columns, rows) {
    const budget = Math.floor((state.model?.max_body_bytes || 1_000_000) * BODY_SHARE);
    const header = await api("POST", "/v1/csv", { json: { columns, rows: [] } });
    const texts = [header];
    let part = [];
    let size = 0;
    const flush = async () => {
      if (!part.length) return;
      const text = await api("POST", "/v1/csv", { json: { columns, rows: part } });
      texts.push(text.slice(header.length));
      part = [];
      size = 0;
    };
    for (const cells of rows) {
      const bytes = JSON.stringify(cells).length * 2; // multi-byte text, at worst about twice
      if (size + bytes > budget) await flush();
      part.push(cells);
      size += bytes;
    }
    await flush();
    return texts.join("");
  }

  async function download(name, columns, rows) {
    try {
      const text = await csvInParts(columns, rows);
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
  function problemItem(problem, first) {
    const loc = (problem.loc || []).filter((part) => part !== "body");
    let where = "";
    if (loc[0] === "columns") where = `Column ${loc.slice(1).join(" / ")}: `;
    else if (typeof loc[0] === "number") {
      where = `Row ${first + loc[0] + 1}${loc.length > 1 ? `, ${loc.slice(1).join(" / ")}` : ""}: `;
    } else if (loc.length) where = `${loc.join(" / ")}: `;
    return el("li", {}, `${where}${window.leadml.message(problem)}`);
  }

  function showBatchError(error, first = 0) {
    const box = $("batch-error");
    box.replaceChildren();
    if (error.problems && error.problems.length) {
      const problems = error.problems;
      const more = problems.length - SHOWN_PROBLEMS;
      box.append(
        "These leads cannot be scored; fix the file and try again.",
        el("ul", {}, problems.slice(0, SHOWN_PROBLEMS).map((p) => problemItem(p, first)),
          more > 0 ? el("li", {}, `…and ${more} more`) : null),
      );
    } else {
      window.leadml.showError(box, error);
    }
  }

  function progress(done, total) {
    const bar = $("batch-progress");
    bar.hidden = false;
    bar.max = total;
    bar.value = done;
    $("batch-status").textContent = `Scored ${num(done)} of ${num(total)} leads…`;
  }

  /** Score every part, at most PARALLEL_PARTS at a time; resolves to the leads in input order. */
  async function scoreParts(all, total, run) {
    const scored = new Array(total);
    let next = 0;
    let done = 0;
    const notes = new Set();
    const worker = async () => {
      while (next < all.length && !run.stopped) {
        const part = all[next];
        next += 1;
        let result;
        try {
          result = await api("POST", "/v1/leads/score-batch", {
            body: part.body, headers: { "Content-Type": part.type },
          });
        } catch (error) {
          error.first = part.first;
          throw error;
        }
        for (const note of result.notes || []) notes.add(note);
        for (const lead of result.leads) {
          const position = part.first + lead.row - 1;
          scored[position] = { ...lead, row: position + 1 };
        }
        state.modelVersion = result.model_version;
        state.policy = result.policy_version;
        done += part.count;
        progress(done, total);
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL_PARTS, all.length) }, worker));
    return { scored, notes: [...notes] };
  }

  async function rank(event) {
    event.preventDefault();
    $("batch-error").replaceChildren();
    const button = $("rank-button");
    let input;
    try {
      input = await readInput();
    } catch (error) {
      $("batch-error").textContent = error.message;
      return;
    }
    if (!input) {
      $("batch-error").textContent = "Choose a CSV file or paste rows first.";
      return;
    }
    if (!input.rows.length) {
      $("batch-error").textContent = "The file has a header row but no leads.";
      return;
    }
    const model = state.model || (await window.leadml.model().catch(() => null));
    const maxLeads = model ? model.max_batch_leads : 1000;
    const maxBytes = model ? model.max_body_bytes : 1_000_000;
    const run = { stopped: false };
    state.running = run;
    button.disabled = true;
    $("cancel-button").hidden = false;
    const total = input.rows.length;
    progress(0, total);
    try {
      const { scored, notes } = await scoreParts(parts(input, maxLeads, maxBytes), total, run);
      if (run.stopped) {
        $("batch-status").textContent = "Stopped; nothing was ranked.";
        return;
      }
      // Ranks across all parts: highest probability first, ties in input order (as the API).
      const order = scored.map((_, i) => i)
        .sort((a, b) => scored[b].probability - scored[a].probability || a - b);
      state.columns = input.columns;
      state.leads = order.map((i, position) => {
        const source = {};
        input.columns.forEach((name, c) => { source[name] = input.rows[i][c]; });
        return { ...scored[i], rank: position + 1, source };
      });
      state.key = "rank";
      state.direction = "ascending";
      state.page = 0;
      state.open.clear();
      $("filters").reset();
      fillFilterChoices();
      $("result").hidden = false;
      $("result-notes").hidden = !notes.length;
      $("result-notes").textContent = notes.join(" ");
      render();
      $("batch-status").textContent = `Ranked ${num(total)} leads.`;
    } catch (error) {
      $("batch-status").textContent = "";
      showBatchError(error, error.first || 0);
    } finally {
      $("batch-progress").hidden = true;
      $("cancel-button").hidden = true;
      button.disabled = false;
      state.running = null;
    }
  }

  async function describeFields() {
    try {
      const model = await window.leadml.model();
      state.model = model;
      const names = model.fields.map((f) => (f.required ? `${f.name}*` : f.name));
      const header = [model.id_field, ...model.fields.map((f) => f.name)];
      $("csv-template").onclick = () => download("leads-template.csv", header, []);
      $("csv-template").disabled = false;
      $("field-list").textContent =
        `Fields (* required): ${[`${model.id_field} (optional)`, ...names].join(", ")}.`;
    } catch (error) {
      window.leadml.showError($("batch-error"), error);
    }
  }

  function toggle(event) {
    const tr = event.target.closest("tr[data-rank]");
    if (!tr || event.target.closest("a, button")) return;
    const rankNumber = Number(tr.dataset.rank);
    if (state.open.has(rankNumber)) state.open.delete(rankNumber);
    else state.open.add(rankNumber);
    tr.classList.toggle("open");
    tr.setAttribute("aria-expanded", String(state.open.has(rankNumber)));
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("batch-form").addEventListener("submit", rank);
    $("cancel-button").addEventListener("click", () => {
      if (state.running) state.running.stopped = true;
    });
    for (const id of ["filter-grade", "filter-mql", "filter-value"]) {
      $(id).addEventListener("change", refilter);
    }
    $("filter-trait").addEventListener("change", () => {
      fillValueChoices();
      refilter();
    });
    $("search-id").addEventListener("input", refilter);
    $("filters").addEventListener("submit", (event) => event.preventDefault());
    $("filters").addEventListener("reset", () => setTimeout(() => {
      fillValueChoices();
      refilter();
    }));
    $("page-size").addEventListener("change", refilter);
    $("page-first").addEventListener("click", () => { state.page = 0; render(); });
    $("page-prev").addEventListener("click", () => { state.page -= 1; render(); });
    $("page-next").addEventListener("click", () => { state.page += 1; render(); });
    document.querySelector("#ranked tbody").addEventListener("click", toggle);
    $("download").addEventListener("click", () =>
      download("ranked-leads.csv", downloadColumns().header, visibleLeads().map(downloadRow)),
    );
    for (const th of document.querySelectorAll("#ranked th[data-key]")) {
      th.querySelector("button").addEventListener("click", () => sortBy(th.dataset.key));
    }
    describeFields();
  });
})();
