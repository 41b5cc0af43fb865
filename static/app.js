// Live progress for /analyses/{id}: follow the job's event stream (Server-Sent Events, pushed by
// whichever process runs the job) and reload the page once the job is final, so the server
// renders the results. Without EventSource, or when the stream breaks (a proxy that cuts it, a
// restarting server), poll the status endpoint instead (cheaply, with ETag) every 500 ms.
(function () {
  "use strict";
  var card = document.getElementById("job");
  if (!card || card.getAttribute("data-final") === "true") return;
  var id = card.getAttribute("data-job-id");
  var bar = document.getElementById("progress");
  var label = document.getElementById("progress-label");
  var badge = document.getElementById("status");
  var etag = null;
  var finals = { succeeded: true, failed: true, cancelled: true };

  function show(job) {
    var pct = 0;
    if (job.progress && job.progress.total > 0) {
      pct = Math.min(100, Math.round((100 * job.progress.done) / job.progress.total));
    }
    if (bar) { bar.value = pct; bar.textContent = pct + "%"; }
    if (label) {
      label.textContent = job.status === "queued" ? "Waiting for a worker…" : "Analysing… " + pct + "%";
    }
    if (badge) {
      badge.textContent = job.status;
      badge.className = "status status-" + job.status;
    }
  }

  function tick() {
    var headers = { Accept: "application/json" };
    if (etag) headers["If-None-Match"] = etag;
    fetch("/api/jobs/" + encodeURIComponent(id), { headers: headers, cache: "no-store" })
      .then(function (r) {
        if (r.status === 304) return null;
        if (!r.ok) throw new Error("status " + r.status);
        etag = r.headers.get("ETag");
        return r.json();
      })
      .then(function (job) {
        if (job) {
          show(job);
          if (finals[job.status]) { window.location.reload(); return; }
        }
        setTimeout(tick, 500);
      })
      .catch(function () { setTimeout(tick, 2000); });
  }
  function follow() {
    if (!window.EventSource) { setTimeout(tick, 300); return; }
    var events = new EventSource("/api/jobs/" + encodeURIComponent(id) + "/events");
    events.addEventListener("status", function (e) {
      var job = JSON.parse(e.data);
      // Lets the browser test see that the page was fed by the stream, not by polling.
      try { sessionStorage.setItem("sentiq-live-" + id, "events"); } catch (ignored) {}
      show(job);
      if (finals[job.status]) { events.close(); window.location.reload(); }
    });
    events.onerror = function () {
      // EventSource would reconnect by itself; polling is the simpler, surer fallback.
      events.close();
      setTimeout(tick, 500);
    };
  }
  follow();
})();
