// Overview: requests, tokens, cost, error rate and latency over time, by model,
// provider or key, for 24 h, 7 d or 30 d (GET /v1/usage, summed by the database).
import { api, query } from "../api.js";
import { lineChart } from "../chart.js";
import { field, fmt, h, select } from "../dom.js";

const TOP = 6; // series drawn per chart; the rest are summed as "other"

function card(label, value) {
  return h("div", { class: "stat" }, h("span", { class: "stat-label" }, label), h("span", { class: "stat-value" }, value));
}

function topSeries(report, metric) {
  const shown = report.series.slice(0, TOP).map((one) => ({
    name: one.group || "all",
    values: one.points.map(metric),
  }));
  const rest = report.series.slice(TOP);
  if (rest.length) {
    shown.push({
      name: `other (${rest.length})`,
      values: rest[0].points.map((_, i) => rest.reduce((sum, one) => sum + (metric(one.points[i]) ?? 0), 0)),
    });
  }
  return shown;
}

export async function render(section, { signal, me }) {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const range = select("range", [["24h", "Last 24 hours"], ["7d", "Last 7 days"], ["30d", "Last 30 days"]], params.get("range") || "24h");
  const groups = [["", "Nothing (total)"], ["model", "Model"], ["provider", "Provider"]];
  if (me.is_admin) groups.push(["key", "Key"]);
  const groupBy = select("group_by", groups, params.get("group_by") || "");
  const controls = [field("Range", range), field("Group by", groupBy)];
  let keyFilter = null;
  const keyNames = new Map(); // key id -> name, to label series grouped by key
  if (me.is_admin) {
    const keys = (await api("/keys", { signal })).data;
    for (const k of keys) keyNames.set(k.id, k.name);
    keyFilter = select("key_id", [["", "Every key"], ...keys.map((k) => [k.id, `${k.name} (${k.label})`])], params.get("key_id") || "");
    controls.push(field("Key", keyFilter));
  }
  const form = h("form", { class: "filters", "aria-label": "Chart options" }, controls, h("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = `#/overview${query({ range: range.value, group_by: groupBy.value, key_id: keyFilter?.value })}`;
  });
  const body = h("div", { class: "overview" }, h("p", {}, "Loading…"));
  section.append(form, body);

  const report = await api(`/usage${query({ range: range.value, group_by: groupBy.value, key_id: keyFilter?.value })}`, { signal });
  if (groupBy.value === "key") {
    for (const one of report.series) one.group = keyNames.has(one.group) ? `${keyNames.get(one.group)} (${one.group})` : one.group;
  }
  const t = report.total;
  const xs = report.series[0]?.points.map((p) => p.start) ?? [];
  const bucket = report.bucket_seconds;
  const errorRate = (p) => (p.requests ? p.errors / p.requests : null);
  const stats = h(
    "div",
    { class: "stats", role: "group", "aria-label": "Totals" },
    card("Requests", fmt.int(t.requests)),
    card("Tokens", fmt.int(t.prompt_tokens + t.completion_tokens)),
    card("Cost", fmt.usd(t.cost)),
    card("Error rate", fmt.pct(t.requests ? t.errors / t.requests : null)),
    card("p50 latency", fmt.ms(t.p50_ms)),
    card("p95 latency", fmt.ms(t.p95_ms)),
  );
  if (!report.series.length) {
    body.replaceChildren(stats, h("p", { class: "empty" }, "No requests in this range."));
    return;
  }
  const charts = [
    lineChart({ title: "Requests", xs, bucketSeconds: bucket, format: fmt.int, series: topSeries(report, (p) => p.requests) }),
    lineChart({ title: "Tokens", xs, bucketSeconds: bucket, format: fmt.int, series: topSeries(report, (p) => p.prompt_tokens + p.completion_tokens) }),
    lineChart({ title: "Cost (USD)", xs, bucketSeconds: bucket, format: fmt.usd, series: topSeries(report, (p) => p.cost) }),
    lineChart({
      title: "Error rate",
      xs,
      bucketSeconds: bucket,
      format: fmt.pct,
      series: report.series.slice(0, TOP).map((one) => ({ name: one.group || "all", values: one.points.map(errorRate) })),
    }),
    lineChart({
      title: "Latency p50 / p95",
      xs,
      bucketSeconds: bucket,
      format: fmt.ms,
      series: report.series.slice(0, Math.ceil(TOP / 2)).flatMap((one) => [
        { name: `${one.group || "all"} p50`, values: one.points.map((p) => p.p50_ms) },
        { name: `${one.group || "all"} p95`, values: one.points.map((p) => p.p95_ms) },
      ]),
    }),
  ];
  body.replaceChildren(stats, h("div", { class: "charts" }, charts));
}
