// billsync console: small progressive enhancements (the pages work without them).
(function () {
  "use strict";
  function on(event, selector, handler) {
    document.addEventListener(event, function (e) {
      var target = e.target.closest ? e.target.closest(selector) : null;
      if (target) handler(e, target);
    });
  }
  // Copy the configuration id.
  on("click", "[data-copy]", function (e, button) {
    var source = document.querySelector(button.getAttribute("data-copy"));
    var status = button.parentElement.querySelector("[data-copy-status]");
    var text = source ? source.textContent.trim() : "";
    var done = function () { if (status) status.textContent = "Copied"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallback(text); done(); });
    } else { fallback(text); done(); }
  });
  function fallback(text) {
    var area = document.createElement("textarea");
    area.value = text; area.setAttribute("readonly", ""); area.style.position = "fixed"; area.style.opacity = "0";
    document.body.appendChild(area); area.select();
    try { document.execCommand("copy"); } catch (err) { /* nothing else to try */ }
    document.body.removeChild(area);
  }
  // Account and user pickers: filter the list as you type.
  function filterPicker(input) {
    var needle = input.value.trim().toLowerCase();
    var picker = input.closest("[data-picker]");
    picker.querySelectorAll(".picker-item").forEach(function (item) {
      item.hidden = needle !== "" && item.getAttribute("data-text").indexOf(needle) === -1;
    });
  }
  on("input", "[data-picker-search]", function (e, input) { filterPicker(input); });
  // Text typed before this script ran (a fast typist, a slow page) is applied now.
  document.querySelectorAll("[data-picker-search]").forEach(function (input) {
    if (input.value) filterPicker(input);
  });
  // Dialogs (Select one integration credential).
  on("click", "[data-open-dialog]", function (e, button) {
    var dialog = document.getElementById(button.getAttribute("data-open-dialog"));
    if (dialog && dialog.showModal) dialog.showModal();
  });
  on("click", "[data-close-dialog]", function (e, button) {
    var dialog = button.closest("dialog");
    if (dialog) dialog.close();
  });
  // Confirm destructive forms.
  on("submit", "form[data-confirm]", function (e, form) {
    if (!window.confirm(form.getAttribute("data-confirm"))) e.preventDefault();
  });
  on("click", "[data-back]", function (e) {
    if (window.history.length > 1) { e.preventDefault(); window.history.back(); }
  });
  // Replay: show the inputs of the chosen range mode.
  function replayMode() {
    var chosen = document.querySelector("input[name=mode]:checked");
    if (!chosen) return;
    document.querySelectorAll("[data-mode]").forEach(function (block) {
      block.hidden = block.getAttribute("data-mode") !== chosen.value;
    });
  }
  on("change", "input[name=mode]", replayMode);
  document.addEventListener("DOMContentLoaded", function () {
    replayMode();
    var problems = document.getElementById("form-problems");
    if (problems) problems.focus();
  });
})();
