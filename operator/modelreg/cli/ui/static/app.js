// modelreg ui: sortable tables and live updates (no third-party code; served by the package).
"use strict";

function sortable(table) {
  const headers = table.querySelectorAll("thead th");
  headers.forEach((th, column) => {
    const button = th.querySelector("button");
    if (!button) return;
    button.addEventListener("click", () => {
      const ascending = th.getAttribute("aria-sort") !== "ascending";
      headers.forEach((h) => h.setAttribute("aria-sort", "none"));
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      const numeric = button.dataset.kind === "number";
      const key = (row) => {
        const cell = row.cells[column];
        const value = cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim();
        return numeric ? parseFloat(value) : value;
      };
      const body = table.tBodies[0];
      const rows = Array.from(body.rows);
      rows.sort((a, b) => {
        const x = key(a), y = key(b);
        const order = numeric ? x - y : String(x).localeCompare(String(y));
        return ascending ? order : -order;
      });
      rows.forEach((row) => body.appendChild(row));
    });
  });
}

function wire() {
  document.querySelectorAll("table.sortable").forEach(sortable);
}

let pending = null;
async function refresh() {
  pending = null;
  // Only a page reached by GET is re-fetched (an approval's answer is not repeated).
  if (document.body.dataset.posted) return;
  const answer = await fetch(window.location.href, { credentials: "same-origin" });
  if (!answer.ok) return;
  const page = new DOMParser().parseFromString(await answer.text(), "text/html");
  const fresh = page.getElementById("content");
  const main = document.getElementById("content");
  if (fresh && main && fresh.innerHTML !== main.innerHTML) {
    main.innerHTML = fresh.innerHTML;
    wire();
    document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  wire();
  if (document.querySelector("[role=alert], [role=status]")) {
    // the answer to an approval: keep the message; live updates resume on the next page
    document.body.dataset.posted = "1";
  }
  const events = new EventSource("/events");
  events.addEventListener("change", () => {
    if (pending === null) pending = setTimeout(refresh, 300);
  });
});
