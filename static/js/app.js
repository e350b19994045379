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
