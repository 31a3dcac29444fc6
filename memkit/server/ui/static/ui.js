// memkit inspector: keyboard navigation only (pages work without it).
(function () {
  "use strict";
  var pendingG = false, sel = -1;
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("[data-row]")); }
  function typing(e) {
    var t = e.target; return t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
  }
  function select(i) {
    var r = rows(); if (!r.length) return;
    sel = Math.max(0, Math.min(r.length - 1, i));
    r.forEach(function (el, j) { el.classList.toggle("sel", j === sel); });
    var link = r[sel].querySelector("[data-rowlink]") || r[sel].querySelector("a");
    if (link) link.focus(); r[sel].scrollIntoView({block: "nearest"});
  }
  function go(sel) { var a = document.querySelector(sel); if (a) window.location.href = a.href; }
  document.addEventListener("keydown", function (e) {
    var help = document.getElementById("help");
    if (e.key === "Escape") { if (help) help.hidden = true; if (typing(e)) e.target.blur(); return; }
    if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
    if (pendingG) {
      pendingG = false;
      var dest = {b: "/ui/browse", r: "/ui/read", m: "/ui/manage", a: "/ui/audit",
                  e: "/ui/evals"}[e.key];
      if (dest) { e.preventDefault(); window.location.href = dest; }
      return;
    }
    switch (e.key) {
      case "g": pendingG = true; setTimeout(function () { pendingG = false; }, 1200); break;
      case "/": var q = document.querySelector("[data-search]");
        if (q) { e.preventDefault(); q.focus(); q.select(); } break;
      case "j": e.preventDefault(); select(sel + 1); break;
      case "k": e.preventDefault(); select(sel - 1); break;
      case "n": go("[data-next]"); break;
      case "p": go("[data-prev]"); break;
      case "?": if (help) help.hidden = !help.hidden; break;
    }
  });
})();
