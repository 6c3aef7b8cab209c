/* A demo's Run button: starts a run (POST /api/runs, so a refusal such as busy or a rate
   limit shows its reason), then follows its Server-Sent Events with EventSource, which
   reconnects by itself after a dropped connection and resumes after the last event it saw
   (Last-Event-ID): each line and figure appears once. Used by the entry page and by
   answers in the chat. */
"use strict";

window.asktaDemo = (function () {
 /** Wire a demo's Run button inside `root` (the entry page's #demo section, or a chat answer).
     `root` holds .run-button, .demo-status, .demo-stdout, .demo-images and maybe select.device. */
 function attach(root, entryId, options) {
  options = options || {};
  var section = root;
  var runButton = root.querySelector(".run-button");
  var device = root.querySelector("select.device");
  var status = root.querySelector(".demo-status");
  var out = root.querySelector(".demo-stdout");
  var images = root.querySelector(".demo-images");
  var paramBox = root.querySelector(".demo-params");
  var running = false;
  var stderrTail = "";
  var waitTimer = null;
  var waitedMs = 0;

  function setStatus(state, text) {
    status.setAttribute("data-state", state);
    status.textContent = text;
  }

  function appendLine(text, cls) {
    var line = text.endsWith("\n") ? text : text + "\n";
    if (cls) {
      var span = document.createElement("span");
      span.className = cls;
      span.textContent = line;
      out.appendChild(span);
    } else {
      out.appendChild(document.createTextNode(line));
    }
    out.scrollTop = out.scrollHeight;
  }

  function appendImage(data) {
    if (data.mime !== "image/png" || typeof data.data_base64 !== "string") return;
    var fig = document.createElement("figure");
    var img = document.createElement("img");
    var n = images.children.length + 1;
    // the figure's titles and axis labels, read from the PNG by the server
    img.alt = "Figure " + n + (data.title ? ": " + data.title : " drawn by the demo");
    img.src = "data:image/png;base64," + data.data_base64;
    fig.appendChild(img);
    images.appendChild(fig);
  }

  function waitedText() {
    return waitedMs >= 1000 ? ", after waiting " + Math.round(waitedMs / 1000) + " s for a free runner" : "";
  }

  // Which of the sandbox's limits stopped a run, from what it wrote to stderr: the
  // sandbox's own notice ("memory limit of 4096 MB reached"), or the error a program
  // gets when it may not start another process.
  function limitHit() {
    var notice = stderrTail.match(/([A-Za-z ]*limit of [^:\n]*(reached|[^\n]*))/);
    if (notice) return notice[1].trim();
    if (/BlockingIOError|Resource temporarily unavailable|can't start new thread/.test(stderrTail)) {
      return "the limit on processes and threads";
    }
    return null;
  }

  function doneText(d) {
    var ms = Math.round(d.duration_ms || 0);
    var on = d.device ? " on " + String(d.device).toUpperCase() : "";
    var limit = limitHit();
    if (limit && d.status !== "ok") return [d.status === "timeout" ? "timeout" : "error", "Stopped by the sandbox after " + ms + " ms: " + limit + "."];
    if (d.status === "ok") return ["done", "Done in " + ms + " ms" + on + waitedText() + "."];
    if (d.status === "timeout") return ["timeout", "Timed out after " + (ms / 1000).toFixed(1) + " s: the demo ran longer than allowed."];
    if (d.status === "killed") return ["error", "Stopped after " + ms + " ms: the demo went over a limit (memory, output or processes)."];
    return ["error", "Error: the demo exited with code " + d.exit_code + " after " + ms + " ms. The traceback is in the output above."];
  }

  // No runner was free: count the wait until the first output arrives.
  function startWaiting() {
    var since = Date.now();
    var tick = function () {
      waitedMs = Date.now() - since;
      setStatus("waiting", "Waiting for a free runner… " + Math.floor(waitedMs / 1000) + " s");
    };
    tick();
    waitTimer = setInterval(tick, 1000);
  }

  function stopWaiting() {
    if (waitTimer === null) return;
    clearInterval(waitTimer);
    waitTimer = null;
    setStatus("running", "Running…");
  }

  function handle(event, data) {
    if (event === "waiting") { startWaiting(); return false; }
    stopWaiting();
    if (event === "stdout") appendLine(data.text, null);
    else if (event === "stderr") { appendLine(data.text, "stderr"); stderrTail = (stderrTail + data.text).slice(-4000); }
    else if (event === "image") appendImage(data);
    else if (event === "done") {
      var t = doneText(data);
      setStatus(t[0], t[1]);
      if (options.onDone) options.onDone(data);
      return true;
    }
    return false;
  }

  // Follow a run's events until `done`; resolves true when the run finished.
  function follow(url) {
    return new Promise(function (resolve) {
      var source = new EventSource(url);
      var finished = false;
      var reconnecting = false;
      ["waiting", "stdout", "stderr", "image", "done"].forEach(function (name) {
        source.addEventListener(name, function (e) {
          var data;
          try { data = JSON.parse(e.data); } catch (err) { return; }
          if (reconnecting) { reconnecting = false; setStatus("running", "Running…"); }
          if (handle(name, data)) {
            finished = true;
            source.close();
            resolve(true);
          }
        });
      });
      source.onerror = function () {
        if (finished) return;
        if (source.readyState === EventSource.CLOSED) {  // refused: the run is gone
          source.close();
          resolve(false);
          return;
        }
        // the browser reconnects by itself and resumes after the last event it saw
        reconnecting = true;
        setStatus("running", "Connection lost; reconnecting…");
      };
    });
  }

  async function run() {
    if (running) return;
    running = true;
    runButton.disabled = true;
    section.setAttribute("aria-busy", "true");
    out.textContent = "";
    out.hidden = false;
    images.textContent = "";
    waitedMs = 0;
    stderrTail = "";
    setStatus("running", "Running…");
    var dev = device ? device.value : (options.device ? options.device() : "auto");
    try {
      var resp = await fetch("/api/runs", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(Object.assign({ entry_id: entryId, device: dev },
                                            changedParams() ? { params: changedParams() } : {},
                                            options.code ? { code: options.code() } : {}))
      });
      var data = null;
      try { data = await resp.json(); } catch (e) { data = null; }
      if (resp.status !== 202 || !data || typeof data.events_url !== "string") {
        setStatus("error", "Could not run the demo: " + askta.errorMessage(
          { status: resp.status, data: data, retryAfter: askta.retryAfter(resp) }));
        out.hidden = true;
        return;
      }
      if (options.onRun) options.onRun(data.id);
      if (!(await follow(data.events_url))) {
        setStatus("error", "The connection to the demo was lost before it finished. Press Run to try again.");
      }
    } catch (e) {
      setStatus("error", "The connection to the demo was lost. Press Run to try again.");
    } finally {
      if (waitTimer !== null) { clearInterval(waitTimer); waitTimer = null; }
      running = false;
      runButton.disabled = false;
      section.removeAttribute("aria-busy");
    }
  }

  // The declared parameters: {name: value} of those moved away from their default.
  function paramValue(el, type) {
    if (type === "bool") return el.checked;
    if (type === "choice") return el.value;
    var n = Number(el.value);
    return type === "int" ? Math.round(n) : n;
  }

  function changedParams() {
    if (!paramBox) return null;
    var out = {};
    var any = false;
    paramBox.querySelectorAll(".param").forEach(function (box) {
      var type = box.getAttribute("data-type");
      var el = box.querySelector("input, select");
      var value = paramValue(el, type);
      if (value !== JSON.parse(box.getAttribute("data-default"))) {
        out[box.getAttribute("data-name")] = value;
        any = true;
      }
    });
    return any ? out : null;
  }

  if (paramBox) {
    paramBox.querySelectorAll("input[type=range]").forEach(function (el) {
      var shown = paramBox.querySelector("output[for='" + el.id + "']");
      el.addEventListener("input", function () { shown.textContent = el.value; });
    });
    paramBox.querySelector(".reset-params").addEventListener("click", function () {
      paramBox.querySelectorAll(".param").forEach(function (box) {
        var value = JSON.parse(box.getAttribute("data-default"));
        var el = box.querySelector("input, select");
        if (box.getAttribute("data-type") === "bool") el.checked = value;
        else el.value = String(value);
        var shown = box.querySelector("output");
        if (shown) shown.textContent = String(value);
      });
    });
  }

  runButton.addEventListener("click", run);
  return { run: run };
 }

 return { attach: attach };
})();
