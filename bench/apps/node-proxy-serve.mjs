// Node: node:http around the proxy module's fetch, streaming both bodies (Readable.fromWeb and
// the request as a web stream), as a streaming Workers-style adapter on Node does.
import http from "node:http";
import { Readable } from "node:stream";
import app from "./proxy.js";

const ctx = { waitUntil() {}, passThroughOnException() {} };
http.createServer(async (req, res) => {
  const url = `http://${req.headers.host}${req.url}`;
  const hasBody = req.method !== "GET" && req.method !== "HEAD";
  const request = new Request(url, {
    method: req.method,
    headers: req.headers,
    body: hasBody ? Readable.toWeb(req) : undefined,
    duplex: hasBody ? "half" : undefined,
  });
  const response = await app.fetch(request, {}, ctx);
  res.writeHead(response.status, Object.fromEntries(response.headers));
  if (response.body) Readable.fromWeb(response.body).pipe(res);
  else res.end();
}).listen(Number(process.env.PORT), "127.0.0.1");
