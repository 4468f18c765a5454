// cube_detect review page: plain JavaScript, no library, no network but this server.
// The server (src/cube_detect/review.py) owns the files; this page keeps one working copy of the
// image on screen and saves every change at once (PUT with the version it loaded: a stale
// version is refused with 409 and the page reloads the image).
"use strict";

(function () {
  const TOKEN = new URLSearchParams(location.search).get("token") || "";
  const POLL_MS = 2000;
  const HANDLE_PX = 7; // screen pixels around an edge that grab it
  const MIN_BOX = 3; // image pixels: smaller drags are clicks, not boxes
  const PALETTE = ["#ff5a36", "#1fa2ff", "#ffd400", "#b26bff", "#22c55e", "#ff4fa3", "#00d1c1", "#ff9f1c", "#a3e635"];

  const $ = (id) => document.getElementById(id);
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");
  const viewport = $("viewport");

  let labels = [];
  let rows = new Map(); // id -> side list row (server's summary of an image)
  let order = []; // ids shown in the side list, in order
  let generation = null;
  let cur = null; // the image on screen: {id, split, name, record, boxes, version, verified, status, dirty, saving, img}
  let selected = -1;
  let classIndex = 0; // class of the next box drawn
  let zoom = 1;
  let fit = true;
  let drag = null;
  let messageTimer = null;
  const unsaved = new Set(); // image states with changes not yet on disk (also after leaving them)

  // ------------------------------------------------------------------ server

  async function api(method, path, body) {
    const headers = {};
    if (TOKEN) headers["X-Review-Token"] = TOKEN;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method, headers, cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    return { status: response.status, ok: response.ok, data: data || {} };
  }

  function annPath(id) {
    const [split, name] = splitId(id);
    return `/api/ann/${encodeURIComponent(split)}/${encodeURIComponent(name)}`;
  }

  function imageUrl(id, version) {
    const [split, name] = splitId(id);
    const query = new URLSearchParams();
    if (TOKEN) query.set("token", TOKEN);
    query.set("v", version || "");
    return `/image/${encodeURIComponent(split)}/${encodeURIComponent(name)}?${query}`;
  }

  function splitId(id) {
    const slash = id.indexOf("/");
    return [id.slice(0, slash), id.slice(slash + 1)];
  }

  // ------------------------------------------------------------------ messages

  function message(text, kind) {
    const box = $("message");
    box.textContent = text;
    box.className = kind || "";
    clearTimeout(messageTimer);
    if (kind !== "error") messageTimer = setTimeout(() => { box.textContent = ""; }, 4000);
  }

  function busy() {
    return Array.from(unsaved).some((s) => s.dirty || s.saving);
  }

  function updatePending() {
    document.body.dataset.pending = busy() ? "1" : "0"; // read by the browser test
  }

  // ------------------------------------------------------------------ list and summary

  async function refreshList(full) {
    const r = await api("GET", "/api/images");
    if (!r.ok) { message(r.data.error || `list: HTTP ${r.status}`, "error"); return; }
    generation = r.data.generation;
    labels = r.data.labels;
    $("root").textContent = r.data.root;
    const known = new Set(rows.keys());
    rows = new Map(r.data.images.map((row) => [row.id, row]));
    fillClassFilter();
    if (full || !order.length) {
      order = sortedIds();
    } else {
      order = order.filter((id) => rows.has(id) || (cur && cur.id === id));
      const fresh = sortedIds().filter((id) => !known.has(id) && !order.includes(id));
      order = order.concat(fresh);
      if (fresh.length) message(`${fresh.length} new image${fresh.length > 1 ? "s" : ""}`, "ok");
    }
    renderList();
    renderSummary(r.data.summary);
    renderClassKeys();
    // Changed on disk by someone else (another tab, a tool) while nothing is pending here: show it.
    if (cur) {
      const row = rows.get(cur.id);
      if (!row) {
        message(`${cur.id} is gone from the data set`, "error");
      } else if (row.version !== cur.version && !cur.dirty && !cur.saving) {
        await reload(cur, `${cur.id} changed on disk: reloaded`);
      }
    }
  }

  function matches(row) {
    const split = $("split-filter").value, status = $("status-filter").value, cls = $("class-filter").value;
    if (split && row.split !== split) return false;
    if (status && row.status !== status) return false;
    if (cls === "__none__") return row.faces === 0;
    if (cls) return (row.classes[cls] || 0) > 0;
    return true;
  }

  function sortedIds() {
    const how = $("order").value;
    const list = Array.from(rows.values()).filter(matches);
    const rank = { "no-xml": 0, unreviewed: 0, bad: 1, reviewed: 2 };
    const byName = (a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    if (how === "unreviewed") list.sort((a, b) => rank[a.status] - rank[b.status] || byName(a, b));
    else if (how === "score") {
      const s = (row) => (row.min_score === null ? 2 : row.min_score);
      list.sort((a, b) => s(a) - s(b) || byName(a, b));
    } else list.sort(byName);
    return list.map((row) => row.id);
  }

  function fillClassFilter() {
    const select = $("class-filter");
    const want = ["", ...labels, "__none__"];
    const have = Array.from(select.options).map((o) => o.value);
    if (want.join("\n") === have.join("\n")) return;
    const keep = select.value;
    select.textContent = "";
    for (const value of want) {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = value === "" ? "all" : value === "__none__" ? "no faces" : value;
      select.appendChild(option);
    }
    select.value = want.includes(keep) ? keep : "";
  }

  function renderList() {
    const list = $("list");
    list.textContent = "";
    for (const id of order) {
      const row = rows.get(id);
      if (!row) continue;
      const li = document.createElement("li");
      li.dataset.id = id;
      li.title = row.error || `${row.status}, ${row.faces} face${row.faces === 1 ? "" : "s"}`;
      if (cur && cur.id === id) li.className = "current";
      const dot = document.createElement("span");
      dot.className = `dot ${row.status}`;
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = row.name;
      const split = document.createElement("span");
      split.className = "split";
      split.textContent = row.split;
      const score = document.createElement("span");
      score.className = "score";
      score.textContent = row.min_score === null ? "" : row.min_score.toFixed(2);
      li.append(dot, name, split, score);
      li.addEventListener("click", () => open(id));
      list.appendChild(li);
    }
    const reviewed = order.filter((id) => rows.get(id) && rows.get(id).status === "reviewed").length;
    $("count").textContent = `${order.length} of ${rows.size} images shown, ${reviewed} of them reviewed`;
    const current = list.querySelector("li.current");
    if (current) current.scrollIntoView({ block: "nearest" });
  }

  function renderSummary(summary) {
    const table = $("summary");
    table.textContent = "";
    table.title = "the figures of `python -m cube_detect stats` (valid images only):\n" + summary.stats;
    const head = ["split", "images", "faces", ...summary.labels, "difficult", "reviewed"];
    const tr = document.createElement("tr");
    for (const h of head) { const th = document.createElement("th"); th.textContent = h; tr.appendChild(th); }
    table.appendChild(tr);
    for (const row of summary.rows) {
      const line = document.createElement("tr");
      if (row.split === "total") line.className = "total";
      const share = row.listed ? Math.round((100 * row.reviewed) / row.listed) : 0;
      const cells = [row.split, row.images, row.faces, ...summary.labels.map((l) => row[l] || 0),
        row.difficult || 0, `${row.reviewed}/${row.listed}`];
      cells.forEach((c, i) => {
        const td = document.createElement("td");
        td.textContent = c;
        if (head[i] === "reviewed") td.title = `${share} % of the ${row.listed} images reviewed`;
        if (head[i] === "difficult") td.title = "of the faces: marked difficult (d), neither found nor missed in evaluation";
        line.appendChild(td);
      });
      table.appendChild(line);
    }
    const total = summary.rows[summary.rows.length - 1] || {};
    const notes = [];
    if (total.no_xml) notes.push(`${total.no_xml} image${total.no_xml > 1 ? "s" : ""} without XML`);
    if (total.bad) notes.push(`${total.bad} bad (not counted: see their tooltips)`);
    $("summary-notes").textContent = notes.join(", ");
  }

  function renderClassKeys() {
    const box = $("class-keys");
    box.textContent = "Next box: ";
    labels.forEach((label, i) => {
      if (i >= 9) return;
      const k = document.createElement("kbd");
      k.textContent = String(i + 1);
      const span = document.createElement("span");
      span.textContent = ` ${label} `;
      span.style.fontWeight = i === classIndex ? "700" : "400";
      span.style.color = PALETTE[i % PALETTE.length];
      box.append(k, span);
    });
  }

  // ------------------------------------------------------------------ one image

  function applyRecord(state, record) {
    state.record = record;
    state.version = record.version;
    state.verified = record.verified;
    state.status = record.status;
    state.boxes = record.boxes.map((b) => Object.assign({}, b));
    state.dirty = false;
    if (rows.has(record.id)) rows.set(record.id, Object.assign({}, rows.get(record.id), summaryOf(record)));
    if (state === cur) {
      selected = -1;
      renderImage();
    }
  }

  function summaryOf(record) {
    const keys = ["id", "split", "name", "status", "faces", "classes", "min_score", "error", "version"];
    const out = {};
    for (const k of keys) out[k] = record[k];
    return out;
  }

  async function reload(state, why) {
    const r = await api("GET", annPath(state.id));
    if (!r.ok) { message(r.data.error || `load: HTTP ${r.status}`, "error"); return; }
    applyRecord(state, r.data);
    if (why) message(why, "error");
    renderList();
  }

  async function open(id) {
    if (!id) return;
    const state = { id, dirty: false, saving: false, boxes: [], img: null };
    cur = state;
    selected = -1;
    const r = await api("GET", annPath(id));
    if (cur !== state) return;
    if (!r.ok) { message(r.data.error || `load: HTTP ${r.status}`, "error"); return; }
    applyRecord(state, r.data);
    const img = new Image();
    img.onload = () => {
      if (cur !== state) return;
      state.img = img;
      if (fit) fitZoom();
      renderImage();
    };
    img.onerror = () => message(`cannot load the image ${id}`, "error");
    img.src = imageUrl(id, r.data.version);
    renderList();
    history.replaceState(null, "", `#${encodeURIComponent(id)}`);
  }

  function renderImage() {
    if (!cur) return;
    const record = cur.record || {};
    $("title").textContent = cur.id;
    const badge = $("status-badge");
    const status = cur.status === "bad" ? "bad" : cur.verified ? "reviewed" : cur.status === "no-xml" ? "no-xml" : "unreviewed";
    badge.className = status;
    badge.textContent = { bad: "cannot edit", reviewed: "reviewed", "no-xml": "no XML yet", unreviewed: "unreviewed" }[status];
    const errorBox = $("error-box");
    errorBox.hidden = !record.error;
    errorBox.textContent = record.error
      ? `${record.error}\nThe page cannot edit this image: fix the file (or remove it) and it reloads by itself.` : "";
    renderBoxes();
    draw();
    updatePending();
  }

  function renderBoxes() {
    const list = $("boxes");
    list.textContent = "";
    cur.boxes.forEach((box, i) => {
      const li = document.createElement("li");
      if (i === selected) li.className = "selected";
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = color(box.label);
      if (box.difficult) { swatch.style.background = "transparent"; swatch.style.border = `2px dashed ${color(box.label)}`; }
      if (box.difficult) li.classList.add("difficult");
      const text = document.createElement("span");
      text.textContent = `${box.label}  ${box.xmax - box.xmin}×${box.ymax - box.ymin}`;
      const score = document.createElement("span");
      score.className = "score";
      score.textContent = box.score === null || box.score === undefined ? "" : box.score.toFixed(2);
      // VOC's "difficult": a face too hard to count (evaluation counts it neither as found nor missed).
      const flag = document.createElement("label");
      flag.className = "difficult-flag";
      flag.title = "difficult (key d): neither a hit nor a miss in evaluation, ignored in training";
      const check = document.createElement("input");
      check.type = "checkbox";
      check.checked = !!box.difficult;
      check.disabled = !editable();
      check.addEventListener("click", (event) => event.stopPropagation());
      check.addEventListener("change", () => {
        selected = i;
        setDifficult(i, check.checked);
        check.blur(); // keys go back to the image
      });
      flag.append(check, document.createTextNode("d"));
      flag.addEventListener("click", (event) => event.stopPropagation());
      li.append(swatch, text, score, flag);
      li.addEventListener("click", () => { selected = i; renderBoxes(); draw(); });
      list.appendChild(li);
    });
    if (!cur.boxes.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "no face: drag on the image to draw one";
      list.appendChild(li);
    }
  }

  function setDifficult(i, value) {
    if (!cur || !editable() || !cur.boxes[i]) return;
    if (!!cur.boxes[i].difficult === value) { renderBoxes(); draw(); return; }
    cur.boxes[i].difficult = value;
    message(`box ${i + 1} ${value ? "marked difficult" : "no longer difficult"}`, "ok");
    changed();
  }

  function color(label) {
    const i = labels.indexOf(label);
    return PALETTE[(i < 0 ? 0 : i) % PALETTE.length];
  }

  function fitZoom() {
    if (!cur || !cur.img) return;
    const w = cur.img.naturalWidth, h = cur.img.naturalHeight;
    zoom = Math.max(0.05, Math.min((viewport.clientWidth - 4) / w, (viewport.clientHeight - 4) / h));
  }

  function draw() {
    if (!cur || !cur.img) { canvas.width = 10; canvas.height = 10; return; }
    const w = cur.img.naturalWidth, h = cur.img.naturalHeight;
    const cw = Math.max(1, Math.round(w * zoom)), ch = Math.max(1, Math.round(h * zoom));
    if (canvas.width !== cw || canvas.height !== ch) { canvas.width = cw; canvas.height = ch; }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.imageSmoothingEnabled = zoom < 2;
    ctx.drawImage(cur.img, 0, 0, cw, ch);
    ctx.font = "bold 13px system-ui, sans-serif";
    ctx.textBaseline = "bottom";
    cur.boxes.forEach((box, i) => {
      const x = box.xmin * zoom, y = box.ymin * zoom, bw = (box.xmax - box.xmin) * zoom, bh = (box.ymax - box.ymin) * zoom;
      const c = color(box.label);
      ctx.lineWidth = i === selected ? 3 : 2;
      ctx.strokeStyle = c;
      if (box.difficult) ctx.setLineDash([7, 5]); // difficult: dashed
      ctx.strokeRect(x, y, bw, bh);
      ctx.setLineDash([]);
      if (i === selected) {
        ctx.fillStyle = "rgba(255,255,255,0.15)";
        ctx.fillRect(x, y, bw, bh);
        ctx.fillStyle = c;
        for (const [hx, hy] of [[x, y], [x + bw, y], [x, y + bh], [x + bw, y + bh], [x + bw / 2, y], [x + bw / 2, y + bh], [x, y + bh / 2], [x + bw, y + bh / 2]]) {
          ctx.fillRect(hx - 4, hy - 4, 8, 8);
        }
      }
      const key = labels.indexOf(box.label) + 1;
      const text = `${key > 0 ? key + " " : ""}${box.label}${box.score === null || box.score === undefined ? "" : " " + box.score.toFixed(2)}${box.difficult ? " difficult" : ""}`;
      const tw = ctx.measureText(text).width + 6;
      const ty = y >= 17 ? y : y + bh + 17;
      ctx.fillStyle = c;
      ctx.fillRect(x - 1, ty - 17, tw, 17);
      ctx.fillStyle = "#111";
      ctx.fillText(text, x + 2, ty - 1);
    });
    if (drag && drag.mode === "draw") {
      const r = norm(drag.start, drag.now);
      ctx.setLineDash([5, 4]);
      ctx.lineWidth = 2;
      ctx.strokeStyle = color(labels[classIndex]);
      ctx.strokeRect(r.xmin * zoom, r.ymin * zoom, (r.xmax - r.xmin) * zoom, (r.ymax - r.ymin) * zoom);
      ctx.setLineDash([]);
    }
    $("zoom-label").textContent = `${Math.round(zoom * 100)} %`;
  }

  // ------------------------------------------------------------------ saving

  function editable() {
    return cur && cur.record && cur.status !== "bad";
  }

  function changed() {
    if (!editable()) return;
    cur.dirty = true;
    renderImage();
    flush(cur);
  }

  async function flush(state) {
    if (state.saving || !state.dirty) { updatePending(); return; }
    state.saving = true;
    state.dirty = false;
    unsaved.add(state);
    updatePending();
    $("saved").textContent = "saving…";
    // `key`: the box's index in the file this version is, so that the server keeps what the page
    // does not show (pose, unknown elements, truncated of an unmoved box); null for a new box.
    const sent = state.boxes.slice();
    const body = {
      version: state.version,
      verified: state.verified,
      boxes: sent.map((b) => ({
        label: b.label, xmin: b.xmin, ymin: b.ymin, xmax: b.xmax, ymax: b.ymax,
        score: b.score === undefined ? null : b.score, difficult: !!b.difficult,
        key: Number.isInteger(b.key) ? b.key : null,
      })),
    };
    let again = false;
    try {
      const r = await api("PUT", annPath(state.id), body);
      if (r.ok) {
        again = state.dirty; // changed again while this save was on its way
        sent.forEach((b, i) => { b.key = i; }); // the file on disk now lists the boxes sent, in order
        state.version = r.data.version;
        state.status = r.data.status;
        state.record = Object.assign({}, state.record, { version: r.data.version, status: r.data.status, error: "" });
        rows.set(state.id, Object.assign({}, rows.get(state.id) || {}, summaryOf(r.data)));
        $("saved").textContent = `saved ${state.id.split("/")[1]} ${new Date().toLocaleTimeString()}`;
      } else if (r.data.current) {
        state.dirty = false;
        message(r.data.error || `not saved: HTTP ${r.status}`, "error");
        applyRecord(state, r.data.current);
        $("saved").textContent = "not saved";
      } else {
        state.dirty = false;
        message(r.data.error || `not saved: HTTP ${r.status}`, "error");
        $("saved").textContent = "not saved";
        await reload(state, null);
      }
    } catch (e) {
      state.dirty = true; // kept: the poll saves it again once the server answers
      message("not saved: the server does not answer (is `review` still running?)", "error");
      $("saved").textContent = "unsaved changes";
    }
    state.saving = false;
    if (!state.dirty) unsaved.delete(state);
    renderList();
    if (state === cur) renderImage();
    updatePending();
    if (again) flush(state);
  }

  // ------------------------------------------------------------------ navigation

  function step(delta) {
    if (!order.length) return;
    let i = cur ? order.indexOf(cur.id) : -1;
    if (i < 0) i = delta > 0 ? -1 : 0;
    const j = i + delta;
    if (j < 0 || j >= order.length) { message(delta > 0 ? "last image of the list" : "first image of the list"); return; }
    open(order[j]);
  }

  function nextUnreviewed() {
    const i = cur ? order.indexOf(cur.id) : -1;
    for (let k = 1; k <= order.length; k++) {
      const id = order[(i + k + order.length) % order.length];
      const row = rows.get(id);
      if (id !== (cur && cur.id) && row && (row.status === "unreviewed" || row.status === "no-xml")) return id;
    }
    return null;
  }

  function accept() {
    if (!editable()) { message("this image cannot be edited", "error"); return; }
    const next = nextUnreviewed();
    cur.verified = true;
    changed();
    if (next) open(next);
    else message("every image of this list is reviewed", "ok");
  }

  // ------------------------------------------------------------------ mouse

  function imagePoint(event) {
    const rect = canvas.getBoundingClientRect();
    return { x: (event.clientX - rect.left) / zoom, y: (event.clientY - rect.top) / zoom };
  }

  function norm(a, b) {
    return { xmin: Math.min(a.x, b.x), ymin: Math.min(a.y, b.y), xmax: Math.max(a.x, b.x), ymax: Math.max(a.y, b.y) };
  }

  function clampBox(box) {
    const w = cur.img.naturalWidth, h = cur.img.naturalHeight;
    let xmin = Math.round(Math.min(box.xmin, box.xmax)), xmax = Math.round(Math.max(box.xmin, box.xmax));
    let ymin = Math.round(Math.min(box.ymin, box.ymax)), ymax = Math.round(Math.max(box.ymin, box.ymax));
    xmin = Math.max(0, Math.min(w - 1, xmin)); ymin = Math.max(0, Math.min(h - 1, ymin));
    xmax = Math.max(xmin + 1, Math.min(w, xmax)); ymax = Math.max(ymin + 1, Math.min(h, ymax));
    return Object.assign(box, { xmin, ymin, xmax, ymax });
  }

  function edgesAt(box, p) {
    const tol = HANDLE_PX / zoom;
    const inY = p.y >= box.ymin - tol && p.y <= box.ymax + tol, inX = p.x >= box.xmin - tol && p.x <= box.xmax + tol;
    const e = {
      left: inY && Math.abs(p.x - box.xmin) <= tol, right: inY && Math.abs(p.x - box.xmax) <= tol,
      top: inX && Math.abs(p.y - box.ymin) <= tol, bottom: inX && Math.abs(p.y - box.ymax) <= tol,
    };
    return e.left || e.right || e.top || e.bottom ? e : null;
  }

  function boxAt(p) {
    let best = -1, area = Infinity;
    cur.boxes.forEach((b, i) => {
      const a = (b.xmax - b.xmin) * (b.ymax - b.ymin);
      if (p.x >= b.xmin && p.x <= b.xmax && p.y >= b.ymin && p.y <= b.ymax && a < area) { best = i; area = a; }
    });
    return best;
  }

  function cursorFor(edges) {
    if (!edges) return null;
    if ((edges.left && edges.top) || (edges.right && edges.bottom)) return "nwse-resize";
    if ((edges.right && edges.top) || (edges.left && edges.bottom)) return "nesw-resize";
    return edges.left || edges.right ? "ew-resize" : "ns-resize";
  }

  canvas.addEventListener("contextmenu", (e) => e.preventDefault());

  canvas.addEventListener("mousedown", (event) => {
    if (!cur || !cur.img) return;
    event.preventDefault();
    if (event.button === 1 || event.button === 2) {
      drag = { mode: "pan", x: event.clientX, y: event.clientY, left: viewport.scrollLeft, top: viewport.scrollTop };
      return;
    }
    if (event.button !== 0 || !editable()) return;
    const p = imagePoint(event);
    const edges = selected >= 0 ? edgesAt(cur.boxes[selected], p) : null;
    if (edges) {
      drag = { mode: "resize", edges, index: selected, start: p, orig: Object.assign({}, cur.boxes[selected]) };
      return;
    }
    const hit = boxAt(p);
    if (hit >= 0) {
      selected = hit;
      drag = { mode: "move", index: hit, start: p, orig: Object.assign({}, cur.boxes[hit]) };
      renderBoxes();
      draw();
      return;
    }
    drag = { mode: "draw", start: p, now: p };
  });

  window.addEventListener("mousemove", (event) => {
    if (!cur || !cur.img) return;
    if (!drag) {
      if (event.target === canvas && selected >= 0 && editable()) {
        const p = imagePoint(event);
        canvas.style.cursor = cursorFor(edgesAt(cur.boxes[selected], p)) || (boxAt(p) >= 0 ? "move" : "crosshair");
      }
      return;
    }
    if (drag.mode === "pan") {
      viewport.scrollLeft = drag.left - (event.clientX - drag.x);
      viewport.scrollTop = drag.top - (event.clientY - drag.y);
      return;
    }
    const p = imagePoint(event);
    const w = cur.img.naturalWidth, h = cur.img.naturalHeight;
    p.x = Math.max(0, Math.min(w, p.x));
    p.y = Math.max(0, Math.min(h, p.y));
    if (drag.mode === "draw") drag.now = p;
    else if (drag.mode === "move") {
      const o = drag.orig, bw = o.xmax - o.xmin, bh = o.ymax - o.ymin;
      const dx = Math.max(-o.xmin, Math.min(w - o.xmax, p.x - drag.start.x));
      const dy = Math.max(-o.ymin, Math.min(h - o.ymax, p.y - drag.start.y));
      Object.assign(cur.boxes[drag.index], { xmin: o.xmin + dx, ymin: o.ymin + dy, xmax: o.xmin + dx + bw, ymax: o.ymin + dy + bh });
      drag.moved = true;
    } else if (drag.mode === "resize") {
      const b = cur.boxes[drag.index], e = drag.edges;
      if (e.left) b.xmin = p.x;
      if (e.right) b.xmax = p.x;
      if (e.top) b.ymin = p.y;
      if (e.bottom) b.ymax = p.y;
      drag.moved = true;
    }
    draw();
  });

  window.addEventListener("mouseup", () => {
    if (!drag) return;
    const d = drag;
    drag = null;
    if (d.mode === "pan" || !cur || !cur.img) return;
    if (d.mode === "draw") {
      const r = norm(d.start, d.now);
      if (r.xmax - r.xmin >= MIN_BOX && r.ymax - r.ymin >= MIN_BOX) {
        cur.boxes.push(clampBox({ label: labels[classIndex], xmin: r.xmin, ymin: r.ymin, xmax: r.xmax, ymax: r.ymax, score: null }));
        selected = cur.boxes.length - 1;
        changed();
      } else {
        selected = -1; // a click on the image: deselect
        renderBoxes();
        draw();
      }
      return;
    }
    const box = cur.boxes[d.index];
    if (!box) return;
    clampBox(box);
    const o = d.orig;
    if (d.moved && (box.xmin !== o.xmin || box.ymin !== o.ymin || box.xmax !== o.xmax || box.ymax !== o.ymax)) {
      box.score = null; // a person placed it: no longer the model's guess
      changed();
    } else {
      Object.assign(box, o);
      draw();
    }
  });

  viewport.addEventListener("wheel", (event) => {
    if (!cur || !cur.img) return;
    event.preventDefault();
    zoomAt(event.deltaY < 0 ? 1.25 : 0.8, event.clientX, event.clientY);
  }, { passive: false });

  function zoomAt(factor, clientX, clientY) {
    const rect = canvas.getBoundingClientRect(), vrect = viewport.getBoundingClientRect();
    if (clientX === undefined) { clientX = vrect.left + viewport.clientWidth / 2; clientY = vrect.top + viewport.clientHeight / 2; }
    const px = (clientX - rect.left) / zoom, py = (clientY - rect.top) / zoom;
    zoom = Math.max(0.05, Math.min(32, zoom * factor));
    fit = false;
    draw();
    viewport.scrollLeft = px * zoom - (clientX - vrect.left);
    viewport.scrollTop = py * zoom - (clientY - vrect.top);
  }

  window.addEventListener("resize", () => { if (fit) { fitZoom(); draw(); } });

  // ------------------------------------------------------------------ keyboard

  document.addEventListener("keydown", (event) => {
    const tag = (event.target && event.target.tagName) || "";
    if (tag === "SELECT" || tag === "INPUT" || tag === "TEXTAREA") {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key;
    let handled = true;
    if (key === "ArrowRight" || key === "n" || key === "PageDown") step(1);
    else if (key === "ArrowLeft" || key === "p" || key === "PageUp") step(-1);
    else if (key === "Tab") {
      if (cur && cur.boxes.length) {
        const n = cur.boxes.length;
        selected = selected < 0 ? (event.shiftKey ? n - 1 : 0) : (selected + (event.shiftKey ? n - 1 : 1)) % n;
        renderBoxes();
        draw();
      }
    } else if (/^[1-9]$/.test(key)) {
      const i = Number(key) - 1;
      if (i < labels.length) {
        classIndex = i;
        renderClassKeys();
        if (cur && selected >= 0 && editable() && cur.boxes[selected].label !== labels[i]) {
          cur.boxes[selected].label = labels[i];
          cur.boxes[selected].score = null;
          changed();
        }
      } else handled = false;
    } else if (key === "Delete" || key === "Backspace") {
      if (cur && selected >= 0 && editable()) {
        cur.boxes.splice(selected, 1);
        selected = Math.min(selected, cur.boxes.length - 1);
        changed();
      }
    } else if (key === " " || key === "Enter") accept();
    else if (key === "d") {
      if (!editable()) message("this image cannot be edited", "error");
      else if (selected >= 0) setDifficult(selected, !cur.boxes[selected].difficult);
      else message("select a box first (Tab or a click), then d marks it difficult");
    } else if (key === "u") {
      if (editable() && cur.verified) { cur.verified = false; changed(); }
    } else if (key === "+" || key === "=") zoomAt(1.25);
    else if (key === "-") zoomAt(0.8);
    else if (key === "0") { fit = true; fitZoom(); draw(); }
    else if (key === "Escape") { selected = -1; if (cur) { renderBoxes(); draw(); } }
    else handled = false;
    if (handled) event.preventDefault();
  });

  // ------------------------------------------------------------------ start

  for (const id of ["order", "class-filter", "status-filter", "split-filter"]) {
    $(id).addEventListener("change", () => {
      order = sortedIds();
      renderList();
      $(id).blur(); // keys go back to the image
    });
  }

  async function poll() {
    try {
      const r = await api("GET", "/api/poll");
      if (r.ok && r.data.generation !== generation) await refreshList(false);
      for (const state of Array.from(unsaved)) if (state.dirty && !state.saving) flush(state);
    } catch (e) {
      message("the server does not answer (is `review` still running?)", "error");
    }
    setTimeout(poll, POLL_MS);
  }

  window.addEventListener("beforeunload", (event) => {
    if (busy()) { event.preventDefault(); event.returnValue = ""; }
  });

  async function start() {
    updatePending();
    await refreshList(true);
    let wanted = "";
    try {
      wanted = decodeURIComponent(location.hash.slice(1));
    } catch (e) {
      wanted = ""; // a malformed fragment (e.g. "#%E0%A4%A"): start at the first image
    }
    await open(rows.has(wanted) ? wanted : order[0]);
    setTimeout(poll, POLL_MS);
  }

  start().catch((e) => message(`cannot start: ${e}`, "error"));
})();
