// The Live page: the dashboard's event stream (Server-Sent Events through EventSource), newest row at the
// top, the newest `data-keep` rows kept. Pause closes the stream; Resume opens it again after the last event
// shown (`after`), so what arrived meanwhile comes then and nothing is skipped.
(() => {
  const root = document.getElementById("live");
  if (!root) return;
  const rows = document.getElementById("live-rows");
  const status = document.getElementById("live-status");
  const button = document.getElementById("live-pause");
  const keep = Number(root.dataset.keep);
  const RETRY_MS = 5000;
  let after = root.dataset.after; // the seq the next stream starts after: the page's horizon, then each event's
  let source = null;
  let retry = null;
  let paused = false;

  function show(state, text) {
    status.dataset.state = state;
    status.textContent = text;
  }

  function cell(row, content, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    if (typeof content === "string") td.textContent = content;
    else td.append(content);
    row.append(td);
  }

  function add(event) {
    const row = document.createElement("tr");
    row.dataset.seq = event.seq;
    row.dataset.uuid = event.uuid;
    row.dataset.event = event.event;
    const link = document.createElement("a");
    link.className = "event-link";
    link.href = `${root.dataset.events}${encodeURIComponent(event.uuid)}?ts=${encodeURIComponent(event.timestamp)}`;
    link.textContent = event.timestamp.slice(0, 19).replace("T", " ");
    cell(row, link);
    cell(row, event.event);
    cell(row, event.distinct_id);
    const properties = JSON.stringify(event.properties || {});
    cell(row, properties.length > 300 ? `${properties.slice(0, 300)}…` : properties, "hide-narrow mono props");
    cell(row, String(event.seq), "hide-narrow num");
    const waiting = rows.querySelector("tr.waiting");
    if (waiting) waiting.remove();
    rows.prepend(row);
    while (rows.children.length > keep) rows.lastElementChild.remove();
  }

  function stop() {
    clearTimeout(retry);
    if (source) source.close();
    source = null;
  }

  function open() {
    stop();
    const url = root.dataset.stream + (root.dataset.stream.includes("?") ? "&" : "?") + `after=${after}`;
    source = new EventSource(url);
    show("connecting", "Connecting…");
    source.onopen = () => show("live", "Live");
    source.addEventListener("event", (message) => {
      add(JSON.parse(message.data));
      after = message.lastEventId;
    });
    source.addEventListener("close", (message) => {
      if (JSON.parse(message.data).reason === "signed_out") {
        stop();
        show("closed", "Signed out: reload the page to sign in again.");
      } // otherwise (cut off as too slow) EventSource reconnects by itself after the last id it saw
    });
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        // Refused (the server is starting, or the session ended): try again from the last event shown.
        stop();
        show("closed", "Disconnected; retrying…");
        retry = setTimeout(open, RETRY_MS);
      } else {
        show("connecting", "Reconnecting…");
      }
    };
  }

  button.addEventListener("click", () => {
    paused = !paused;
    button.textContent = paused ? "Resume" : "Pause";
    if (paused) {
      stop();
      show("paused", "Paused");
    } else {
      open();
    }
  });
  window.addEventListener("pagehide", stop);
  window.addEventListener("pageshow", (event) => {
    if (event.persisted && !paused) open(); // back from the back-forward cache
  });
  open();
})();
