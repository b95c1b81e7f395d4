// The ops page's only script, served by `livestreams serve` itself (no build, no CDN; the
// Content-Security-Policy allows scripts from this origin only).
// - Parts marked data-live are fetched again every data-refresh seconds and swapped in place:
//   no reload, the scroll stays, a part holding the focus waits for the next round.
// - "Pause live updates" stops that until pressed again (remembered for the tab).
// - "/" focuses the search box, as on many sites, unless typing in a field already.
"use strict";
(function () {
  const PAUSED = "livestreams-ops-paused";

  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target instanceof HTMLElement && target.closest("input, textarea, select, [contenteditable]")) return;
    const box = document.getElementById("q");
    if (box) {
      event.preventDefault();
      box.focus();
      box.select();
    }
  });

  const seconds = Number(document.body.dataset.refresh || 0);
  if (!seconds || !document.querySelector("[data-live]")) return;
  const toggle = document.querySelector("[data-live-toggle]");
  const state = document.querySelector("[data-live-state]");
  const stamp = document.querySelector("[data-live-stamp]");
  let paused = sessionStorage.getItem(PAUSED) === "1";
  let running = false;
  let stopped = false;

  function show() {
    if (!toggle) return;
    toggle.hidden = false;
    toggle.setAttribute("aria-pressed", String(paused));
    toggle.textContent = paused ? "Resume live updates" : "Pause live updates";
    if (state) state.textContent = paused ? "Live updates paused." : "";
  }

  async function refresh() {
    if (paused || stopped || running || document.hidden) return;
    running = true;
    try {
      const answer = await fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (answer.redirected || !answer.ok) {
        // Signed out, or the session ended: say so instead of swapping in the sign-in page.
        stopped = true;
        if (state) state.textContent = "Live updates stopped (" + (answer.redirected ? "sign in again" : "HTTP " + answer.status) + "); reload the page.";
        return;
      }
      const fresh = new DOMParser().parseFromString(await answer.text(), "text/html");
      document.querySelectorAll("[data-live]").forEach(function (part) {
        const next = part.id && fresh.getElementById(part.id);
        if (next && !part.contains(document.activeElement)) part.replaceWith(document.adoptNode(next));
      });
      const freshStamp = fresh.querySelector("[data-live-stamp]");
      if (stamp && freshStamp) stamp.textContent = freshStamp.textContent;
    } catch (error) {
      if (state) state.textContent = "Live update failed; trying again in " + seconds + " s.";
    } finally {
      running = false;
    }
  }

  if (toggle) {
    toggle.addEventListener("click", function () {
      paused = !paused;
      sessionStorage.setItem(PAUSED, paused ? "1" : "0");
      show();
      if (!paused) refresh();
    });
  }
  show();
  setInterval(refresh, seconds * 1000);
})();
