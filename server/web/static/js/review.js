/* The review queue: load the groups, then link, draft or dismiss each one. */
"use strict";

(function () {
  var S = window.asktaStaff;
  var el = S.el;
  var list = document.getElementById("review-groups");
  var status = document.getElementById("review-status");
  var empty = document.getElementById("review-empty");
  var dialog = document.getElementById("draft-dialog");
  var draftForm = document.getElementById("draft-form");
  var draftError = document.getElementById("draft-error");
  var draftFor = null;   // {reviewId, groupNode, updatesExisting}

  function ago(iso) {
    var s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
    if (s < 90) return "just now";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    if (s < 129600) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " days ago";
  }

  function reasonLabel(r) {
    return { unanswered: "not answered", not_helpful: "answer not helpful", seed: "needs an answer",
             demo_question: "about a changed demo" }[r] || r;
  }

  function say(text) { status.textContent = text; }

  // The group leaves the list; what happened stays in the status line at the top, and the
  // keyboard goes on to the next group (or the "queue is empty" note), never to <body>.
  function afterResolved(node, message) {
    var next = node.nextElementSibling || node.previousElementSibling;
    node.remove();
    say(message);
    if (next) {
      next.querySelector("h2").focus();
    } else {
      empty.hidden = false;
      empty.focus();
    }
  }

  async function link(node, group, entryId) {
    entryId = (entryId || "").trim();
    var result = node.querySelector(".group-result");
    if (!entryId) { result.textContent = "Pick the entry that answers this question."; return; }
    result.textContent = "Linking…";
    var r = await S.send("POST", "/api/review/" + encodeURIComponent(group.items[0].id) + "/link",
                         { entry_id: entryId, group: true });
    if (!r.ok) { result.textContent = S.errorText(r); return; }
    var n = r.data.added.length;
    afterResolved(node, "Linked to " + r.data.entry.id + ": " + n + " new phrasing" + (n === 1 ? "" : "s") +
      " added" + (r.data.skipped.length ? " (" + r.data.skipped.length + " already there)" : "") +
      ". Students asking this now get that answer.");
  }

  async function dismiss(node, group, reason) {
    var result = node.querySelector(".group-result");
    result.textContent = "Dismissing…";
    var r = await S.send("POST", "/api/review/" + encodeURIComponent(group.items[0].id) + "/dismiss",
                         { reason: reason, group: true });
    if (!r.ok) { result.textContent = S.errorText(r); return; }
    afterResolved(node, "Dismissed " + r.data.dismissed.length + " question(s) as " + r.data.reason + ".");
  }

  async function openDraft(node, group) {
    var result = node.querySelector(".group-result");
    var r = await S.send("GET", "/api/review/" + encodeURIComponent(group.items[0].id));
    if (!r.ok) { result.textContent = S.errorText(r); return; }
    var d = r.data.draft;
    draftFor = { reviewId: group.items[0].id, node: node, updatesExisting: d.updates_existing };
    draftForm.elements.id.value = d.id;
    draftForm.elements.id.readOnly = !!d.updates_existing;
    draftForm.elements.question.value = d.question;
    draftForm.elements.alternate_questions.value = (d.alternate_questions || []).join("\n");
    draftForm.elements.answer.value = d.answer || "";
    draftForm.elements.tags.value = (d.tags || []).join(", ");
    var others = (d.alternate_questions || []).length;
    document.getElementById("draft-note").textContent = d.updates_existing
      ? "This question already has an entry waiting for its answer (" + d.id + "): write the answer."
      : "A new entry from this group" + (others ? "; its " + others + " other phrasing" +
        (others === 1 ? " is" : "s are") + " prefilled." : ". Check the id: it is made from the question.");
    clearDraftErrors();
    if (dialog.showModal) dialog.showModal(); else dialog.setAttribute("open", "");
    draftForm.elements[d.updates_existing ? "answer" : "id"].focus();
  }

  function clearDraftErrors() {
    draftError.hidden = true;
    draftForm.querySelectorAll(".field-error").forEach(function (p) { p.textContent = ""; });
    draftForm.querySelectorAll("[aria-invalid]").forEach(function (c) { c.removeAttribute("aria-invalid"); });
  }

  async function saveDraft(ev) {
    ev.preventDefault();
    if (!draftFor) return;
    clearDraftErrors();
    var f = draftForm.elements;
    var body = {
      id: f.id.value.trim(), question: f.question.value, answer: f.answer.value,
      alternate_questions: f.alternate_questions.value.split("\n").filter(function (s) { return s.trim(); }),
      tags: f.tags.value.split(/[,\s]+/).filter(Boolean), status: f.status.value,
    };
    var r = await S.send("POST", "/api/review/" + encodeURIComponent(draftFor.reviewId) + "/draft", body);
    if (!r.ok) {
      var fields = (r.data && r.data.error && r.data.error.fields) || {};
      var shown = false;
      Object.keys(fields).forEach(function (name) {
        var p = draftForm.querySelector('.field-error[data-field="' + name + '"]');
        if (p) {
          p.textContent = fields[name];
          var input = f[name];
          if (input) input.setAttribute("aria-invalid", "true");
          shown = true;
        }
      });
      draftError.textContent = shown ? "Not saved: fix the fields marked below." : S.errorText(r);
      draftError.hidden = false;
      return;
    }
    dialog.close ? dialog.close() : dialog.removeAttribute("open");
    var e = r.data.entry;
    afterResolved(draftFor.node, "Saved " + e.id + " as " + e.status +
      (e.status === "published" ? ": it is answered from now on." : ": an instructor will review it."));
    draftFor = null;
  }

  function renderGroup(group) {
    var li = el("li", { class: "review-group", id: "group-" + group.key, "data-review-id": group.items[0].id });
    var title = el("h2", { id: "group-title-" + group.key, tabindex: "-1" }, group.question);
    li.setAttribute("aria-labelledby", title.id);
    li.appendChild(title);

    var meta = el("p", { class: "group-meta" });
    var asked = group.asked === undefined ? group.count : group.asked;
    meta.appendChild(el("span", { class: "count" }, asked === 0 ? "no student asked yet"
      : asked + (asked === 1 ? " student asked" : " students asked")));
    var when = el("span", { class: "muted", title: group.first_asked + " – " + group.last_asked },
                  "last " + ago(group.last_asked) + (group.count > 1 ? ", first " + ago(group.first_asked) : ""));
    meta.appendChild(when);
    group.reasons.forEach(function (r) { meta.appendChild(el("span", { class: "reason reason-" + r }, reasonLabel(r))); });
    if (group.entry_id) meta.appendChild(el("span", { class: "muted" }, "entry: " + group.entry_id));
    li.appendChild(meta);

    var texts = [];
    group.items.forEach(function (i) { if (texts.indexOf(i.text) < 0) texts.push(i.text); });
    if (texts.length > 1) {
      var ul = el("ul", { class: "group-texts", "aria-label": "How they asked" });
      texts.forEach(function (t) { ul.appendChild(el("li", {}, t)); });
      li.appendChild(ul);
    }

    // a question about a demo the student changed: their code and what it printed
    group.items.forEach(function (i) {
      var a = i.attachment;
      if (!a) return;
      var box = el("details", { class: "attachment" });
      box.appendChild(el("summary", {}, "The student's " + (a.code ? "code" : "run") +
                         " and its output (" + a.status + (a.exit_code ? ", exit " + a.exit_code : "") + ")"));
      if (a.code) box.appendChild(el("pre", { class: "attached-code", tabindex: "0", "aria-label": "The student's code" }, a.code));
      box.appendChild(el("pre", { class: "attached-output", tabindex: "0", "aria-label": "What it printed" },
                         (a.stdout || "") + (a.stderr ? "\n" + a.stderr : "")));
      li.appendChild(box);
    });

    if (group.suggestions.length) {
      li.appendChild(el("p", { class: "muted" }, "Closest entries:"));
      var ol = el("ol", { class: "group-suggestions" });
      group.suggestions.forEach(function (s) {
        var item = el("li");
        item.appendChild(el("a", { href: "/entries/" + encodeURIComponent(s.id), target: "_blank" }, s.question));
        if (s.confirmed) item.appendChild(el("span", { class: "reason reason-confirmed" }, " a student said this answers it "));
        // scores include a word-match bonus and can pass 1: shown as a share of a perfect match
        var match = Math.round(Math.min(1, Math.max(0, Number(s.score))) * 100);
        item.appendChild(el("span", { class: "muted", title: "similarity score " + Number(s.score).toFixed(2) },
                            " " + match + "% match "));
        var b = el("button", { type: "button", class: "button small link-suggestion", "data-entry": s.id }, "Link here");
        b.setAttribute("aria-label", "Link to " + s.question);
        b.addEventListener("click", function () { link(li, group, s.id); });
        item.appendChild(b);
        ol.appendChild(item);
      });
      li.appendChild(ol);
    }

    var actions = el("div", { class: "group-actions" });
    var linkBox = el("div", { class: "inline" });
    var label = el("label", {}, "Entry id");
    var input = el("input", { type: "text", list: "entry-options", class: "link-entry", autocomplete: "off",
                              placeholder: "e.g. why-nonlinearities" });
    label.appendChild(input);
    linkBox.appendChild(label);
    var linkBtn = el("button", { type: "button", class: "button primary link-button" }, "Link");
    linkBtn.addEventListener("click", function () { link(li, group, input.value); });
    input.addEventListener("keydown", function (ev) { if (ev.key === "Enter") { ev.preventDefault(); linkBtn.click(); } });
    linkBox.appendChild(linkBtn);
    actions.appendChild(linkBox);

    var draftBtn = el("button", { type: "button", class: "button draft-button" }, "Draft new entry");
    draftBtn.addEventListener("click", function () { openDraft(li, group); });
    actions.appendChild(draftBtn);

    var dismissBox = el("div", { class: "inline" });
    var dl = el("label", {}, "Dismiss as");
    var select = el("select", { class: "dismiss-reason" });
    select.innerHTML = document.getElementById("dismiss-reasons").innerHTML;
    dl.appendChild(select);
    dismissBox.appendChild(dl);
    var dismissBtn = el("button", { type: "button", class: "button dismiss-button" }, "Dismiss");
    dismissBtn.addEventListener("click", function () { dismiss(li, group, select.value); });
    dismissBox.appendChild(dismissBtn);
    actions.appendChild(dismissBox);
    li.appendChild(actions);
    li.appendChild(el("p", { class: "group-result", role: "status", "aria-live": "polite" }));
    return li;
  }

  async function load() {
    var r = await S.send("GET", "/api/review");
    if (!r.ok) { say(S.errorText(r)); return; }
    list.textContent = "";
    r.data.groups.forEach(function (g) { list.appendChild(renderGroup(g)); });
    empty.hidden = r.data.groups.length > 0;
    say(r.data.open + " question(s) in " + r.data.groups.length + " group(s).");
    if (location.hash) {
      var target = document.querySelector(location.hash);
      if (target) target.scrollIntoView();
    }
  }

  draftForm.addEventListener("submit", saveDraft);
  document.getElementById("draft-cancel").addEventListener("click", function () {
    dialog.close ? dialog.close() : dialog.removeAttribute("open");
  });
  load();
})();
