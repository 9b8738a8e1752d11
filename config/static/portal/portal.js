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

  // Live pages (doors): poll a small JSON of cell texts and update the cells that changed.
  // Changes are read out politely by the live region; a failed poll says so, and retries.
  const live = document.querySelector("[data-poll]");
  if (live) {
    const url = live.dataset.poll;
    const every = Math.max(Number(live.dataset.pollSeconds) || 4, 2) * 1000;
    const region = live.querySelector("[aria-live]");
    const stamp = live.querySelector("[data-poll-at]");
    const poll = async () => {
      try {
        const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (!response.ok) throw new Error(String(response.status));
        const data = await response.json();
        const changes = [];
        for (const [id, cell] of Object.entries(data.cells)) {
          const el = document.getElementById(id);
          if (!el) continue;
          if (el.textContent.trim() !== cell.text || (el.dataset.state || "") !== cell.state) {
            el.textContent = cell.text;
            if (cell.state) el.dataset.state = cell.state;
            else delete el.dataset.state;
            el.classList.add("just-changed");
            if (cell.state) changes.push(`${el.dataset.label}: ${cell.text}`);
          }
        }
        if (changes.length && region) region.textContent = changes.join(". ");
        if (stamp) {
          stamp.textContent = data.at.slice(11, 19);
          stamp.dateTime = data.at;
        }
        live.dataset.pollOk = "1";
      } catch (e) {
        live.dataset.pollOk = "0";
      } finally {
        setTimeout(poll, every);
      }
    };
    setTimeout(poll, every);
  }
});
