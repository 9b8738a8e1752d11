// Technocampus portal: small progressive enhancements; every page works without them.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Move the focus to an error summary, so that keyboard and screen-reader users hear it.
  const summary = document.querySelector("[data-autofocus]");
  if (summary) summary.focus();

  // Copy buttons: copy the named field's text and say so (the field stays selectable by hand).
  document.querySelectorAll("[data-copy]").forEach((button) => {
    button.addEventListener("click", async () => {
      const field = document.getElementById(button.dataset.copy);
      const status = button.closest(".copy")?.querySelector(".copy-status");
      field.select();
      try {
        await navigator.clipboard.writeText(field.value);
      } catch {
        document.execCommand("copy");
      }
      if (status) status.textContent = button.dataset.copied;
    });
  });

  // Keep the length of the slot when the start time changes (10:00–11:00 → 14:00–15:00).
  const start = document.querySelector("#id_start");
  const end = document.querySelector("#id_end");
  if (start && end) {
    const minutes = (value) => {
      const [h, m] = value.split(":").map(Number);
      return h * 60 + m;
    };
    let length = start.value && end.value ? minutes(end.value) - minutes(start.value) : 60;
    start.addEventListener("change", () => {
      if (!start.value) return;
      const wanted = Math.min(minutes(start.value) + (length > 0 ? length : 60), 23 * 60 + 59);
      const pad = (n) => String(n).padStart(2, "0");
      end.value = `${pad(Math.floor(wanted / 60))}:${pad(wanted % 60)}`;
    });
    end.addEventListener("change", () => {
      if (start.value && end.value) length = minutes(end.value) - minutes(start.value);
    });
  }
});
