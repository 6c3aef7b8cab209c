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
  var problem = document.getElementById("question-problem");
  // No maxlength on the box: a long paste is kept whole and the count says how much to cut.
  var maxChars = parseInt(input.getAttribute("data-max-chars"), 10) || 1000;

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
      var near = reply.near_miss;
      if (near) setupNearMiss(un, item);
      fillSuggestions(un, reply.suggestions, near ? near.id : null);
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
      // The answer's demo runs right here, as the answer's "run the demo below" promises.
      var demo = li.querySelector(".demo-inline");
      demo.querySelector(".demo-page-link").href = entryHref(entry.id) + "#demo";
      demo.hidden = false;
      var status = demo.querySelector(".demo-status");
      demo.querySelector(".run-button").addEventListener("click", function () { status.hidden = false; });
      window.asktaDemo.attach(demo, entry.id);
    }
    fillSuggestions(li, reply.suggestions, entry.id);
    setupFeedback(li, item);
    return li;
  }

  // A vote can be changed: the last click counts, and the pressed button shows it.
  function setupFeedback(li, item) {
    var box = li.querySelector(".feedback");
    verdictButtons(box.querySelectorAll("button.fb"), box.querySelector(".feedback-status"),
      "data-helpful", item, "feedback", feedbackThanks, function (helpful) {
        return askta.postJSON("/api/feedback", {
          message: item.question, entry_id: item.reply.entry.id, helpful: helpful,
        });
      });
  }

  // "This may answer it": the student's yes makes the entry the TAs' first suggestion for
  // their question (one click to link it); a no leaves the question queued as it is.
  function setupNearMiss(node, item) {
    var near = item.reply.near_miss;
    var box = node.querySelector(".near-miss");
    var link = box.querySelector(".near-miss-link");
    link.href = entryHref(near.id);
    link.textContent = near.question;
    box.querySelector(".near-miss-excerpt").textContent = near.excerpt;
    verdictButtons(box.querySelectorAll(".near-miss-actions button"),
      box.querySelector(".near-miss-status"), "data-accepted", item, "nearMiss",
      nearMissThanks, function (accepted) {
        return askta.postJSON("/api/chat/near-miss", {
          review_id: item.reply.review_id, entry_id: near.id, accepted: accepted,
        });
      });
    box.hidden = false;
  }

  // A yes/no pair of buttons on a reply (`attr` holds "true" or "false"): a click sends
  // the verdict, the pressed button and `thanks` show the one that counts, and it is kept
  // with the conversation as item[key].
  function verdictButtons(buttons, status, attr, item, key, thanks, send) {
    function settled(value) {
      buttons.forEach(function (x) {
        x.setAttribute("aria-pressed", String(x.getAttribute(attr) === String(value)));
      });
      status.textContent = thanks(value);
    }
    if (item[key] !== undefined) settled(item[key]);
    buttons.forEach(function (b) {
      b.addEventListener("click", async function () {
        var value = b.getAttribute(attr) === "true";
        if (item[key] === value) return;
        buttons.forEach(function (x) { x.disabled = true; });
        status.textContent = "Sending…";
        var res = await send(value);
        buttons.forEach(function (x) { x.disabled = false; });
        if (res.ok) {
          item[key] = value;
          save(HISTORY_KEY, history);
          settled(value);
        } else {
          status.textContent = askta.errorMessage(res);
        }
      });
    });
  }

  function nearMissThanks(accepted) {
    return accepted ? "Thanks! The TAs will add your wording to that answer, so it is found next time."
      : "Thanks. Your question stays with the TAs.";
  }

  function feedbackThanks(helpful) {
    return helpful ? "Thanks for letting us know!"
      : "Thanks. Your question has been sent to the TAs so they can improve this answer.";
  }

  function renderError(message, retryText) {
    var li = clone("tpl-error");
    li.querySelector(".error-text").textContent = message;
    if (retryText) {
      var retry = li.querySelector(".retry");
      retry.hidden = false;
      retry.addEventListener("click", function () {
        var asked = li.previousElementSibling;  // the question, asked again below
        if (asked && asked.classList.contains("msg-user")) asked.remove();
        li.remove();
        ask(retryText);
      });
    }
    return li;
  }

  function renderItem(item) {
    if (item.kind === "user") return renderUser(item.text);
    if (item.kind === "reply") return renderAnswer(item);
    return renderError(item.text, item.retry);
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
    var n = input.value.length;
    count.textContent = n + " / " + maxChars;
    count.classList.toggle("char-over", n > maxChars);
    if (n > maxChars) {
      say("Your question is " + n + " characters; the limit is " + maxChars +
          ": shorten it by " + (n - maxChars) + ".");
    } else if (!problem.hidden && n > 0) {
      say("");
    }
  }

  function say(text) {
    problem.textContent = text;
    problem.hidden = !text;
    if (text) input.setAttribute("aria-invalid", "true"); else input.removeAttribute("aria-invalid");
  }

  async function ask(text) {
    text = text.trim();
    if (!text) {
      say("Type a question first.");
      input.focus();
      return;
    }
    if (text.length > maxChars) {
      updateCount();
      input.focus();
      return;
    }
    say("");
    var asked = append({ kind: "user", text: text }, true);
    button.disabled = true;
    form.setAttribute("aria-busy", "true");
    busy.textContent = "Looking for an answer…";
    var res = await askta.postJSON("/api/chat", { message: text, session_id: sessionId });
    busy.textContent = "";
    button.disabled = false;
    form.removeAttribute("aria-busy");
    if (res.ok && res.data) {
      append({ kind: "reply", question: text, reply: res.data }, true);
      // The box is emptied only once the question was answered: after an error it stays
      // there to send again, and the error offers a Retry.
      if (input.value.trim() === text) { input.value = ""; updateCount(); }
    } else {
      if (!input.value.trim()) { input.value = text; updateCount(); }
      append({ kind: "error", text: askta.errorMessage(res), retry: text }, false);
      history.pop();  // the question was not answered: a reload should not show it alone
      save(HISTORY_KEY, history);
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
