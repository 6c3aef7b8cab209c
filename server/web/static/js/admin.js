/* The entry editor: live preview of the answer and the "test demo" button. */
"use strict";

(function () {
  var S = window.asktaStaff;
  var answer = document.getElementById("f-answer");
  var preview = document.getElementById("answer-preview");
  var timer = null;
  var latest = 0;

  async function refreshPreview() {
    var n = ++latest;
    var r = await S.send("POST", "/api/admin/preview", { markdown: answer.value });
    if (n !== latest) return;  // a newer keystroke already asked
    if (!r.ok) { preview.textContent = S.errorText(r); return; }
    preview.innerHTML = r.data.html;  // sanitized on the server (server/web/markdown.py)
    if (window.askta && window.askta.typeset) window.askta.typeset(preview);
  }

  if (answer && preview) {
    answer.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(refreshPreview, 250);
    });
  }

  // The id is checked as it is typed, not only after Save; a form the server sent back
  // with errors puts the keyboard on the first field to fix.
  var form = document.getElementById("entry-form");
  var idInput = document.getElementById("f-id");
  var idError = document.getElementById("id-error");
  var ID_RE = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;

  function idProblem() {
    var v = idInput.value;
    if (!v) return "An id is needed: lowercase words joined by hyphens, like why-relu.";
    if (v.length > 80) return "The id is " + v.length + " characters; at most 80.";
    if (!ID_RE.test(v)) return "Use lowercase words joined by hyphens, like why-relu (no spaces or capitals).";
    return "";
  }

  function showIdProblem(text) {
    idError.textContent = text;
    if (text) { idInput.setAttribute("aria-invalid", "true"); idError.setAttribute("role", "alert"); }
    else { idInput.removeAttribute("aria-invalid"); idError.removeAttribute("role"); }
  }

  if (form && idInput && idError && !idInput.readOnly) {
    idInput.addEventListener("blur", function () { if (idInput.value) showIdProblem(idProblem()); });
    idInput.addEventListener("input", function () {
      if (idInput.hasAttribute("aria-invalid")) showIdProblem(idProblem());
    });
    form.addEventListener("submit", function (ev) {
      var problem = idProblem();
      if (problem) {
        ev.preventDefault();
        showIdProblem(problem);
        idInput.focus();
      }
    });
  }
  if (form) {
    form.noValidate = true;  // our messages, not the browser's bubbles
    var firstInvalid = form.querySelector('[aria-invalid="true"]');
    if (firstInvalid) firstInvalid.focus();
  }

  var testBtn = document.getElementById("test-demo");
  var demoSelect = document.getElementById("f-demo");
  var demoStatus = document.getElementById("demo-status");
  var demoOut = document.getElementById("demo-output");
  var demoImages = document.getElementById("demo-images");

  async function testDemo() {
    var demo = demoSelect.value;
    demoOut.hidden = true;
    demoOut.textContent = "";
    demoImages.textContent = "";
    if (!demo) { demoStatus.textContent = "Pick a demo file first."; return; }
    testBtn.disabled = true;
    demoStatus.dataset.state = "running";
    demoStatus.textContent = "Running " + demo + "…";
    var r = await S.send("POST", "/api/admin/demo/test", { demo: demo, device: "auto" });
    testBtn.disabled = false;
    if (!r.ok) {
      demoStatus.dataset.state = "error";
      demoStatus.textContent = S.errorText(r);
      return;
    }
    var d = r.data;
    demoStatus.dataset.state = d.status === "ok" ? "done" : "error";
    demoStatus.textContent = d.status === "ok"
      ? "Done in " + d.duration_ms + " ms on " + d.device + "."
      : "The demo ended with status " + d.status + (d.exit_code !== null ? " (exit code " + d.exit_code + ")" : "") + ".";
    demoOut.textContent = (d.stdout || "") + (d.stderr ? "\n" + d.stderr : "");
    demoOut.hidden = !demoOut.textContent.trim();
    (d.images || []).forEach(function (img, i) {
      if (img.mime !== "image/png") return;
      var node = S.el("img", { src: "data:image/png;base64," + img.data_base64, alt: "Figure " + (i + 1) + (img.title ? ": " + img.title : " from the demo") });
      demoImages.appendChild(node);
    });
  }

  if (testBtn && demoSelect) testBtn.addEventListener("click", testDemo);
})();
