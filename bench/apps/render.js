// The CPU-bound app of bench/threads.py: renders an HTML page of 400 table rows from data
// (template strings and escaping, as a server-side rendered page does), so that a request
// costs the server far more CPU than it costs the client and adding worker threads shows
// up as requests per second even when the client shares the CPUs.
const rows = Array.from({ length: 400 }, (_, i) => ({
  id: i,
  name: `item <${i}> & "co"`,
  price: (i * 7919 % 10007) / 100,
  tags: ["a", "b", "c"].slice(0, 1 + i % 3),
}));

const escapes = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const escape = (s) => String(s).replace(/[&<>"']/g, (c) => escapes[c]);

function render(n) {
  let html = `<!doctype html><title>Items ${n}</title><table>`;
  for (const r of rows) {
    html += `<tr><td>${r.id}</td><td>${escape(r.name)}</td><td>${r.price.toFixed(2)}</td>` +
      `<td>${r.tags.map(escape).join(", ")}</td></tr>`;
  }
  return html + "</table>";
}

let served = 0;
export default {
  fetch() {
    return new Response(render(++served), { headers: { "content-type": "text/html; charset=utf-8" } });
  },
};
