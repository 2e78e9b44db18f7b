/* Live progress without reloading: poll each in-flight submission's status.json.
 *
 * On a result page (#progress) the steps, badge and queue position follow the run; when
 * it ends the server-rendered result fragment (scores and SVG charts) replaces #result.
 * In a submission list each row with data-status-url updates its own cells. Polling
 * slows down while the tab is hidden and stops at a terminal status. */
(function () {
  "use strict";
  var INTERVAL_MS = 2000;
  var HIDDEN_INTERVAL_MS = 10000;

  function poll(url, onUpdate) {
    var stopped = false;
    function tick() {
      fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (s) {
          if (!s) return;
          onUpdate(s);
          if (s.terminal) stopped = true;
        })
        .catch(function () { /* a network blip: try again next tick */ })
        .finally(function () {
          if (!stopped) setTimeout(tick, document.hidden ? HIDDEN_INTERVAL_MS : INTERVAL_MS);
        });
    }
    setTimeout(tick, INTERVAL_MS);
  }

  function setBadge(el, s) {
    if (!el) return;
    el.className = "badge " + s.status;
    el.textContent = s.status_label;
  }

  function renderSteps(list, steps) {
    if (!list) return;
    list.innerHTML = "";
    steps.forEach(function (step) {
      var li = document.createElement("li");
      li.className = "step " + step.state;
      li.dataset.key = step.key;
      li.textContent = step.label;
      list.appendChild(li);
    });
  }

  var box = document.getElementById("progress");
  if (box && box.dataset.terminal !== "1") {
    poll(box.dataset.statusUrl, function (s) {
      setBadge(box.querySelector("[data-role=badge]"), s);
      renderSteps(box.querySelector("[data-role=steps]"), s.steps);
      var queue = box.querySelector("[data-role=queue]");
      if (queue) queue.textContent = s.queue_label;
      if (!s.terminal) return;
      box.dataset.terminal = "1";
      var waiting = box.querySelector("[data-role=waiting]");
      if (waiting) waiting.remove();
      fetch(box.dataset.resultUrl, {credentials: "same-origin"})
        .then(function (r) { return r.text(); })
        .then(function (html) { document.getElementById("result").innerHTML = html; });
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll("tr[data-status-url]"), function (row) {
    poll(row.dataset.statusUrl, function (s) {
      setBadge(row.querySelector("[data-role=badge]"), s);
      var phase = row.querySelector("[data-role=phase]");
      if (phase) {
        phase.textContent = s.terminal ? "" : s.queue_label || (s.phase !== s.status ? s.phase_label : "");
      }
      var acc = row.querySelector("[data-role=accuracy]");
      if (acc && s.accuracy !== null) {
        acc.textContent = s.accuracy.toFixed(4) + (s.passed ? " ✓" : "");
        if (s.score_note) {
          var note = document.createElement("span");
          note.className = "badge self-reported";
          note.textContent = s.score_note;
          acc.append(" ", note);
        }
      }
    });
  });
})();
