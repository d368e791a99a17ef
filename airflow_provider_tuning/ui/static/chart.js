// A small SVG line chart for loss curves: several series, epoch boundaries, EMA smoothing,
// log scale and a hover read-out. No dependencies.
(function () {
  "use strict";
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = ["#017cee", "#e8590c", "#2f9e44", "#ae3ec9", "#c92a2a", "#1098ad", "#f08c00", "#5c7cfa"];

  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const key in attrs) node.setAttribute(key, attrs[key]);
    if (parent) parent.appendChild(node);
    return node;
  }

  function ticks(lo, hi, count) {
    if (!(hi > lo)) return [lo];
    const raw = (hi - lo) / count;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
    return out;
  }

  function smooth(values, weight) {
    if (!weight) return values.slice();
    let last = values.length ? values[0] : 0;
    return values.map((v) => (last = last * weight + (1 - weight) * v));
  }

  function fmt(v) {
    if (v === 0) return "0";
    const a = Math.abs(v);
    return a >= 1000 || a < 0.01 ? v.toExponential(1) : +v.toPrecision(3) + "";
  }

  /**
   * Draw series into container (replacing its content).
   * series: [{label, points: [{step, epoch, loss}]}]; opts: {smoothing, log, epochs}
   */
  function draw(container, series, opts) {
    opts = opts || {};
    container.textContent = "";
    container.classList.add("chart");
    const withData = series.filter((s) => s.points.length);
    if (!withData.length) {
      const p = document.createElement("div");
      p.className = "empty";
      p.textContent = opts.emptyText || "No loss values reported yet.";
      container.appendChild(p);
      return;
    }
    const W = 900, H = 320, L = 56, R = 16, T = 12, B = 34;
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img" }, container);
    svg.setAttribute("aria-label", "loss per step");
    const tip = document.createElement("div");
    tip.className = "tip";
    container.appendChild(tip);
    const yv = (v) => (opts.log ? Math.log10(Math.max(v, 1e-12)) : v);
    let xmin = Infinity, xmax = -Infinity, ymin = Infinity, ymax = -Infinity;
    for (const s of withData) for (const p of s.points) {
      xmin = Math.min(xmin, p.step); xmax = Math.max(xmax, p.step);
      ymin = Math.min(ymin, yv(p.loss)); ymax = Math.max(ymax, yv(p.loss));
    }
    if (xmax === xmin) { xmin -= 1; xmax += 1; }
    if (ymax === ymin) { ymin -= 0.5; ymax += 0.5; }
    const pad = (ymax - ymin) * 0.05; ymin -= pad; ymax += pad;
    if (!opts.log && ymin < 0 && withData.every((s) => s.points.every((p) => p.loss >= 0))) ymin = 0;
    const X = (x) => L + ((x - xmin) / (xmax - xmin)) * (W - L - R);
    const Y = (y) => T + (1 - (y - ymin) / (ymax - ymin)) * (H - T - B);
    for (const t of ticks(ymin, ymax, 5)) {
      el("line", { class: "gridline", x1: L, x2: W - R, y1: Y(t), y2: Y(t) }, svg);
      el("text", { x: L - 6, y: Y(t) + 4, "text-anchor": "end" }, svg).textContent = opts.log ? fmt(Math.pow(10, t)) : fmt(t);
    }
    for (const t of ticks(xmin, xmax, 8)) {
      if (t !== Math.round(t)) continue;
      el("text", { x: X(t), y: H - B + 16, "text-anchor": "middle" }, svg).textContent = t;
    }
    el("text", { x: (L + W - R) / 2, y: H - 3, "text-anchor": "middle" }, svg).textContent = "step";
    el("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }, svg);
    el("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }, svg);
    // Epoch boundaries of the first series: where the epoch number changes.
    const first = withData[0].points;
    for (let i = 1; i < first.length; i++) {
      if (first[i].epoch !== first[i - 1].epoch) {
        const x = X((first[i - 1].step + first[i].step) / 2);
        el("line", { class: "epoch", x1: x, x2: x, y1: T, y2: H - B }, svg);
        el("text", { x: x + 3, y: T + 10 }, svg).textContent = "epoch " + first[i].epoch;
      }
    }
    const legend = document.createElement("div");
    legend.className = "legend";
    series.forEach((s, i) => {
      const color = COLORS[i % COLORS.length];
      s.color = color;
      const item = document.createElement("span");
      item.innerHTML = `<i style="background:${color}"></i>`;
      item.appendChild(document.createTextNode(`${s.label} (${s.points.length} steps)`));
      legend.appendChild(item);
      if (!s.points.length) return;
      const values = smooth(s.points.map((p) => p.loss), opts.smoothing || 0);
      const d = (vals) => s.points.map((p, j) => `${j ? "L" : "M"}${X(p.step).toFixed(1)},${Y(yv(vals[j])).toFixed(1)}`).join("");
      if (opts.smoothing) el("path", { class: "raw", d: d(s.points.map((p) => p.loss)), stroke: color }, svg);
      const path = el("path", { class: "series", d: d(values), stroke: color, "data-points": s.points.length }, svg);
      path.setAttribute("data-label", s.label);
    });
    container.appendChild(legend);
    const cursor = el("line", { class: "axis", x1: 0, x2: 0, y1: T, y2: H - B, visibility: "hidden" }, svg);
    svg.addEventListener("mousemove", (ev) => {
      const box = svg.getBoundingClientRect();
      const step = xmin + ((ev.clientX - box.left) / box.width * W - L) / (W - L - R) * (xmax - xmin);
      const rows = [];
      for (const s of withData) {
        let best = s.points[0];
        for (const p of s.points) if (Math.abs(p.step - step) < Math.abs(best.step - step)) best = p;
        rows.push(`<div><i style="display:inline-block;width:8px;height:8px;background:${s.color};margin-right:4px"></i>` +
          `step ${best.step} · epoch ${best.epoch} · loss ${best.loss.toFixed(4)}</div>`);
      }
      cursor.setAttribute("x1", X(step)); cursor.setAttribute("x2", X(step));
      cursor.setAttribute("visibility", "visible");
      tip.innerHTML = rows.join("");
      tip.style.display = "block";
      const left = ev.clientX - container.getBoundingClientRect().left;
      tip.style.left = Math.min(left + 12, container.clientWidth - tip.offsetWidth - 4) + "px";
      tip.style.top = "14px";
    });
    svg.addEventListener("mouseleave", () => { tip.style.display = "none"; cursor.setAttribute("visibility", "hidden"); });
  }

  window.TuningChart = { draw: draw, colors: COLORS };
})();
