/* The chat page: ask, show the curated answer (or the honest "sent to the TAs"), collect feedback.
   The conversation is kept in sessionStorage so it survives a reload or a visit to an entry. */
"use strict";

(function () {
  var HISTORY_KEY = "askta.conversation";
  var SESSION_KEY = "askta.session";
  var MAX_HISTORY = 50;

  var form = document.getElementById("ask-form");
  var input = document.getElementById("question");
  var button = document.getElementById("ask-button");
  var list = document.getElementById("conversation");
  var busy = document.getElementById("chat-busy");
  var count = document.getElementById("char-count");
  var intro = document.getElementById("intro");
  var clear = document.getElementById("clear-chat");
  var maxChars = parseInt(input.getAttribute("maxlength"), 10) || 1000;

  function load(key, fallback) {
    try { var v = sessionStorage.getItem(key); return v ? JSON.parse(v) : fallback; }
    catch (e) { return fallback; }
  }
  function save(key, value) {
    try { sessionStorage.setItem(key, JSON.stringify(value)); } catch (e) { /* storage full or off */ }
  }

  var sessionId = load(SESSION_KEY, null);
  if (!sessionId) {
    sessionId = (window.crypto && crypto.randomUUID) ? crypto.randomUUID() : String(Date.now()) + Math.random();
    save(SESSION_KEY, sessionId);
  }
  var history = load(HISTORY_KEY, []);

  function clone(id) { return document.getElementById(id).content.firstElementChild.cloneNode(true); }

  function entryHref(id) { return "/entries/" + encodeURIComponent(id); }

  function fillSuggestions(node, suggestions, skipId) {
    var items = (suggestions || []).filter(function (s) { return s.id !== skipId; });
    if (!items.length) return;
    var ul = node.querySelector(".suggestion-list");
    items.forEach(function (s) {
      var li = document.createElement("li");
      var a = document.createElement("a");
      a.href = entryHref(s.id);
      a.textContent = s.question;
      li.appendChild(a);
      ul.appendChild(li);
    });
    node.querySelector(".suggestions").hidden = false;
  }

  function renderUser(text) {
    var li = clone("tpl-user");
    li.querySelector(".msg-text").textContent = text;
    return li;
  }

  function renderAnswer(item) {
    var reply = item.reply;
    if (!reply.answered || !reply.entry) {
      var un = clone("tpl-unanswered");
      fillSuggestions(un, reply.suggestions, null);
      return un;
    }
    var entry = reply.entry;
    var li = clone("tpl-answer");
    var link = li.querySelector(".answer-link");
    link.href = entryHref(entry.id);
    link.textContent = entry.question;
    // answer_html is sanitized on the server (server/web/markdown.py); the page's CSP is a second line.
    li.querySelector(".answer").innerHTML = entry.answer_html;
    if (entry.demo) {
      var demo = li.querySelector(".demo-link");
      demo.querySelector("a").href = entryHref(entry.id) + "#demo";
      demo.hidden = false;
    }
    fillSuggestions(li, reply.suggestions, entry.id);
    setupFeedback(li, item);
    return li;
  }

  function setupFeedback(li, item) {
    var box = li.querySelector(".feedback");
    var status = box.querySelector(".feedback-status");
    var buttons = box.querySelectorAll("button.fb");
    if (item.feedback !== undefined) {
      buttons.forEach(function (b) { b.disabled = true; });
      status.textContent = feedbackThanks(item.feedback);
      return;
    }
    buttons.forEach(function (b) {
      b.addEventListener("click", async function () {
        var helpful = b.getAttribute("data-helpful") === "true";
        buttons.forEach(function (x) { x.disabled = true; });
        b.setAttribute("aria-pressed", "true");
        status.textContent = "Sending…";
        var res = await askta.postJSON("/api/feedback", {
          message: item.question, entry_id: item.reply.entry.id, helpful: helpful,
        });
        if (res.ok) {
          item.feedback = helpful;
          save(HISTORY_KEY, history);
          status.textContent = feedbackThanks(helpful);
        } else {
          buttons.forEach(function (x) { x.disabled = false; });
          b.removeAttribute("aria-pressed");
          status.textContent = askta.errorMessage(res);
        }
      });
    });
  }

  function feedbackThanks(helpful) {
    return helpful ? "Thanks for letting us know!"
      : "Thanks. Your question has been sent to the TAs so they can improve this answer.";
  }

  function renderError(message) {
    var li = clone("tpl-error");
    li.querySelector(".error-box").textContent = message;
    return li;
  }

  function renderItem(item) {
    if (item.kind === "user") return renderUser(item.text);
    if (item.kind === "reply") return renderAnswer(item);
    return renderError(item.text);
  }

  function append(item, persist) {
    var node = renderItem(item);
    list.appendChild(node);
    askta.typeset(node);
    if (persist) {
      history.push(item);
      if (history.length > MAX_HISTORY) history = history.slice(-MAX_HISTORY);
      save(HISTORY_KEY, history);
    }
    intro.hidden = true;
    clear.hidden = false;
    return node;
  }

  // Scroll a message to the top of the window, with what follows it below: the
  // question with its reply from the start. Aligning a reply's end instead would leave
  // it under the question box, which stays at the bottom of the window.
  function show(node, instantly) {
    var still = instantly || window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    node.scrollIntoView({ block: "start", behavior: still ? "auto" : "smooth" });
  }

  function updateCount() {
    count.textContent = input.value.length + " / " + maxChars;
  }

  async function ask(text) {
    text = text.trim();
    if (!text) { input.focus(); return; }
    if (text.length > maxChars) {
      show(append({ kind: "error", text: "Your question is over " + maxChars + " characters: please shorten it." }, false));
      return;
    }
    var asked = append({ kind: "user", text: text }, true);
    input.value = "";
    updateCount();
    button.disabled = true;
    form.setAttribute("aria-busy", "true");
    busy.textContent = "Looking for an answer…";
    var res = await askta.postJSON("/api/chat", { message: text, session_id: sessionId });
    busy.textContent = "";
    button.disabled = false;
    form.removeAttribute("aria-busy");
    if (res.ok && res.data) {
      append({ kind: "reply", question: text, reply: res.data }, true);
    } else {
      append({ kind: "error", text: askta.errorMessage(res) }, false);
    }
    show(asked);
    input.focus();
  }

  form.addEventListener("submit", function (ev) { ev.preventDefault(); ask(input.value); });
  input.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      if (!button.disabled) ask(input.value);
    }
  });
  input.addEventListener("input", updateCount);
  document.querySelectorAll("button.example").forEach(function (b) {
    b.addEventListener("click", function () { ask(b.getAttribute("data-question")); });
  });
  clear.addEventListener("click", function () {
    history = [];
    save(HISTORY_KEY, history);
    list.textContent = "";
    intro.hidden = false;
    clear.hidden = true;
    input.focus();
  });

  history.forEach(function (item) { append(item, false); });
  // Back on the page: the last exchange in sight, as it was left.
  var questions = list.querySelectorAll(".msg-user");
  if (questions.length) show(questions[questions.length - 1], true);
  updateCount();
})();
