// clbench leaderboard site: sortable tables, the row filter, curve toggles.
// Plain JavaScript, no library, no network: the site works from file://.
"use strict";

// Sorting: a header's first click sorts ascending, the next descending. Cells sort by
// their data-value (numbers numerically); rows without a value stay last either way.
function sortTable(table, th) {
  const column = [...th.parentNode.cells].indexOf(th);
  const ascending = th.getAttribute("aria-sort") !== "ascending";
  for (const other of th.parentNode.cells) other.removeAttribute("aria-sort");
  th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  const numeric = th.dataset.type === "number";
  const body = table.tBodies[0];
  const key = (row) => row.cells[column].dataset.value;
  const rows = [...body.rows].sort((a, b) => {
    const x = key(a), y = key(b);
    if (x === "" || y === "") return (x === "") - (y === "");
    const order = numeric ? Number(x) - Number(y) : x.localeCompare(y);
    return ascending ? order : -order;
  });
  body.append(...rows);
}

// Filtering: a row stays when its text contains every word typed.
function filterTable(table, query, counter) {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  let shown = 0;
  for (const row of table.tBodies[0].rows) {
    row.hidden = !words.every((word) => row.dataset.search.includes(word));
    shown += row.hidden ? 0 : 1;
  }
  if (counter) counter.textContent = `${shown} of ${table.tBodies[0].rows.length} rows`;
}

function showCurve(box) {
  const curve = document.getElementById(box.dataset.curve);
  if (curve) curve.style.display = box.checked ? "" : "none";
}

document.addEventListener("DOMContentLoaded", () => {
  for (const table of document.querySelectorAll("table.sortable")) {
    for (const th of table.tHead.rows[0].cells) {
      th.querySelector("button").addEventListener("click", () => sortTable(table, th));
    }
  }
  for (const input of document.querySelectorAll("input[data-filter]")) {
    const table = document.getElementById(input.dataset.filter);
    const counter = document.getElementById("shown");
    input.addEventListener("input", () => filterTable(table, input.value, counter));
    filterTable(table, input.value, counter); // a value the browser restored
  }
  const boxes = [...document.querySelectorAll("input[data-curve]")];
  for (const box of boxes) box.addEventListener("change", () => showCurve(box));
  for (const button of document.querySelectorAll("button[data-curves]")) {
    button.addEventListener("click", () => {
      for (const box of boxes) {
        box.checked = button.dataset.curves === "all";
        showCurve(box);
      }
    });
  }
});
