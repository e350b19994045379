// Puzzle pages: refusals shown where they happened, and on the list, keyboard review
// (j/k select, Enter/o open, a/r/f approve/reject/flag, ? help). Every page works without it.
(function () {
  "use strict";
  // Elements are looked up when needed: htmx's history restore replaces the whole body.
  function byId(id) { return document.getElementById(id); }

  function show(box, text) {
    if (!box) return;
    box.textContent = text;
    box.hidden = !text;
  }

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (e) {
      return "";
    }
  }

  // The server's reason is plain text; anything else (an error page) gets a short sentence.
  function reasonOf(status, contentType, text) {
    if (text && (contentType || "").indexOf("text/plain") === 0) return text;
    if (status === 403) return "Not allowed (403): reload the page and sign in again if this persists.";
    return "The request failed (" + status + ").";
  }

  function alertFor(elt) {
    var holder = elt && elt.closest ? elt.closest("[data-alert]") : null;
    return (holder && document.querySelector(holder.dataset.alert)) || byId("page-alert");
  }

  // htmx refusals (bad input, no worker, not a reviewer): said next to the form that asked.
  document.body.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    show(alertFor(event.detail.elt), reasonOf(xhr.status, xhr.getResponseHeader("Content-Type"), xhr.responseText));
  });
  document.body.addEventListener("htmx:sendError", function (event) {
    show(alertFor(event.detail.elt), "The server could not be reached; nothing was sent.");
  });
  document.body.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.successful) {
      var box = alertFor(event.detail.elt);
      show(box, "");
      show(byId("page-alert"), "");
    }
  });

  // --- the shortcut help (list page) --------------------------------------------------------------
  function toggleHelp(open) {
    var help = byId("shortcut-help");
    if (!help) return;
    help.hidden = open === undefined ? !help.hidden : !open;
    var toggle = document.querySelector("[data-help-toggle]");
    if (toggle) toggle.setAttribute("aria-expanded", String(!help.hidden));
  }
  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("[data-help-toggle]")) toggleHelp();
  });

  // --- keyboard review on the list ----------------------------------------------------------------
  var selected = -1;
  var VERDICTS = {a: "approve", r: "reject", f: "flag"};
  var DONE = {approve: "Approved", reject: "Rejected", flag: "Flagged"};

  function rows() {
    var results = byId("puzzle-results");
    return results ? Array.prototype.slice.call(results.querySelectorAll('[data-testid="puzzle-row"]')) : [];
  }

  function select(index) {
    var list = rows();
    if (!list.length) { selected = -1; return null; }
    index = Math.max(0, Math.min(index, list.length - 1));
    list.forEach(function (row) {
      row.classList.remove("selected");
      row.setAttribute("aria-selected", "false");
    });
    var row = list[index];
    row.classList.add("selected");
    row.setAttribute("aria-selected", "true");
    row.scrollIntoView({block: "nearest"});
    selected = index;
    return row;
  }

  function current() {
    var list = rows();
    return selected >= 0 && selected < list.length ? list[selected] : null;
  }

  function review(row, verdict) {
    if (byId("puzzle-results").dataset.reviewer !== "1") {
      show(byId("page-alert"), "Approving, rejecting and flagging are for reviewers.");
      return;
    }
    var cell = row.querySelector(".review-cell");
    cell.setAttribute("aria-busy", "true");
    fetch(row.dataset.reviewUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: {"X-CSRFToken": csrfToken(), "HX-Request": "true",
                "Content-Type": "application/x-www-form-urlencoded"},
      body: new URLSearchParams({verdict: verdict, view: "cell"}).toString()
    }).then(function (response) {
      return response.text().then(function (text) {
        if (!response.ok) throw new Error(reasonOf(response.status, response.headers.get("Content-Type"), text));
        cell.innerHTML = text;  // the server's fragment, rendered and escaped like every page
        cell.classList.remove("just-reviewed");
        void cell.offsetWidth;
        cell.classList.add("just-reviewed");
        show(byId("page-alert"), "");
        var status = byId("list-status");
        if (status) status.textContent = DONE[verdict] + ": " + (row.dataset.name || "");
      });
    }).catch(function (error) {
      show(byId("page-alert"), error.message || "The review could not be saved.");
    }).finally(function () {
      cell.removeAttribute("aria-busy");
    });
  }

  function typing(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    if (typing(event.target)) return;
    var key = event.key;
    if (key === "?") { event.preventDefault(); toggleHelp(); return; }
    if (key === "Escape" && byId("shortcut-help") && !byId("shortcut-help").hidden) { toggleHelp(false); return; }
    if (!byId("puzzle-results")) return;
    if (key === "j" || key === "k") {
      event.preventDefault();
      select(selected < 0 ? 0 : selected + (key === "j" ? 1 : -1));
      return;
    }
    var row = current();
    if (!row) return;
    if (key === "Enter" || key === "o") {
      if (key === "Enter" && event.target.closest && event.target.closest("a, button, summary")) return;
      event.preventDefault();
      window.location.assign(row.dataset.url);
    } else if (VERDICTS[key]) {
      event.preventDefault();
      review(row, VERDICTS[key]);
    }
  });

  // A click on a row (not on its link, buttons or checkbox) selects it; its buttons review it.
  document.addEventListener("click", function (event) {
    var row = event.target.closest && event.target.closest('#puzzle-results [data-testid="puzzle-row"]');
    if (!row) return;
    var button = event.target.closest("button[data-verdict]");
    if (button) {
      select(rows().indexOf(row));
      review(row, button.dataset.verdict);
      return;
    }
    if (event.target.closest("a, button, input")) return;
    select(rows().indexOf(row));
  });

  // --- bulk actions on a selection ----------------------------------------------------------------
  function updateBulk() {
    var form = byId("bulk-form");
    if (!form) return;
    var count = document.querySelectorAll('input[name="puzzle"][form="bulk-form"]:checked').length;
    form.querySelector('[data-testid="selected-count"]').textContent = count + " selected";
    form.querySelectorAll("button").forEach(function (b) { b.disabled = count === 0; });
  }
  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("[data-select-all]")) {
      document.querySelectorAll('input[name="puzzle"][form="bulk-form"]').forEach(function (box) {
        box.checked = event.target.checked;
      });
    }
    if (event.target.form && event.target.form.id === "bulk-form" || event.target.matches("[data-select-all]")) updateBulk();
  });
  document.addEventListener("submit", function (event) {
    if (event.target.id !== "bulk-form") return;
    var next = event.target.querySelector('input[name="next"]');
    if (next) next.value = location.pathname + location.search;  // the list as it is filtered now
  });
  document.body.addEventListener("htmx:afterSwap", updateBulk);

  // --- the review queue: a/r/f answer, s skips ----------------------------------------------------
  document.addEventListener("keydown", function (event) {
    var form = document.querySelector('[data-testid="queue-form"]');
    if (!form || event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (typing(event.target)) return;
    var target = form.querySelector('[data-key="' + event.key + '"]');
    if (!target) return;
    event.preventDefault();
    target.click();
  });
  // New results (filters, another page, history): nothing is selected.
  document.body.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "puzzle-results") selected = -1;
  });
  document.body.addEventListener("htmx:historyRestore", function () { selected = -1; });
})();
