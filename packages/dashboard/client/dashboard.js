// The dashboard's one client script (an ES module served from the package; no build step, no
// external asset). Everything it puts on the page goes in through textContent: event data is
// hostile input and is never parsed as HTML.
import uPlot from "./uplot.js";

const base = document.body.dataset.base ?? "";

/** Text for a count. */
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

// Throughput chart (Overview): one series per event type, from GET api/counts.
async function chart(el) {
  const response = await fetch(el.dataset.src, { headers: { accept: "application/json" } });
  if (!response.ok) return;
  const counts = await response.json();
  const types = Object.keys(counts.totals)
    .sort((a, b) => counts.totals[b] - counts.totals[a])
    .slice(0, 12);
  const xs = counts.buckets.map((b) => Date.parse(b.start) / 1000);
  const data = [xs, ...types.map((t) => counts.buckets.map((b) => b.counts[t] ?? 0))];
  const palette = [
    "#2563eb",
    "#dc2626",
    "#16a34a",
    "#9333ea",
    "#ea580c",
    "#0891b2",
    "#ca8a04",
    "#db2777",
    "#4b5563",
    "#65a30d",
    "#7c3aed",
    "#0d9488",
  ];
  const width = Math.max(320, el.clientWidth || 800);
  el.textContent = "";
  // eslint-disable-next-line no-new
  new uPlot(
    {
      width,
      height: 240,
      series: [
        {},
        ...types.map((t, i) => ({ label: t, stroke: palette[i % palette.length], width: 2 })),
      ],
      axes: [{}, { label: "events" }],
      scales: { x: { time: true } },
    },
    data,
    el,
  );
  el.dataset.rendered = "true";
}

// Live tail (Events): server-sent events from GET api/events/stream, new rows on top.
function liveTail(button) {
  const body = document.getElementById("events-body");
  const status = document.getElementById("tail-status");
  let source;
  let received = 0;
  const stop = (message) => {
    source?.close();
    source = undefined;
    button.textContent = "Start live tail";
    button.setAttribute("aria-pressed", "false");
    status.textContent = message;
  };
  button.addEventListener("click", () => {
    if (source) return stop("Live tail stopped.");
    source = new EventSource(button.dataset.src);
    button.textContent = "Stop live tail";
    button.setAttribute("aria-pressed", "true");
    status.textContent = "Connecting…";
    source.addEventListener("ready", () => {
      status.textContent = "Live: new events appear on top.";
      document.body.dataset.tail = "ready";
    });
    source.addEventListener("event", (message) => {
      const e = JSON.parse(message.data);
      const row = document.createElement("tr");
      row.className = "new";
      const cell = (text) => {
        const td = document.createElement("td");
        td.textContent = text;
        row.append(td);
        return td;
      };
      cell(String(e.seq)).className = "num";
      const idCell = cell("");
      const a = document.createElement("a");
      a.href = `${base}/events/${encodeURIComponent(e.id)}`;
      a.textContent = e.id;
      idCell.append(a);
      cell(e.type);
      cell(e.subject ?? "—");
      cell(e.source);
      cell(e.storedAt);
      body.prepend(row);
      received++;
      status.textContent = `Live: ${plural(received, "new event")}.`;
    });
    // A connection error (an Event), or the server's `error` event (a MessageEvent whose data
    // says why it ends the stream: an inspector that did not answer, a read that failed). The
    // server's reason stays shown while the EventSource reconnects.
    let reason = "";
    source.addEventListener("ready", () => {
      reason = "";
    });
    source.addEventListener("error", (event) => {
      if (event.data)
        try {
          reason = String(JSON.parse(event.data).message ?? "");
        } catch {
          reason = "";
        }
      if (source?.readyState === EventSource.CLOSED)
        stop(`Live tail ended (server closed the stream).${reason ? ` ${reason}` : ""}`);
      else status.textContent = reason ? `${reason} Reconnecting…` : "Reconnecting…";
    });
  });
}

// Dead-letter actions: a dry run first (the count), then the action once confirmed. The token
// goes in a header, never in the page or the URL; it is kept for this tab only.
function actions() {
  const tokenInput = document.getElementById("token");
  const confirmBox = document.getElementById("confirm");
  const confirmText = document.getElementById("confirm-text");
  const yes = document.getElementById("confirm-yes");
  const no = document.getElementById("confirm-no");
  const result = document.getElementById("action-result");
  if (!tokenInput || !confirmBox) return;
  tokenInput.value = sessionStorage.getItem("switchyard-token") ?? "";
  tokenInput.addEventListener("change", () =>
    sessionStorage.setItem("switchyard-token", tokenInput.value),
  );
  let pending;

  const post = async (action, target, dryRun) => {
    const response = await fetch(`${base}/api/dead-letters/${action}`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-switchyard-token": tokenInput.value },
      body: JSON.stringify({ ...target, dryRun }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok)
      throw new Error(`${response.status}: ${body.error?.message ?? response.statusText}`);
    return body;
  };

  for (const button of document.querySelectorAll("button.act")) {
    button.addEventListener("click", async () => {
      const action = button.dataset.action;
      const target = JSON.parse(button.dataset.target);
      result.textContent = "Counting…";
      confirmBox.hidden = true;
      try {
        const dry = await post(action, target, true);
        pending = { action, target };
        confirmText.textContent = `${action === "replay" ? "Replay" : "Purge"} ${plural(dry.count, "dead letter")}?${action === "purge" ? " A backup is taken first where the transport supports it." : ""}`;
        result.textContent = "";
        confirmBox.hidden = false;
        yes.focus();
      } catch (error) {
        result.textContent = `Refused: ${error.message}`;
      }
    });
  }
  no.addEventListener("click", () => {
    pending = undefined;
    confirmBox.hidden = true;
    result.textContent = "Cancelled.";
  });
  yes.addEventListener("click", async () => {
    if (!pending) return;
    const { action, target } = pending;
    pending = undefined;
    confirmBox.hidden = true;
    try {
      const done = await post(action, target, false);
      const backups = done.backups?.length ? ` Backup: ${done.backups.join(", ")}.` : "";
      result.textContent = `${action === "replay" ? "Replayed" : "Purged"} ${plural(done.count, "dead letter")}.${backups} Reload to see the change.`;
    } catch (error) {
      result.textContent = `Refused: ${error.message}`;
    }
  });
}

const chartEl = document.getElementById("throughput-chart");
if (chartEl)
  chart(chartEl).catch((error) => (chartEl.textContent = `Chart unavailable: ${error.message}`));
const tailButton = document.getElementById("tail-toggle");
if (tailButton) liveTail(tailButton);
actions();
document.body.dataset.ready = "true";
