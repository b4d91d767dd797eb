// Building the DOM from data, always as text (never as markup): see the CSP note in
// gateway_http/console/__init__.py.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

let fieldIds = 0;

// A labelled form control: <label for=...> + the control (inputs, selects, textareas).
export function field(label, control, hint) {
  const id = control.id || `f${++fieldIds}`;
  control.id = id;
  const parts = [h("label", { for: id }, label), control];
  if (hint) {
    const hintId = `${id}-hint`;
    control.setAttribute("aria-describedby", hintId);
    parts.push(h("small", { id: hintId, class: "hint" }, hint));
  }
  return h("div", { class: "field" }, parts);
}

export function select(name, options, value) {
  return h(
    "select",
    { name },
    options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)),
  );
}

export function say(message) {
  const status = document.getElementById("status");
  status.textContent = message;
}

export function table(caption, headers, rows) {
  return h(
    "table",
    {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows),
  );
}

export const fmt = {
  int: (n) => (n ?? 0).toLocaleString("en-US"),
  // Small amounts keep two significant digits ($0.0000075), larger ones cents.
  usd: (n) => (n == null ? "—" : n === 0 ? "$0" : n < 1 ? `$${Number(n.toPrecision(2))}` : `$${n.toFixed(2)}`),
  ms: (n) => (n == null ? "—" : n >= 1000 ? `${(n / 1000).toFixed(2)} s` : `${Math.round(n)} ms`),
  pct: (n) => (n == null ? "—" : `${(n * 100).toFixed(1)} %`),
  time: (t) => (t == null ? "—" : new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19)),
  perMillion: (n) => (n ? `$${(n * 1e6).toFixed(2)}` : "—"),
};
