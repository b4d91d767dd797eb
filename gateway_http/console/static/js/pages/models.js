// Models and providers: the catalog with prices and endpoints, each endpoint's breaker
// state, the router's moving averages and the last hour's use (GET /v1/endpoints).
import { api } from "../api.js";
import { fmt, h, table } from "../dom.js";

export async function render(section, { signal, me }) {
  const [endpoints, models] = await Promise.all([api("/endpoints", { signal }), api("/models", { signal })]);
  const byId = new Map(models.data.map((m) => [m.id, m]));
  const rows = endpoints.data.map((e) => {
    const model = byId.get(e.model);
    const rate = e.requests ? e.errors / e.requests : null;
    return h(
      "tr",
      { dataset: { model: e.model, provider: e.provider } },
      h("th", { scope: "row" }, e.model),
      h("td", {}, (model?.capabilities || []).join(", ")),
      h("td", {}, e.provider),
      h("td", {}, h("code", {}, e.upstream_model)),
      h("td", {}, fmt.perMillion(e.pricing.prompt)),
      h("td", {}, fmt.perMillion(e.pricing.completion)),
      h("td", {}, e.pricing.request ? fmt.usd(e.pricing.request) : "—"),
      h("td", {}, e.context_length ? fmt.int(e.context_length) : "—"),
      h("td", {}, h("span", { class: `badge ${e.breaker === "closed" ? "ok" : "bad"}` }, e.breaker.replace("_", "-"))),
      h("td", {}, fmt.ms(e.latency_ms)),
      h("td", {}, e.throughput == null ? "—" : `${e.throughput.toFixed(1)} tok/s`),
      h("td", {}, `${fmt.int(e.requests)} (${fmt.pct(rate)} errors)`),
      h("td", {}, `${fmt.ms(e.p50_ms)} / ${fmt.ms(e.p95_ms)}`),
    );
  });
  section.append(
    h(
      "p",
      {},
      "Prices per million tokens (or per request). Latency and throughput are the router's moving averages; the last hour counts ",
      me.is_admin ? "every key's requests." : "your key's requests.",
    ),
    table(
      "Endpoints",
      ["Model", "Serves", "Provider", "Upstream model", "Prompt / M", "Completion / M", "Per request", "Context", "Breaker", "Latency", "Throughput", "Last hour", "p50 / p95"],
      rows,
    ),
  );
}
