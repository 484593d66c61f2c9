// lockhook dashboard: live sections over server-sent events, local times, re-send without a page reload.
(function () {
  "use strict";

  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) {
        var options = { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" };
        if (d.getFullYear() !== new Date().getFullYear()) options.year = "numeric";  // never an ambiguous date
        el.title = el.getAttribute("datetime");
        el.textContent = d.toLocaleString([], options);
      }
    });
  }

  function setLive(on, text) {
    var live = document.getElementById("live");
    var label = document.getElementById("live-text");
    if (live) live.classList.toggle("on", on);
    if (label) label.textContent = text;
  }

  var waiting = {};

  function apply(id, markup) {
    var el = document.getElementById(id);
    if (!el) return;
    if (document.activeElement && el.contains(document.activeElement) &&
        document.activeElement.matches("input, select")) {
      waiting[id] = markup; // someone is using the filter form: apply when they leave it
      return;
    }
    var open = Array.prototype.map.call(el.querySelectorAll("details[open][data-key]"), function (d) {
      return d.getAttribute("data-key");
    });
    el.innerHTML = markup;
    localTimes(el);
    el.querySelectorAll("details[data-key]").forEach(function (d) {
      if (open.indexOf(d.getAttribute("data-key")) >= 0) d.open = true;
    });
  }

  document.addEventListener("focusout", function () {
    setTimeout(function () {
      Object.keys(waiting).forEach(function (id) {
        var markup = waiting[id];
        delete waiting[id];
        apply(id, markup);
      });
    }, 0);
  });

  function connect(query) {
    var source = new EventSource("/dashboard/events?" + query);
    source.onopen = function () { setLive(true, "live"); };
    source.onerror = function () { setLive(false, "reconnecting"); };
    source.addEventListener("unavailable", function () { setLive(false, "storage unavailable"); });
    source.addEventListener("update", function (message) {
      var sections = JSON.parse(message.data).sections || {};
      Object.keys(sections).forEach(function (id) { apply(id, sections[id]); });
      setLive(true, "live · " + new Date().toLocaleTimeString());
      document.body.setAttribute("data-updated", String(Date.now()));
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList || !form.classList.contains("resend")) return;
    event.preventDefault();
    var button = form.querySelector("button");
    if (button) { button.disabled = true; button.textContent = "Sending…"; }
    fetch(form.action, { method: "POST", credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.json().then(function (body) { return [response, body]; }); })
      .then(function (pair) {
        var row = form.closest("tr");
        var ok = pair[0].ok && pair[1].resent;
        if (button) button.textContent = ok ? "Re-sent (" + pair[1].status + ")" : (pair[1].status || "failed");
        if (row) row.setAttribute("data-resent", ok ? "yes" : "no");
      })
      .catch(function () { if (button) { button.disabled = false; button.textContent = "Re-send"; } });
  });

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    var query = document.body.getAttribute("data-live");
    if (query !== null && window.EventSource) connect(query);
  });
})();
