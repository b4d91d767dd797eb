// A small SVG line chart: evenly spaced buckets, one line per series, a y axis from
// zero, a legend, and the numbers in a table for screen readers and keyboards.
import { h } from "./dom.js";

const NS = "http://www.w3.org/2000/svg";
const COLOURS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563"];
const W = 640;
const H = 220;
const PAD = { left: 76, right: 12, top: 12, bottom: 28 };

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  for (const child of children) el.append(child);
  return el;
}

function niceMax(value) {
  if (!(value > 0)) return 1;
  const step = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * step >= value) return m * step;
  return 10 * step;
}

function label(t, bucketSeconds) {
  const d = new Date(t * 1000).toISOString();
  return bucketSeconds >= 86400 ? d.slice(5, 10) : d.slice(5, 16).replace("T", " ");
}

let charts = 0;

// series: [{name, values: [number|null, ...]}]; xs: bucket starts (unix seconds).
export function lineChart({ title, xs, series, format, bucketSeconds }) {
  const id = `chart${++charts}`;
  const width = W - PAD.left - PAD.right;
  const height = H - PAD.top - PAD.bottom;
  const all = series.flatMap((one) => one.values.filter((v) => v != null));
  const top = niceMax(Math.max(0, ...all));
  const x = (i) => PAD.left + (xs.length <= 1 ? width / 2 : (i * width) / (xs.length - 1));
  const y = (v) => PAD.top + height - (v / top) * height;

  const svg = s("svg", {
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-labelledby": `${id}-title`,
    class: "chart",
  });
  svg.append(s("title", { id: `${id}-title` }, `${title}: ${series.length} series, ${xs.length} buckets`));
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    svg.append(
      s("line", { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: "grid" }),
      s("text", { x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" }, format(v)),
    );
  }
  const every = Math.max(1, Math.ceil(xs.length / 6));
  xs.forEach((t, i) => {
    if (i % every === 0) {
      svg.append(s("text", { x: x(i), y: H - 8, "text-anchor": "middle", class: "tick" }, label(t, bucketSeconds)));
    }
  });
  series.forEach((one, n) => {
    const colour = COLOURS[n % COLOURS.length];
    let d = "";
    one.values.forEach((v, i) => {
      if (v == null) return;
      d += `${d && one.values[i - 1] != null ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
    });
    if (d) svg.append(s("path", { d, stroke: colour, class: "line", "data-series": one.name }));
    one.values.forEach((v, i) => {
      // Zeros get no dot (a quiet day is a flat line), unless a lone value would not show.
      const alone = one.values[i - 1] == null && one.values[i + 1] == null;
      if (v == null || (v === 0 && !alone)) return;
      const dot = s("circle", { cx: x(i), cy: y(v), r: 2.5, fill: colour });
      dot.append(s("title", {}, `${one.name || title} ${label(xs[i], bucketSeconds)}: ${format(v)}`));
      svg.append(dot);
    });
  });

  const legend = h(
    "ul",
    { class: "legend" },
    series.map((one, n) =>
      h("li", {}, h("span", { class: "swatch", style: null, dataset: { colour: n % COLOURS.length } }), one.name || title),
    ),
  );
  const data = h(
    "details",
    { class: "chart-data" },
    h("summary", {}, `${title}: data`),
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "bucket"), series.map((one) => h("th", { scope: "col" }, one.name || title)))),
      h(
        "tbody",
        {},
        xs.map((t, i) =>
          h("tr", {}, h("th", { scope: "row" }, label(t, bucketSeconds)), series.map((one) => h("td", {}, one.values[i] == null ? "—" : format(one.values[i])))),
        ),
      ),
    ),
  );
  return h("figure", { class: "card chart-card", "aria-labelledby": `${id}-cap` }, h("figcaption", { id: `${id}-cap` }, title), svg, legend, data);
}
