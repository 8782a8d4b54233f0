// Node: node:http around the module's fetch, converting to and from Request/Response with
// Node's global fetch types (what a Workers-style adapter on Node does).
import http from "node:http";
import app from "./hello.js";

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
  const response = await app.fetch(request, {}, ctx);
  res.writeHead(response.status, Object.fromEntries(response.headers));
  res.end(Buffer.from(await response.arrayBuffer()));
}).listen(Number(process.env.PORT), "127.0.0.1");
