/* Client-side sorting and filtering of a table.sortable (the leaderboard).
 *
 * Click a header to sort (again to reverse); cells sort by data-sort when present, so
 * numbers and dates sort as values. The text box filters rows by name or email, the
 * select by pass status. Everything is already on the page: no request is made. */
(function () {
  "use strict";
  var table = document.querySelector("table.sortable");
  if (!table) return;
  var body = table.tBodies[0];

  function key(row, index) {
    var cell = row.cells[index];
    var value = cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim();
    var number = parseFloat(value);
    return value !== "" && !isNaN(number) && /^-?[\d.]+$/.test(value) ? number : value.toLowerCase();
  }

  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
    if (th.dataset.nosort !== undefined) return;
    th.classList.add("sortable-header");
    th.tabIndex = 0;
    function sort() {
      var descending = th.getAttribute("aria-sort") !== "descending";
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (other) {
        other.removeAttribute("aria-sort");
      });
      th.setAttribute("aria-sort", descending ? "descending" : "ascending");
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a, index), y = key(b, index);
        // Empty cells (no score yet) always go last.
        if (x === "" && y !== "") return 1;
        if (y === "" && x !== "") return -1;
        var order = x < y ? -1 : x > y ? 1 : 0;
        return descending ? -order : order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    }
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (event) { if (event.key === "Enter") sort(); });
  });

  var text = document.getElementById("table-filter");
  var pass = document.getElementById("pass-filter");
  var shown = document.getElementById("shown-count");
  function filter() {
    var needle = text ? text.value.trim().toLowerCase() : "";
    var wanted = pass ? pass.value : "";
    var count = 0;
    Array.prototype.forEach.call(body.rows, function (row) {
      var ok = (!needle || (row.dataset.search || "").indexOf(needle) !== -1) &&
        (!wanted || row.dataset.passed === wanted);
      row.hidden = !ok;
      if (ok) count += 1;
    });
    if (shown) shown.textContent = count;
  }
  if (text) text.addEventListener("input", filter);
  if (pass) pass.addEventListener("change", filter);
})();
