// Shared by every leadml page: API calls (with the API key when the server asks for one),
// error text, number formatting and small DOM helpers. Plain ES2020, no build step.
"use strict";

window.leadml = (() => {
  const KEY_STORAGE = "leadml.apiKey";
  const root = document.body.dataset.apiRoot || "";

  class ApiError extends Error {
    constructor(status, detail) {
      super(problemText(detail, status));
      this.status = status;
      this.detail = detail;
    }

    /** Field-level problems of a 422: [{loc: [...], msg}], empty otherwise. */
    get problems() {
      return Array.isArray(this.detail) ? this.detail : [];
    }
  }

  /** A 422 problem's message without pydantic's "Value error, " prefix. */
  function message(problem) {
    return String(problem.msg || "").replace(/^(Value|Assertion) error, /, "");
  }

  function problemText(detail, status) {
    if (typeof detail === "string" && detail) return detail;
    if (Array.isArray(detail) && detail.length) {
      return detail.map((p) => `${where(p.loc)}${message(p)}`).join("; ");
    }
    return `the server answered ${status}`;
  }

  function where(loc) {
    const parts = (loc || []).filter((part) => part !== "body");
    return parts.length ? `${parts.join(" / ")}: ` : "";
  }

  // -- API key ------------------------------------------------------------------------------
  const storedKey = () => sessionStorage.getItem(KEY_STORAGE);
  let pendingKey = null;

  /** Ask for a key once, however many calls were refused at the same time. */
  function askForKey(reason) {
    if (pendingKey) return pendingKey;
    const dialog = document.getElementById("key-dialog");
    const form = document.getElementById("key-form");
    const input = document.getElementById("key-input");
    document.getElementById("key-reason").textContent = reason;
    input.value = "";
    pendingKey = new Promise((resolve, reject) => {
      const done = () => {
        form.removeEventListener("submit", onSubmit);
        dialog.removeEventListener("close", onClose);
        pendingKey = null;
      };
      const onSubmit = (event) => {
        const key = input.value.trim();
        if (!key) {
          event.preventDefault();
          return;
        }
        sessionStorage.setItem(KEY_STORAGE, key);
        showKeyButton();
        done();
        resolve(key);
      };
      const onClose = () => {
        if (!pendingKey) return;
        done();
        reject(new ApiError(401, "no API key given; reload the page to enter one"));
      };
      form.addEventListener("submit", onSubmit);
      dialog.addEventListener("close", onClose);
    });
    dialog.showModal();
    input.focus();
    return pendingKey;
  }

  function showKeyButton() {
    const button = document.getElementById("key-button");
    if (button) button.hidden = !storedKey();
  }

  async function readBody(response) {
    const text = await response.text();
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch (_) {
      return text;
    }
  }

  /**
   * Call the API. `options.json` is sent as JSON, `options.body` as it is (FormData, text).
   * A 401 asks for an API key and tries again; other errors throw ApiError.
   */
  async function api(method, path, options = {}) {
    for (;;) {
      const headers = new Headers(options.headers || {});
      headers.set("Accept", "application/json");
      // The score ledger tells scores made on the pages from those of other clients.
      headers.set("X-LeadML-Source", "page");
      const key = storedKey();
      if (key) headers.set("X-API-Key", key);
      let body = options.body;
      if (options.json !== undefined) {
        headers.set("Content-Type", "application/json");
        body = JSON.stringify(options.json);
      }
      const response = await fetch(root + path, { method, headers, body });
      const data = await readBody(response);
      if (response.status === 401) {
        if (key) sessionStorage.removeItem(KEY_STORAGE);
        const why = key
          ? `The key was refused (${problemText(data && data.detail, 401)}). Enter another one.`
          : "This server needs an API key. It stays in this browser tab only and is sent as" +
            " the X-API-Key header.";
        await askForKey(why);
        continue;
      }
      if (!response.ok) {
        throw new ApiError(response.status, data && data.detail !== undefined ? data.detail : data);
      }
      return data;
    }
  }

  // -- formatting ---------------------------------------------------------------------------
  const isNumber = (x) => typeof x === "number" && Number.isFinite(x);

  function pct(share, digits = 1) {
    return isNumber(share) ? `${(share * 100).toFixed(digits)} %` : "–";
  }

  function num(value, digits = 0) {
    return isNumber(value)
      ? value.toLocaleString("en", { minimumFractionDigits: digits, maximumFractionDigits: digits })
      : "–";
  }

  function signed(text, value) {
    return isNumber(value) && value > 0 ? `+${text}` : text;
  }

  function interval(pair, formatter) {
    if (!Array.isArray(pair) || !isNumber(pair[0]) || !isNumber(pair[1])) return "";
    return `${formatter(pair[0])} – ${formatter(pair[1])}`;
  }

  function humanise(name) {
    const words = String(name).replace(/[_]+/g, " ").trim();
    return words.charAt(0).toUpperCase() + words.slice(1);
  }

  function when(text) {
    if (!text) return "–";
    const date = new Date(text);
    return Number.isNaN(date.getTime()) ? String(text) : date.toLocaleString("en-GB");
  }

  // -- DOM ----------------------------------------------------------------------------------
  /** el("td", {class: "num"}, "12"): attributes set as given, children appended as text/nodes. */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  /** Each body cell labelled with its column heading (a `stack` table shows it on a phone). */
  function labelCells(table) {
    const headings = Array.from(table.querySelectorAll("thead th"), (th) => th.textContent.trim());
    for (const row of table.querySelectorAll("tbody tr")) {
      Array.from(row.cells).forEach((cell, i) => {
        if (cell.tagName === "TD" && headings[i] && !cell.dataset.label) cell.dataset.label = headings[i];
      });
    }
  }

  function gradeBadge(grade) {
    const safe = /^[A-Za-z0-9]+$/.test(grade) ? grade : "x";
    return el("span", { class: `grade grade-${safe}` }, grade);
  }

  function mqlText(isMql) {
    return el("span", { class: isMql ? "mql-yes" : "mql-no" }, isMql ? "Yes" : "No");
  }

  function reasonList(reasons, side) {
    const items = (reasons && reasons[side]) || [];
    if (!items.length) return el("span", { class: "muted" }, "–");
    return el("ul", { class: `reasons ${side}` }, items.map((r) => el("li", {}, r.text)));
  }

  function showError(target, error) {
    target.replaceChildren();
    if (!error) return;
    const message = error instanceof ApiError ? error.message : String(error.message || error);
    target.append(error.status === 403 ? `${message}. Use a key with that role.` : message);
  }

  function policyLabel(version) {
    return version === null || version === undefined ? "default policy" : `policy v${version}`;
  }

  /** "Model test-leads v3 · MQL default policy" in the header, from GET /v1/model. */
  function showModelLine(model) {
    const line = document.getElementById("model-line");
    if (!line || !model) return;
    const version = model.version ? ` v${model.version}` : "";
    const policy = model.policy ? policyLabel(model.policy.version) : "no policy";
    line.textContent = `Model ${model.name}${version} · MQL ${policy}`;
  }

  let modelPromise = null;
  /** GET /v1/model, once a page (`fresh` asks again, e.g. after the policy changed). */
  function model(fresh = false) {
    if (!modelPromise || fresh) {
      modelPromise = api("GET", "/v1/model").then((m) => {
        showModelLine(m);
        return m;
      });
      modelPromise.catch(() => {
        modelPromise = null;
      });
    }
    return modelPromise;
  }

  document.addEventListener("DOMContentLoaded", () => {
    showKeyButton();
    const dialog = document.getElementById("key-dialog");
    document.getElementById("key-cancel").addEventListener("click", () => dialog.close());
    const button = document.getElementById("key-button");
    if (button) {
      button.addEventListener("click", () => {
        sessionStorage.removeItem(KEY_STORAGE);
        askForKey("Enter the API key to use from now on.").then(() => {
          // A page that can carry on with the new key (keeping what was typed) says so by
          // cancelling the event; the others start again with it.
          const changed = new CustomEvent("leadml:key-changed", { cancelable: true });
          if (document.dispatchEvent(changed)) window.location.reload();
        });
      });
    }
  });

  return {
    ApiError, api, askForKey, model, message, pct, num, signed, interval, humanise, when, el,
    labelCells, gradeBadge, mqlText, reasonList, showError, policyLabel, isNumber,
  };
})();

// Charts: plotly.js, served by this app from the installed plotly package (/vendor/plotly.min.js).
window.leadml.chart = (target, traces, layout = {}) => {
  const node = typeof target === "string" ? document.getElementById(target) : target;
  if (!window.Plotly || !node) return Promise.resolve(null);
  const base = {
    margin: { l: 56, r: 16, t: 16, b: 48 },
    font: { family: "system-ui, sans-serif", size: 12, color: "#1d2330" },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "#ffffff",
    legend: { orientation: "h", x: 0, y: -0.25 },
    height: 320,
  };
  return window.Plotly.react(node, traces, { ...base, ...layout }, {
    displayModeBar: false, responsive: true,
  }).then(() => {
    node.dataset.drawn = String(traces.length);
    return node;
  });
};
