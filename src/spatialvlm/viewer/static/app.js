// spatialvlm viewer: a small single-page app over the read-only JSON API of viewer/server.py.
// Routes (in the URL hash): #/grid?qa_type=&object=&canon=&errors=&size=&page=   #/image?id=   #/errors?page=
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { meta: null, grid: null, image: null, errPage: 0, highlight: null };

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function svgEl(tag, attrs) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function status(msg, isError) {
  const s = $("#status");
  s.textContent = msg;
  s.className = "status" + (msg ? " show" : "") + (isError ? " err" : "");
}

async function api(path) {
  const r = await fetch(path);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function fileUrl(rel) { return "/file/" + rel.split("/").map(encodeURIComponent).join("/"); }
function thumbUrl(rel) { return "/thumb/" + rel.split("/").map(encodeURIComponent).join("/") + "?w=320"; }

function parseHash() {
  const h = location.hash.replace(/^#/, "") || "/grid";
  const [path, query] = h.split("?");
  return { path, params: new URLSearchParams(query || "") };
}

function show(view) {
  for (const v of ["grid", "image", "errors"]) $("#view-" + v).hidden = v !== view;
}

// ---------------------------------------------------------------------------------------------------------------
// grid
// ---------------------------------------------------------------------------------------------------------------
const FILTERS = [["qa_type", "#f-qa-type"], ["object", "#f-object"], ["canon", "#f-canon"], ["errors", "#f-errors"],
                 ["size", "#f-size"]];

function gridHash(page) {
  const p = new URLSearchParams();
  for (const [key, sel] of FILTERS) { const v = $(sel).value; if (v) p.set(key, v); }
  if (page) p.set("page", page);
  return "#/grid?" + p.toString();
}

async function loadGrid(params) {
  show("grid");
  for (const [key, sel] of FILTERS) {
    if (key === "size") $(sel).value = params.get(key) || "48";
    else $(sel).value = params.get(key) || "";
  }
  const q = new URLSearchParams(params);
  status("loading…");
  const t0 = performance.now();
  const data = await api("/api/images?" + q.toString());
  state.grid = data;
  const grid = $("#grid");
  grid.replaceChildren();
  const back = location.hash;
  for (const it of data.items) {
    const tags = el("div", {},
      el("span", { class: "tag", text: it.n_qa + " QA" }),
      el("span", { class: "tag", text: it.n_askable + "/" + it.n_objects + " obj" }),
      el("span", { class: "tag " + (it.canonicalized ? "ok" : "no"), text: it.canonicalized ? "canon" : "camera" }));
    grid.append(el("a", { class: "card", href: "#/image?id=" + encodeURIComponent(it.image_id) +
                                             "&back=" + encodeURIComponent(back), "data-id": it.image_id },
      el("img", { src: thumbUrl(it.image), alt: it.image_id, loading: "lazy" }),
      el("div", { class: "info" }, el("div", { class: "id", text: it.image_id }), tags)));
  }
  $("#page-info").textContent = data.total
    ? `page ${data.page + 1} of ${data.pages} · ${data.total} images`
    : "no image matches these filters";
  $("#prev-page").disabled = data.page <= 0;
  $("#next-page").disabled = data.page + 1 >= data.pages;
  grid.dataset.total = data.total;
  grid.dataset.ms = Math.round(performance.now() - t0);
  status("");
}

// ---------------------------------------------------------------------------------------------------------------
// image page
// ---------------------------------------------------------------------------------------------------------------
function valueText(q) {
  if (q.value_m !== null && q.value_m !== undefined) return q.value_m.toFixed(3) + " m";
  return String(q.truth);
}

async function loadImage(params) {
  show("image");
  const id = params.get("id");
  status("loading " + id + "…");
  const d = await api("/api/image?id=" + encodeURIComponent(id));
  state.image = d;
  const s = d.scene;
  const back = params.get("back") || "#/grid";
  $("#back-link").href = back;
  const nav = (target, node) => {
    node.hidden = !target;
    if (target) node.href = "#/image?id=" + encodeURIComponent(target) + "&back=" + encodeURIComponent(back);
  };
  nav(d.prev, $("#prev-image"));
  nav(d.next, $("#next-image"));
  $("#image-title").textContent = s.image_id;
  $("#image-tags").replaceChildren(
    el("span", { class: "tag " + (s.canonicalized ? "ok" : "no"),
                 text: s.canonicalized ? "canonicalized" : "not canonicalized" }),
    el("span", { class: "tag", text: s.width + "x" + s.height }),
    s.source ? el("span", { class: "tag", title: s.source, text: s.source.split(/[\\/]/).pop() }) : null);
  $("#canon-note").textContent = s.canonicalized
    ? (s.camera_height !== null ? `camera ${s.camera_height.toFixed(2)} m above the ${s.support}` : "")
    : "not canonicalized: " + (s.canonical_reason || "no reason given") + " (3D view in the camera frame)";

  // photo, masks, boxes
  $("#photo-img").src = fileUrl(s.image);
  const masks = $("#photo-masks");
  masks.hidden = !s.masks;
  if (s.masks) masks.src = "/api/overlay?id=" + encodeURIComponent(s.image_id);
  $("#photo-hover").replaceChildren();
  const svg = $("#photo-svg");
  svg.setAttribute("viewBox", `0 0 ${s.width} ${s.height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.replaceChildren();
  const fontSize = Math.max(10, Math.round(Math.max(s.width, s.height) / 45));
  for (const o of d.objects) {
    if (o.object_id === null || !o.box2d) continue;
    const [x0, y0, x1, y1] = o.box2d;
    const g = svgEl("g", { "data-object": o.object_id, class: "obj" });
    g.append(svgEl("rect", { x: x0, y: y0, width: x1 - x0, height: y1 - y0, fill: "none", stroke: o.colour,
                             "stroke-width": Math.max(1, fontSize / 6), "stroke-dasharray": o.askable ? "" : "4 3",
                             "vector-effect": "non-scaling-stroke" }));
    const t = svgEl("text", { x: x0 + 2, y: Math.max(fontSize, y0 - 3), style: `font-size:${fontSize}px` });
    t.textContent = o.name || "(" + o.label + ")";
    g.append(t);
    svg.append(g);
  }
  // depth
  const depth = $("#depth-img");
  depth.parentElement.hidden = !s.depth;
  if (s.depth) depth.src = "/api/depth?id=" + encodeURIComponent(s.image_id);

  // QA table
  const names = {};
  for (const o of d.objects) if (o.object_id !== null) names[o.object_id] = o;
  const tbody = $("#qa-table tbody");
  tbody.replaceChildren();
  for (const q of d.qa) {
    const objCell = el("td", {});
    q.object_ids.forEach((oid) => {
      const o = names[oid];
      objCell.append(el("span", { class: "swatch", style: "background:" + (o ? o.colour : "#888") }), " ",
                     (o ? (o.name || o.label) : "#" + oid) + " ");
    });
    const tr = el("tr", { "data-objects": q.object_ids.join(","), "data-type": q.qa_type },
      el("td", { text: q.qa_type }), el("td", { text: q.question }), el("td", { text: q.answer }),
      el("td", { text: valueText(q) }), objCell);
    tr.addEventListener("mouseenter", () => highlight(q.object_ids));
    tr.addEventListener("mouseleave", () => highlight(null));
    tbody.append(tr);
  }
  if (!d.qa.length) tbody.append(el("tr", {}, el("td", { colspan: 5, class: "muted", text: "no QA for this image" })));

  // objects table
  const ob = $("#obj-table tbody");
  ob.replaceChildren();
  for (const o of d.objects) {
    const size = o.aabb_canon_size || o.aabb_cam_size;
    const tr = el("tr", { "data-object": o.object_id === null ? "" : o.object_id },
      el("td", {}, el("span", { class: "swatch", style: "background:" + o.colour })),
      el("td", { text: o.object_id === null ? "-" : o.object_id }), el("td", { text: o.name }),
      el("td", { text: o.label }), el("td", { text: size ? size.map((v) => v.toFixed(2)).join(" x ") : "" }),
      el("td", { text: o.num_points }), el("td", { text: o.drop_reason || "" }));
    if (o.object_id !== null) {
      tr.addEventListener("mouseenter", () => highlight([o.object_id]));
      tr.addEventListener("mouseleave", () => highlight(null));
    }
    ob.append(tr);
  }

  // 3D
  const plot = $("#plot3d");
  plot.dataset.ready = "0";
  await Plotly.react(plot, d.figure.data, d.figure.layout, { responsive: true, displaylogo: false });
  state.baseStyle = d.figure.data.map((t) => ({ size: t.marker ? t.marker.size : null,
                                                 opacity: t.marker ? t.marker.opacity : null,
                                                 width: t.line ? t.line.width : null }));
  plot.dataset.ready = "1";
  status("");
}

function highlight(ids) {
  const d = state.image;
  if (!d) return;
  const on = ids ? new Set(ids.map(Number)) : null;
  // 2D: per-object mask layers, boxes, table rows
  const hover = $("#photo-hover");
  hover.replaceChildren();
  $("#photo").classList.toggle("dim", !!on);
  if (on && d.scene.masks) {
    for (const oid of on) {
      hover.append(el("img", { alt: "", src: "/api/overlay?id=" + encodeURIComponent(d.scene.image_id) +
                                             "&object=" + oid }));
    }
  }
  for (const g of document.querySelectorAll("#photo-svg g.obj")) {
    g.style.opacity = !on || on.has(Number(g.dataset.object)) ? "1" : "0.15";
  }
  for (const tr of document.querySelectorAll("#obj-table tbody tr")) {
    tr.classList.toggle("hl", !!on && tr.dataset.object !== "" && on.has(Number(tr.dataset.object)));
  }
  // 3D: emphasise the traces of these objects, fade the rest
  const plot = $("#plot3d");
  if (plot.dataset.ready !== "1") return;
  const markers = [], msize = [], mopacity = [], lines = [], lwidth = [];
  d.figure.data.forEach((t, i) => {
    if (t.meta === undefined || t.meta === null) return;
    const base = state.baseStyle[i];
    const hit = !on || on.has(Number(t.meta));
    if (t.mode === "markers") {
      markers.push(i);
      msize.push(on && hit ? base.size * 2 : base.size);
      mopacity.push(!on ? base.opacity : hit ? 1 : 0.08);
    } else if (t.mode === "lines") {
      lines.push(i);
      lwidth.push(!on ? base.width : hit ? base.width * 2 : 1);
    }
  });
  if (markers.length) Plotly.restyle(plot, { "marker.size": msize, "marker.opacity": mopacity }, markers);
  if (lines.length) Plotly.restyle(plot, { "line.width": lwidth }, lines);
  plot.dataset.highlight = on ? [...on].join(",") : "";
}

// ---------------------------------------------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------------------------------------------
async function loadErrors(params) {
  show("errors");
  const page = Number(params.get("page") || 0);
  const d = await api("/api/errors?page=" + page);
  const tb = $("#err-table tbody");
  tb.replaceChildren();
  for (const r of d.items) tb.append(el("tr", {}, el("td", { text: r.item }), el("td", { text: r.stage }),
                                           el("td", { text: r.reason })));
  if (!d.items.length) tb.append(el("tr", {}, el("td", { colspan: 3, class: "muted", text: "no errors" })));
  $("#err-info").textContent = `page ${d.page + 1} of ${d.pages} · ${d.total} errors`;
  $("#prev-err").disabled = d.page <= 0;
  $("#next-err").disabled = d.page + 1 >= d.pages;
  state.errPage = d.page;
}

// ---------------------------------------------------------------------------------------------------------------
async function route() {
  const { path, params } = parseHash();
  try {
    if (path === "/image") await loadImage(params);
    else if (path === "/errors") await loadErrors(params);
    else await loadGrid(params);
  } catch (e) {
    status(String(e.message || e), true);
  }
}

async function init() {
  const meta = await api("/api/meta");
  state.meta = meta;
  $("#ds-name").textContent = meta.name;
  $("#ds-stats").textContent = `${meta.images} images · ${meta.qa} QA · ${meta.canonicalized} canonicalized · ` +
                               `${meta.errors} errors`;
  const sel = $("#f-qa-type");
  for (const t of meta.qa_types) {
    const n = meta.qa_by_type[t];
    sel.append(el("option", { value: t, text: n !== undefined ? `${t} (${n})` : t }));
  }
  for (const [, s] of FILTERS) {
    $(s).addEventListener("change", () => { location.hash = gridHash(0); });
  }
  $("#f-object").addEventListener("keydown", (e) => { if (e.key === "Enter") location.hash = gridHash(0); });
  $("#prev-page").addEventListener("click", () => { location.hash = gridHash(state.grid.page - 1); });
  $("#next-page").addEventListener("click", () => { location.hash = gridHash(state.grid.page + 1); });
  $("#prev-err").addEventListener("click", () => { location.hash = "#/errors?page=" + (state.errPage - 1); });
  $("#next-err").addEventListener("click", () => { location.hash = "#/errors?page=" + (state.errPage + 1); });
  $("#t-masks").addEventListener("change", (e) => { $("#photo-masks").style.display = e.target.checked ? "" : "none"; });
  $("#t-boxes").addEventListener("change", (e) => { $("#photo-svg").style.display = e.target.checked ? "" : "none"; });
  window.addEventListener("hashchange", route);
  await route();
  document.body.dataset.ready = "1";
}

init().catch((e) => status(String(e.message || e), true));
