/* "Edit the code": the demo's code in CodeMirror 6 (vendored, loaded on the first click),
   run in the sandbox as the student's version, with its output next to the original's;
   "Back to the original code" and "Show my changes" (a diff against the demo). */
"use strict";

(function () {
  var section = document.getElementById("demo");
  var editButton = document.getElementById("edit-button");
  var panel = document.getElementById("demo-edit");
  if (!section || !editButton || !panel) return;
  var original = JSON.parse(document.getElementById("demo-source").textContent);
  var entryId = section.getAttribute("data-entry-id");
  var device = section.querySelector("select.device");
  var diffButton = panel.querySelector(".diff-button");
  var diffBox = document.getElementById("edit-diff");
  var askForm = document.getElementById("ask-ta");
  var askStatus = askForm.querySelector(".ask-status");
  var view = null;
  var diffView = null;
  var lastRun = null;  // {id, code} of the student's last run
  var pendingRun = null;

  function loadEditor() {
    return new Promise(function (resolve, reject) {
      if (window.AsktaCodeMirror) { resolve(window.AsktaCodeMirror); return; }
      var script = document.createElement("script");
      script.src = "/static/vendor/codemirror/codemirror.min.js";
      script.onload = function () { resolve(window.AsktaCodeMirror); };
      script.onerror = function () { reject(new Error("the editor could not be loaded")); };
      document.head.appendChild(script);
    });
  }

  function code() { return view ? view.state.doc.toString() : original; }

  function setCode(text) {
    view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
  }

  function showDiff(cm) {
    if (diffView) diffView.destroy();
    diffBox.textContent = "";
    diffView = new cm.EditorView({
      parent: diffBox,
      doc: code(),
      extensions: [cm.basicSetup, cm.python(), cm.EditorState.readOnly.of(true),
                   cm.EditorView.editable.of(false),
                   cm.unifiedMergeView({ original: original, mergeControls: false })]
    });
  }

  async function open() {
    var cm;
    try {
      cm = await loadEditor();
    } catch (e) {
      editButton.textContent = "The editor could not be loaded";
      return;
    }
    panel.hidden = false;
    document.getElementById("original-title").hidden = false;
    section.classList.add("comparing");
    editButton.setAttribute("aria-expanded", "true");
    if (!view) {
      view = new cm.EditorView({
        parent: document.getElementById("editor"),
        doc: original,
        extensions: [cm.basicSetup, cm.python(), cm.keymap.of([cm.indentWithTab]),
                     cm.EditorView.contentAttributes.of({ "aria-label": "Code of your version",
                                                          "aria-describedby": "editor-note" })]
      });
      window.asktaDemo.attach(panel, entryId, {
        code: code,
        device: function () { return device ? device.value : "auto"; },
        onRun: function (id) { pendingRun = { id: id, code: code() }; },
        onDone: function () {
          lastRun = pendingRun;
          askForm.hidden = false;
          askStatus.textContent = "";
        }
      });
      askForm.addEventListener("submit", async function (e) {
        e.preventDefault();
        var question = document.getElementById("ask-question").value.trim();
        if (!question || !lastRun) return;
        var resp = await fetch("/api/runs/" + encodeURIComponent(lastRun.id) + "/ask", {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify({ question: question, code: lastRun.code })
        });
        var data = null;
        try { data = await resp.json(); } catch (err) { data = null; }
        askStatus.textContent = resp.ok
          ? "Sent: a TA will see your question with your code and its output."
          : "Could not send it: " + askta.errorMessage({ status: resp.status, data: data,
                                                         retryAfter: askta.retryAfter(resp) });
      });
      panel.querySelector(".reset-code").addEventListener("click", function () {
        setCode(original);
        if (!diffBox.hidden) showDiff(cm);
        view.focus();
      });
      diffButton.addEventListener("click", function () {
        var show = diffBox.hidden;
        diffBox.hidden = !show;
        diffButton.setAttribute("aria-expanded", String(show));
        diffButton.textContent = show ? "Hide my changes" : "Show my changes";
        if (show) showDiff(cm);
      });
    }
    view.focus();
  }

  editButton.addEventListener("click", function () {
    if (panel.hidden) { open(); return; }
    panel.hidden = true;
    editButton.setAttribute("aria-expanded", "false");
    section.classList.remove("comparing");
    document.getElementById("original-title").hidden = true;
  });
})();
