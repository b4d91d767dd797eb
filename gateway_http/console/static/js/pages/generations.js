// Generations: the newest first, filtered by key, model, status and time; one
// generation's details (GET /v1/generations, GET /v1/generation?id=).
import { api, query } from "../api.js";
import { field, fmt, h, select, table } from "../dom.js";

const STATUSES = [["", "Any"], ["ok", "Succeeded"], ["error", "Failed"], ["cancelled", "Cancelled"]];

function utc(input) {
  return input.value ? Date.parse(`${input.value}Z`) / 1000 : undefined;
}

export async function render(section, { signal, me }) {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const model = h("input", { name: "model", value: params.get("model") || "", placeholder: "any" });
  const status = select("status", STATUSES, params.get("status") || "");
  const since = h("input", { name: "since", type: "datetime-local" });
  const until = h("input", { name: "until", type: "datetime-local" });
  const controls = [field("Model", model), field("Status", status), field("From (UTC)", since), field("To (UTC)", until)];
  let key = null;
  if (me.is_admin) {
    const keys = (await api("/keys", { signal })).data;
    key = select("key_id", [["", "Every key"], ...keys.map((k) => [k.id, `${k.name} (${k.label})`])], params.get("key_id") || "");
    controls.unshift(field("Key", key));
  }
  const form = h("form", { class: "filters", "aria-label": "Filters" }, controls, h("button", { type: "submit" }, "Filter"));
  const details = h("div", { class: "details", "aria-live": "polite" });
  const rows = h("tbody");
  const more = h("button", { type: "button", hidden: true }, "Load more");
  const listing = h(
    "table",
    {},
    h("caption", {}, "Generations, newest first"),
    h("thead", {}, h("tr", {}, ["Time (UTC)", "Model", "Provider", me.is_admin ? "Key" : null, "Status", "Tokens in / out", "Cost", "Latency", "Attempts", "Details"].filter(Boolean).map((t) => h("th", { scope: "col" }, t)))),
    rows,
  );
  section.append(form, details, listing, more);

  let next = null;
  const filters = () => ({ key_id: key?.value, model: model.value.trim(), status: status.value, since: utc(since) });

  async function load(reset) {
    const upper = reset ? utc(until) : next;
    const page = await api(`/generations${query({ ...filters(), until: upper, limit: 50 })}`, { signal });
    if (reset) rows.replaceChildren();
    for (const g of page.data) {
      const open = h("button", { type: "button", "aria-label": `Details of ${g.id}`, onclick: () => show(g.id) }, "Details");
      rows.append(
        h(
          "tr",
          { dataset: { id: g.id } },
          h("td", {}, g.created_at.replace("T", " ").slice(0, 19)),
          h("td", {}, g.model),
          h("td", {}, g.provider_name || "—"),
          me.is_admin ? h("td", {}, h("code", {}, g.key_id)) : null,
          h("td", {}, h("span", { class: `badge ${g.status === "ok" ? "ok" : "bad"}` }, g.status)),
          h("td", {}, `${fmt.int(g.tokens_prompt)} / ${fmt.int(g.tokens_completion)}`),
          h("td", {}, fmt.usd(g.total_cost)),
          h("td", {}, fmt.ms(g.latency)),
          h("td", {}, g.attempts),
          h("td", {}, open),
        ),
      );
    }
    if (!rows.children.length) rows.append(h("tr", {}, h("td", { colspan: 10 }, "No generations match.")));
    next = page.next_until;
    more.hidden = next == null;
  }

  async function show(id) {
    const g = (await api(`/generation${query({ id })}`, { signal })).data;
    const entries = [
      ["Id", g.id],
      ["Key", g.key_id],
      ["Model", g.model],
      ["Provider", g.provider_name || "—"],
      ["Upstream model", g.upstream_model || "—"],
      ["Kind", g.kind],
      ["Created", g.created_at],
      ["Status", g.status],
      ["Finish reason", g.finish_reason],
      ["Attempts", g.attempts],
      ["Prompt tokens", fmt.int(g.tokens_prompt)],
      ["Completion tokens", fmt.int(g.tokens_completion)],
      ["Cost", fmt.usd(g.total_cost)],
      ["Latency", fmt.ms(g.latency)],
      ["Generation time", fmt.ms(g.generation_time)],
      ["Streamed", g.streamed ? "yes" : "no"],
      ["Cancelled", g.cancelled ? "yes" : "no"],
    ];
    const close = h("button", { type: "button", onclick: () => details.replaceChildren() }, "Close");
    details.replaceChildren(
      h(
        "div",
        { class: "card", role: "region", "aria-labelledby": "gen-title" },
        h("h2", { id: "gen-title" }, `Generation ${g.id}`),
        h("dl", {}, entries.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
        close,
      ),
    );
    close.focus();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load(true);
  });
  more.addEventListener("click", () => load(false));
  await load(true);
}
