// "Score one lead": a form generated from GET /v1/model, sent to POST /v1/leads/score.
"use strict";

(() => {
  const { api, el, pct, num, humanise, gradeBadge, reasonList, policyLabel, message } =
    window.leadml;
  const OTHER = "__other__";
  const TYPE_WORDS = {
    number: "number", integer: "whole number", boolean: "yes / no", string: "text",
    "date-time": "date and time",
  };

  const $ = (id) => document.getElementById(id);
  // Each entry: {spec, id, control, other, error}; spec is a field of GET /v1/model.
  let inputs = [];
  let currentModel = null;

  // -- the form -----------------------------------------------------------------------------
  function option(value, text) {
    return el("option", { value }, text);
  }

  function control(spec, id) {
    const common = {
      id, name: spec.name, "aria-required": spec.required ? "true" : null,
      "aria-describedby": `${id}-hint ${id}-error`,
    };
    if (spec.role === "numeric") {
      return el("input", { ...common, type: "number", step: spec.type === "integer" ? "1" : "any", inputmode: "decimal" });
    }
    if (spec.role === "boolean") {
      return el("select", common, option("", "— not answered —"), option("Yes", "Yes"), option("No", "No"));
    }
    if (spec.role === "datetime") {
      return el("input", { ...common, type: "datetime-local", step: "1" });
    }
    if (spec.known_categories.length) {
      return el(
        "select", common, option("", "— not answered —"),
        spec.known_categories.map((c) => option(c, c)), option(OTHER, "Other (type it)…"),
      );
    }
    return el("input", { ...common, type: "text" });
  }

  function hint(spec) {
    const parts = [TYPE_WORDS[spec.type] || spec.type, spec.required ? "required" : "optional"];
    if (spec.role === "categorical" && spec.known_categories.length) {
      parts.push(`${spec.known_categories.length} known categories`);
    }
    return parts.join(" · ");
  }

  function fieldBlock(spec, index) {
    const id = `f-${index}`;
    const input = control(spec, id);
    let other = null;
    if (input.tagName === "SELECT" && spec.role === "categorical") {
      other = el("input", {
        id: `${id}-other`, type: "text", hidden: true, "aria-label": `${humanise(spec.name)}: other value`,
        "aria-describedby": `${id}-error`, placeholder: "Type the value",
      });
      input.addEventListener("change", () => {
        other.hidden = input.value !== OTHER;
        if (!other.hidden) other.focus();
      });
    }
    const error = el("p", { class: "field-error", id: `${id}-error` });
    inputs.push({ spec, id, control: input, other, error });
    return el(
      "div", { class: "field", dataset: { field: spec.name } },
      el("label", { for: id }, humanise(spec.name), " ",
        spec.required ? el("span", { class: "required", "aria-hidden": "true" }, "*") : null),
      input, other,
      el("span", { class: "hint", id: `${id}-hint` }, el("code", {}, spec.name), ` · ${hint(spec)}`),
      error,
    );
  }

  function buildForm(model) {
    inputs = [];
    const idSpec = { name: model.id_field, role: "id", type: "string", required: false, known_categories: [] };
    const blocks = [fieldBlock(idSpec, "id")];
    model.fields.forEach((spec, index) => blocks.push(fieldBlock(spec, index)));
    $("lead-fields").replaceChildren(...blocks);
    $("form-loading").hidden = true;
    $("score-button").disabled = false;
  }

  // -- reading the form ---------------------------------------------------------------------
  /** The lead as JSON, and problems the browser already knows about (e.g. "abc" in a number). */
  function readLead() {
    const lead = {};
    const problems = [];
    for (const { spec, control: input, other } of inputs) {
      let value = input.value;
      if (input.validity && input.validity.badInput) {
        problems.push({ loc: ["body", spec.name], msg: "Enter a number (use a dot for decimals)" });
        continue;
      }
      if (value === OTHER && other) value = other.value.trim();
      if (value === "") continue; // not answered: the API decides whether that is allowed
      lead[spec.name] = spec.role === "numeric" ? Number(value) : value;
    }
    return { lead, problems };
  }

  function clearErrors() {
    $("form-error").replaceChildren();
    for (const entry of inputs) {
      entry.error.textContent = "";
      entry.control.removeAttribute("aria-invalid");
      if (entry.other) entry.other.removeAttribute("aria-invalid");
    }
  }

  /** Put each problem next to its field; the rest above the button. Returns true if any shown. */
  function showProblems(problems) {
    const byName = new Map(inputs.map((entry) => [entry.spec.name, entry]));
    const general = [];
    let first = null;
    for (const problem of problems) {
      const loc = problem.loc || [];
      const entry = loc[0] === "body" && loc.length === 2 ? byName.get(String(loc[1])) : undefined;
      if (!entry) {
        general.push(problem);
        continue;
      }
      entry.error.textContent = entry.error.textContent
        ? `${entry.error.textContent}; ${message(problem)}`
        : message(problem);
      const target = entry.other && !entry.other.hidden ? entry.other : entry.control;
      target.setAttribute("aria-invalid", "true");
      first = first || target;
    }
    if (general.length) {
      $("form-error").append(
        "The lead cannot be scored:",
        el("ul", {}, general.map((p) => el("li", {}, `${where(p.loc)}${message(p)}`))),
      );
    }
    if (first) first.focus();
    return problems.length > 0;
  }

  function where(loc) {
    const parts = (loc || []).filter((part) => part !== "body");
    return parts.length ? `${parts.join(" / ")}: ` : "";
  }

  // -- the result ---------------------------------------------------------------------------
  function moveSentence(result) {
    // The API may add "what would move this lead past the MQL line"; show it when it does.
    const move = result.what_would_move;
    if (move === undefined || result.is_mql) return null;
    if (move === null) return "No change of a single actionable trait would take this lead past the line.";
    return typeof move === "string" ? move : move.sentence || null;
  }

  /** "line at score 26" when the policy that decided is the one the page knows. */
  function lineNote(result) {
    const policy = currentModel && currentModel.policy;
    if (!policy || policy.version !== result.policy_version) return null;
    return el("span", { class: "hint" }, `the line is at score ${Math.round(policy.cutoff * 100)}` +
      ` (probability ${pct(policy.cutoff, 1)})`);
  }

  function showResult(result) {
    const probability = el("data", { value: String(result.probability), id: "probability-value" }, pct(result.probability, 1));
    $("probability").replaceChildren(probability);
    $("score").textContent = String(result.score);
    $("grade").replaceChildren(gradeBadge(result.grade));
    $("is-mql").replaceChildren(
      el("span", { class: result.is_mql ? "verdict-yes" : "verdict-no" }, result.is_mql ? "Yes" : "No"),
      lineNote(result),
    );
    $("percentile").replaceChildren(
      num(result.percentile, 1),
      el("span", { class: "hint" }, `at or above ${num(result.percentile, 1)} % of test leads`),
    );
    $("result-versions").textContent =
      `Scored by model version ${result.model_version ?? "–"} under MQL ${policyLabel(result.policy_version)}.`;
    $("reasons-for").replaceChildren(reasonList(result.reasons, "for"));
    $("reasons-against").replaceChildren(reasonList(result.reasons, "against"));
    const sentence = moveSentence(result);
    $("move").hidden = sentence === null;
    $("move-text").textContent = sentence || "";
    $("result").hidden = false;
  }

  async function score(event) {
    event.preventDefault();
    clearErrors();
    const { lead, problems } = readLead();
    if (problems.length) {
      showProblems(problems);
      return;
    }
    const button = $("score-button");
    button.disabled = true;
    $("score-status").textContent = "Scoring…";
    try {
      const result = await api("POST", "/v1/leads/score?what_would_move=true", { json: lead });
      showResult(result);
      $("score-status").textContent = "Scored.";
    } catch (error) {
      $("score-status").textContent = "";
      $("result").hidden = true;
      if (error.problems && error.problems.length) showProblems(error.problems);
      else window.leadml.showError($("form-error"), error);
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener("DOMContentLoaded", async () => {
    const form = $("lead-form");
    form.addEventListener("submit", score);
    form.addEventListener("reset", () => {
      setTimeout(() => {
        clearErrors();
        for (const entry of inputs) if (entry.other) entry.other.hidden = true;
      });
    });
    try {
      currentModel = await window.leadml.model();
      buildForm(currentModel);
    } catch (error) {
      $("form-loading").hidden = true;
      window.leadml.showError($("form-error"), error);
    }
  });
})();
