/* Shared helpers for askta pages: math typesetting, JSON requests, error messages. */
"use strict";

window.askta = (function () {
  /** Code blocks scroll sideways: keyboard users must be able to reach and scroll them. */
  function focusableCode(root) {
    (root || document).querySelectorAll("pre:not([tabindex]), .highlight:not([tabindex])")
      .forEach(function (el) {
        if (el.tagName === "PRE" && el.parentElement && el.parentElement.closest(".highlight")) return;
        el.setAttribute("tabindex", "0");
        if (!el.hasAttribute("aria-label")) el.setAttribute("aria-label", "Code");
      });
  }

  /** Render every not-yet-rendered .math element under root with the vendored KaTeX,
      and make its code blocks reachable by keyboard. */
  function typeset(root) {
    focusableCode(root);
    if (!window.katex) return;
    (root || document).querySelectorAll(".math:not([data-typeset])").forEach(function (el) {
      var tex = el.textContent;
      try {
        window.katex.render(tex, el, {
          displayMode: el.classList.contains("math-display"),
          throwOnError: false,
          trust: false,
          maxExpand: 1000,
        });
        el.setAttribute("data-typeset", "");
        el.setAttribute("data-tex", tex);
      } catch (e) {
        el.textContent = tex;
      }
    });
  }

  /** Seconds to wait from a 429/503 response, or null. */
  function retryAfter(resp) {
    var v = resp.headers.get("Retry-After");
    return v && /^\d+$/.test(v) ? parseInt(v, 10) : null;
  }

  /** POST JSON; resolve to {ok, status, data, retryAfter}, never reject on HTTP errors. */
  async function postJSON(url, body) {
    var resp;
    try {
      resp = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(body),
      });
    } catch (e) {
      return { ok: false, status: 0, data: null, retryAfter: null };
    }
    var data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    return { ok: resp.ok, status: resp.status, data: data, retryAfter: retryAfter(resp) };
  }

  /** A sentence for a person from an API error response. */
  function errorMessage(result) {
    if (result.status === 0) return "Could not reach the server. Check your connection and try again.";
    var msg = result.data && result.data.error && result.data.error.message;
    if (result.status === 429) {
      return "You are going a bit fast: try again in " + (result.retryAfter || "a few") + " seconds.";
    }
    return msg || "Something went wrong (HTTP " + result.status + "). Please try again.";
  }

  document.addEventListener("DOMContentLoaded", function () { typeset(document); });

  return { typeset: typeset, postJSON: postJSON, errorMessage: errorMessage, retryAfter: retryAfter };
})();
