// Small progressive enhancements; every page works without them.
(function () {
  "use strict";
  // Close the user menu when clicking elsewhere.
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.dropdown[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) menu.removeAttribute("open");
    });
  });
  // Let flash messages be dismissed.
  document.addEventListener("click", function (event) {
    var message = event.target.closest(".message");
    if (message && message.parentElement.classList.contains("messages")) message.remove();
  });
})();
// Copy buttons (code blocks, whole messages) and confirmations, wherever they appear.
(function () {
  "use strict";
  function copy(text, button) {
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1200);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () {});
      return;
    }
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); done(); } catch (e) { /* nothing to do */ }
    area.remove();
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest(".copy-button, .copy-message");
    if (!button) return;
    if (button.classList.contains("copy-message")) { copy(button.dataset.copy || "", button); return; }
    var code = button.parentElement.querySelector("pre code, pre");
    if (code) copy(code.textContent, button);
  });
  document.addEventListener("submit", function (event) {
    var message = event.target.dataset && event.target.dataset.confirm;
    if (message && !window.confirm(message)) event.preventDefault();
  });
  // The new-conversation form shows the fields of the chosen kind.
  document.addEventListener("change", function (event) {
    if (event.target.name === "kind" && event.target.form) event.target.form.dataset.kind = event.target.value;
  });
})();
