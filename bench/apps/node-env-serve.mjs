// Node: the node:http adapter of node-serve.mjs around the json-env module, env built once
// from the process environment (GREETING, FLAGS as JSON).
import http from "node:http";
import app from "./json-env.js";

const env = { GREETING: process.env.GREETING, FLAGS: JSON.parse(process.env.FLAGS) };
const ctx = { waitUntil() {}, passThroughOnException() {} };
http.createServer(async (req, res) => {
  const url = `http://${req.headers.host}${req.url}`;
  const hasBody = req.method !== "GET" && req.method !== "HEAD";
  const request = new Request(url, {
    method: req.method,
    headers: req.headers,
    body: hasBody ? req : undefined,
    duplex: hasBody ? "half" : undefined,
  });
  const response = await app.fetch(request, env, ctx);
  res.writeHead(response.status, Object.fromEntries(response.headers));
  res.end(Buffer.from(await response.arrayBuffer()));
}).listen(Number(process.env.PORT), "127.0.0.1");
