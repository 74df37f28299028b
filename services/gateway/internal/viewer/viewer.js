// AMS conversation viewer. Reads every stream of the conversation as an
// observer (spec 4.7) over the browser path (spec 4.1) and shows each one
// live. Payloads are untrusted: they only ever become text nodes or
// textContent, never HTML.
"use strict";
(() => {
  const MAX_CURSOR = 100; // spec 5.1: at most 100 positions
  // Close codes after which reconnecting cannot help (spec 4.2).
  const FINAL = new Set([4001, 4002, 4003, 4004, 4005, 4400]);

  // The magic link is {base}/{ns}/conversations/{alias}?t=…; the connect
  // URL inserts /connect before the query (spec 4.1).
  const path = location.pathname.replace(/\/+$/, "");
  const segs = path.split("/");
  const ns = decodeURIComponent(segs[1] || "");
  const alias = decodeURIComponent(segs[3] || "");

  const $ = (id) => document.getElementById(id);
  const list = $("streams");
  const status = $("status");
  $("title").textContent = ns + " / " + alias;
  document.title = alias + " · AMS";

  const streams = new Map(); // stream_id → state, in join order
  let socket = null;
  let retries = 0;
  let timer = 0;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function setStatus(state, text) {
    status.dataset.state = state;
    status.textContent = text;
  }

  // cursor is the resume cursor (spec 5.1): per stream the highest seq
  // shown, 0 for none, so that a stream not yet read is replayed from its
  // start; "*" before any stream is known.
  function cursor() {
    const all = [...streams.values()];
    const pos = all.filter((s) => s.live).concat(all.filter((s) => !s.live)).map((s) => s.id + ":" + s.seq);
    return pos.length ? pos.slice(0, MAX_CURSOR).join(",") : "*";
  }

  function connectURL() {
    const q = new URLSearchParams(location.search);
    q.set("observe", "1");
    q.set("resume", cursor());
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path + "/connect?" + q;
  }

  function connect() {
    timer = 0;
    setStatus("connecting", retries ? "reconnecting" : "connecting");
    const ws = new WebSocket(connectURL(), ["ams.v1"]);
    socket = ws;
    ws.onmessage = (ev) => {
      let f;
      try {
        f = JSON.parse(ev.data);
      } catch {
        return;
      }
      for (const one of Array.isArray(f) ? f : [f]) handle(one);
    };
    ws.onclose = (ev) => {
      if (socket !== ws) return;
      socket = null;
      const why = ev.code + (ev.reason ? " " + ev.reason : "");
      if (FINAL.has(ev.code)) {
        setStatus("closed", "closed: " + why);
        return;
      }
      const delay = Math.min(30000, 500 * 2 ** Math.min(retries, 6)) * (0.5 + Math.random() / 2);
      retries++;
      setStatus("reconnecting", "disconnected (" + why + "), reconnecting");
      timer = setTimeout(connect, delay);
    };
  }

  addEventListener("online", () => {
    if (timer) {
      clearTimeout(timer);
      connect();
    }
  });

  function handle(f) {
    switch (f.type) {
      case "joined":
        retries = 0;
        $("conversation").textContent = f.conversation_id;
        for (const p of f.peers || []) upsert(p, true);
        setStatus("live", "live");
        break;
      case "stream_joined":
        upsert(f, true);
        break;
      case "stream_left":
        upsert(f, false);
        break;
      case "token": {
        const s = accept(f);
        if (s) s.tail.appendData(f.data);
        break;
      }
      case "stream_metadata": {
        const s = accept(f);
        if (s) {
          s.metadata = f.metadata;
          render(s);
        }
        break;
      }
      case "replay_gap": {
        const s = streams.get(f.stream_id) || upsert(f);
        const lost = f.requested_seq + "–" + (f.first_available_seq - 1);
        s.text.appendChild(el("span", "gap", "[events " + lost + " are no longer retained]"));
        s.tail = s.text.appendChild(document.createTextNode(""));
        s.seq = Math.max(s.seq, f.first_available_seq - 1);
        render(s);
        break;
      }
    }
  }

  // accept records an event's seq and returns its stream, or null for an
  // event already shown.
  function accept(f) {
    const s = streams.get(f.stream_id) || upsert(f);
    if (!(f.seq > s.seq)) return null;
    s.seq = f.seq;
    s.seqEl.textContent = "seq " + s.seq;
    return s;
  }

  // upsert returns the stream of a frame, creating its card the first
  // time; live, if given, sets its join / leave state.
  function upsert(f, live) {
    let s = streams.get(f.stream_id);
    if (!s) {
      s = { id: f.stream_id, seq: 0, live: true, metadata: {} };
      card(s);
      streams.set(s.id, s);
      $("empty")?.remove();
      list.appendChild(s.card);
    }
    s.name = f.stream_name;
    s.owner = f.owner_account_id;
    s.identity = f.peer_identity;
    if ("metadata" in f) s.metadata = f.metadata;
    if (live !== undefined) s.live = live;
    render(s);
    return s;
  }

  function card(s) {
    s.card = el("section", "stream");
    s.card.dataset.streamId = s.id;
    const head = s.card.appendChild(el("header"));
    s.nameEl = head.appendChild(el("span", "name"));
    s.stateEl = head.appendChild(el("span", "state"));
    s.seqEl = head.appendChild(el("span", "seq"));
    const dl = s.card.appendChild(el("dl"));
    const row = (label, cls) => {
      dl.appendChild(el("dt", "", label));
      return dl.appendChild(el("dd", cls));
    };
    row("stream", "id").textContent = s.id;
    s.ownerEl = row("owner", "owner");
    s.identityEl = row("identity", "identity");
    s.metadataEl = row("metadata", "metadata");
    s.text = s.card.appendChild(el("pre", "text"));
    s.tail = s.text.appendChild(document.createTextNode(""));
  }

  function render(s) {
    s.nameEl.textContent = s.name;
    s.stateEl.textContent = s.live ? "live" : "left";
    s.card.classList.toggle("left", !s.live);
    s.seqEl.textContent = "seq " + s.seq;
    s.ownerEl.textContent = s.owner;
    const id = s.identity;
    s.identityEl.textContent = id ? [id.kind, id.model, id.client].filter(Boolean).join(" · ") : "–";
    s.metadataEl.textContent = JSON.stringify(s.metadata);
  }

  connect();
})();
