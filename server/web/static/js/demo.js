/* A demo's Run button: streams stdout/stderr lines and figures into the page as they are
   produced. It reads the Server-Sent Events stream with fetch, so a refusal (busy, rate limit)
   shows its reason. Used by the entry page and by answers in the chat. */
"use strict";

window.asktaDemo = (function () {
 /** Wire a demo's Run button inside `root` (the entry page's #demo section, or a chat answer).
     `root` holds .run-button, .demo-status, .demo-stdout, .demo-images and maybe select.device. */
 function attach(root, entryId) {
  var section = root;
  var runButton = root.querySelector(".run-button");
  var device = root.querySelector("select.device");
  var status = root.querySelector(".demo-status");
  var out = root.querySelector(".demo-stdout");
  var images = root.querySelector(".demo-images");
  var running = false;
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

  function doneText(d) {
    var ms = Math.round(d.duration_ms || 0);
    var on = d.device ? " on " + String(d.device).toUpperCase() : "";
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
    else if (event === "stderr") appendLine(data.text, "stderr");
    else if (event === "image") appendImage(data);
    else if (event === "done") { var t = doneText(data); setStatus(t[0], t[1]); return true; }
    return false;
  }

  function parseBlock(block) {
    var event = "message", data = [];
    block.split("\n").forEach(function (line) {
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    });
    if (!data.length) return null;
    try { return [event, JSON.parse(data.join("\n"))]; } catch (e) { return null; }
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
    setStatus("running", "Running…");
    var dev = device ? device.value : "auto";
    var url = "/api/entries/" + encodeURIComponent(entryId) + "/demo/stream?device=" + encodeURIComponent(dev);
    var finished = false;
    try {
      var resp = await fetch(url, { headers: { Accept: "text/event-stream" } });
      if (!resp.ok) {
        var data = null;
        try { data = await resp.json(); } catch (e) { data = null; }
        setStatus("error", "Could not run the demo: " + askta.errorMessage(
          { status: resp.status, data: data, retryAfter: askta.retryAfter(resp) }));
        out.hidden = true;
        return;
      }
      var reader = resp.body.getReader();
      var decoder = new TextDecoder();
      var buffer = "";
      for (;;) {
        var chunk = await reader.read();
        if (chunk.done) break;
        buffer += decoder.decode(chunk.value, { stream: true }).replace(/\r\n?/g, "\n");
        var parts = buffer.split("\n\n");
        buffer = parts.pop();
        for (var i = 0; i < parts.length; i++) {
          var ev = parseBlock(parts[i]);
          if (ev && handle(ev[0], ev[1])) finished = true;
        }
      }
      if (!finished) setStatus("error", "The connection to the demo was lost before it finished. Press Run to try again.");
    } catch (e) {
      setStatus("error", "The connection to the demo was lost. Press Run to try again.");
    } finally {
      if (waitTimer !== null) { clearInterval(waitTimer); waitTimer = null; }
      running = false;
      runButton.disabled = false;
      section.removeAttribute("aria-busy");
    }
  }

  runButton.addEventListener("click", run);
  return { run: run };
 }

 return { attach: attach };
})();
