/* Shared by the staff pages: JSON requests that carry the session's CSRF token. */
"use strict";

window.asktaStaff = (function () {
  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  /** Send JSON; resolve to {ok, status, data}, never reject on HTTP errors. */
  async function send(method, url, body) {
    var resp;
    try {
      resp = await fetch(url, {
        method: method,
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json",
                   "X-CSRF-Token": csrfToken() },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      return { ok: false, status: 0, data: null };
    }
    var data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    return { ok: resp.ok, status: resp.status, data: data };
  }

  /** A sentence for a person from a failed request. */
  function errorText(result) {
    if (result.status === 0) return "Could not reach the server. Check your connection and try again.";
    if (result.status === 401) return "Your session ended: reload the page and log in again.";
    var msg = result.data && result.data.error && result.data.error.message;
    return msg || "Something went wrong (HTTP " + result.status + ").";
  }

  /** Create an element with text content (never HTML). */
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  return { send: send, errorText: errorText, el: el, csrfToken: csrfToken };
})();
