#!/usr/bin/env python3
"""Outbound fetch() end to end: apps served by nano-dp fetch from upstream.py's origin server
and report what they saw as JSON. Covers every body type and method, headers and
getSetCookie(), redirects (each status, limits, modes, method rewriting, credentials across
origins), response fields, aborts (before, during the head, during the body, a timeout
signal), broken and slow upstreams, 200 concurrent fetches, the subrequest limit, a proxy
(`fetch(request)`), a request that ends while its fetch runs, 256 MiB streamed each way with
flat memory, content decoding and network errors.

Expected behaviour is the Fetch Standard's (https://fetch.spec.whatwg.org/, "HTTP-redirect
fetch" for redirects) as server runtimes apply it (Deno, workerd): redirect:"manual" returns
the 3xx itself (not an opaque-redirect), no CORS, no cookie store."""
import gzip
import json
import os
import socket
import struct
import threading
import time
import urllib.parse
import zlib

from nanotest import (Conn, ConfigServer, Server, build_request, check, eq, expect, run,
                      SANITIZED)
from upstream import GZIP_TEXT, Upstream, closed_port

MIB = 1024 * 1024
BIG = 64 * MIB if SANITIZED else 256 * MIB

APP = r"""
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const J = (v, status = 200) => new Response(JSON.stringify(v), {
  status, headers: { 'content-type': 'application/json' } });
const E = (e) => ({ error: true, name: e && e.name, message: String(e && e.message),
  isTypeError: e instanceof TypeError, isDOMException: e instanceof DOMException,
  same: e === globalThis.lastReason });
const streamOf = (...parts) => new ReadableStream({
  start(c) { for (const p of parts) c.enqueue(new TextEncoder().encode(p)); c.close(); } });
async function settle(p) { try { return await p; } catch (e) { return E(e); } }
// flood holds its fetches until the test releases it (or its hold time passes).
let floodRelease = () => {};
async function echo(url, init) {
  try {
    const r = await fetch(url, init);
    const out = { status: r.status, url: r.url, redirected: r.redirected };
    // (Not by the Content-Type header: a fetched response's header names keep the
    // upstream's case, checked in headers_from_upstream_are_case_insensitive.)
    out.text = await r.text();
    try { out.echo = JSON.parse(out.text); delete out.text; } catch {}
    return out;
  } catch (e) { return E(e); }
}
// A header of a fetched response looked up by its lowercase name, whatever case it has.
const hget = (h, name) => {
  for (const [k, v] of h) if (k.toLowerCase() === name) return v;
  return null;
};
const hdr = (echoed, name) => {
  if (!echoed || !echoed.echo) return undefined;
  const v = echoed.echo.headers.filter(([k]) => k.toLowerCase() === name).map(([, v]) => v);
  return v.length ? v.join(' | ') : null;
};

const cases = {
  async bodies(up) {
    const out = {};
    const u8 = new Uint8Array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const fd = new FormData();
    fd.append('field', 'value');
    fd.append('file', new Blob(['file-bytes'], { type: 'text/x-file' }), 'f.txt');
    const bodies = {
      string: 'h\u00e9llo',
      arraybuffer: u8.buffer,
      uint8: u8.subarray(2, 6),
      uint16: new Uint16Array([0x4241, 0x4443]),
      dataview: new DataView(u8.buffer, 3, 4),
      blob: new Blob(['blob', '-', 'bytes'], { type: 'application/x-test' }),
      formdata: fd,
      urlsearchparams: new URLSearchParams({ a: '1', b: 'x y' }),
      stream: streamOf('chunk1-', 'chunk2-', 'chunk3'),
    };
    for (const [k, body] of Object.entries(bodies)) {
      const init = { method: 'POST', body };
      if (k === 'stream') init.duplex = 'half';
      const r = await echo(up + '/echo', init);
      out[k] = r.error ? r : { body: r.echo.body, len: r.echo.body_len, chunked: r.echo.chunked,
        cl: r.echo.content_length, ct: hdr(r, 'content-type') };
    }
    // A stream body without duplex: 'half' (the standard's Request constructor throws).
    out.streamNoDuplex = await settle(fetch(up + '/echo', { method: 'POST',
      body: streamOf('x') }).then((r) => r.status));
    // Empty bodies; and a POST without a body says Content-Length: 0 (Fetch Standard,
    // HTTP-network-or-cache fetch step 8.4).
    const es = await echo(up + '/echo', { method: 'POST', body: streamOf(), duplex: 'half' });
    out.emptyStream = { body: es.echo.body, chunked: es.echo.chunked };
    const e0 = await echo(up + '/echo', { method: 'POST', body: '' });
    out.emptyString = { body: e0.echo.body, cl: e0.echo.content_length };
    const nb = await echo(up + '/echo', { method: 'POST' });
    out.postNoBody = { cl: nb.echo.content_length, chunked: nb.echo.chunked };
    // A stream chunk that is not a Uint8Array: a TypeError (Fetch "transmit body").
    out.stringChunk = await settle(fetch(up + '/echo', { method: 'POST', duplex: 'half',
      body: new ReadableStream({ start(c) { c.enqueue('not bytes'); c.close(); } }) })
      .then((r) => r.text()));
    // A stream that errors: the fetch rejects.
    out.erroredStream = await settle(fetch(up + '/echo', { method: 'POST', duplex: 'half',
      body: new ReadableStream({ pull(c) { c.error(new Error('source failed')); } }) })
      .then((r) => r.text()));
    // A Request object with a body, fetched as it is.
    const rq = new Request(up + '/echo', { method: 'PUT', body: 'from a Request' });
    const r2 = await echo(rq);
    out.request = { method: r2.echo.method, body: r2.echo.body };
    out.requestBodyUsed = rq.bodyUsed;
    out.reuse = await settle(fetch(rq).then((r) => r.status));
    return out;
  },

  async methods(up) {
    const out = {};
    for (const m of ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'PURGE', 'post',
                     'patch', 'delete']) {
      const init = { method: m };
      if (!['GET', 'DELETE', 'OPTIONS', 'delete'].includes(m)) init.body = 'b';
      const r = await echo(up + '/echo', init);
      out[m] = r.error ? r : { method: r.echo.method, body: r.echo.body };
    }
    const h = await fetch(up + '/echo', { method: 'HEAD' });
    out.HEAD = { status: h.status, body: h.body, text: await h.text(),
      cl: hget(h.headers, 'content-length') };
    for (const m of ['CONNECT', 'TRACE', 'TRACK', 'bad method', '']) {
      out['forbidden:' + m] = await settle(fetch(up + '/echo', { method: m }).then((r) => r.status));
    }
    out.getWithBody = await settle(fetch(up + '/echo', { method: 'GET', body: 'x' }));
    out.headWithBody = await settle(fetch(up + '/echo', { method: 'HEAD', body: 'x' }));
    return out;
  },

  async headers(up) {
    const out = {};
    const h = new Headers({ 'X-One': '1', 'x-multi': 'a' });
    h.append('X-Multi', 'b');
    const r = await echo(up + '/echo', { headers: h });
    out.one = hdr(r, 'x-one');
    out.multi = hdr(r, 'x-multi');
    out.ua = hdr(r, 'user-agent');
    out.accept = hdr(r, 'accept');
    out.acceptEncoding = hdr(r, 'accept-encoding');
    out.host = hdr(r, 'host');
    const r2 = await echo(up + '/echo', { headers: { 'user-agent': 'mine/1', accept: 'text/x',
      'accept-encoding': 'identity' } });
    out.ownUa = hdr(r2, 'user-agent');
    out.ownAccept = hdr(r2, 'accept');
    out.ownAcceptEncoding = hdr(r2, 'accept-encoding');
    const c = await fetch(up + '/set-cookie');
    out.getSetCookie = c.headers.getSetCookie();
    out.setCookieGet = c.headers.get('set-cookie');
    out.vary = c.headers.get('vary');
    out.immutable = (() => { try { c.headers.set('x', 'y'); return 'mutable'; }
      catch (e) { return e.name; } })();
    await c.text();
    const e = await fetch(up + '/echo?x=1#frag');
    out.echoUrl = e.url;
    out.ctype = e.headers.get('content-type');
    out.type = e.type;
    out.bodyUsedBefore = e.bodyUsed;
    out.target = (await e.json()).target;
    out.bodyUsedAfter = e.bodyUsed;
    return out;
  },

  async redirects(up, q) {
    const up2 = q.get('up2');
    const out = {};
    const post = (s, extra = '') => echo(`${up}/redirect/${s}/1${extra}`, {
      method: 'POST', body: 'payload', headers: { 'content-type': 'text/x-payload',
        'x-keep': 'kept' } });
    for (const s of [301, 302, 303, 307, 308]) {
      const r = await post(s);
      out['post' + s] = r.error ? r : { status: r.status, method: r.echo.method,
        body: r.echo.body, ct: hdr(r, 'content-type'), keep: hdr(r, 'x-keep'),
        redirected: r.redirected, url: r.url, cl: r.echo.content_length };
    }
    for (const s of [301, 302, 303, 307]) {
      const r = await echo(`${up}/redirect/${s}/1`, { method: 'PUT', body: 'payload' });
      out['put' + s] = r.error ? r : { method: r.echo.method, body: r.echo.body };
    }
    const h = await settle(fetch(`${up}/redirect/303/1`, { method: 'HEAD' }).then((r) =>
      ({ status: r.status, url: r.url })));
    out.head303 = h;
    for (const loc of ['rel', 'abs', 'dots']) {
      const r = await echo(`${up}/redirect/302/3?loc=${loc}`);
      out['chain3' + loc] = r.error ? r : { status: r.status, url: r.url, path: r.echo.path };
    }
    out.error = await echo(`${up}/redirect/301/1`, { redirect: 'error' });
    const m = await fetch(`${up}/redirect/302/1`, { redirect: 'manual' });
    out.manual = { status: m.status, location: hget(m.headers, 'location'), url: m.url,
      redirected: m.redirected, text: await m.text() };
    const noloc = await fetch(`${up}/redirect-noloc/302`);
    out.noLocation = { status: noloc.status, text: await noloc.text() };
    // Across origins: Authorization dropped, other headers kept; same origin keeps it.
    const cross = await echo(`${up}/redirect/302/0?to=${encodeURIComponent(up2 + '/echo')}`,
      { headers: { authorization: 'Bearer s3cret', 'x-other': 'o' } });
    out.cross = cross.error ? cross : { auth: hdr(cross, 'authorization'),
      other: hdr(cross, 'x-other'), url: cross.url };
    const same = await echo(`${up}/redirect/302/1`, { headers: { authorization: 'Bearer s3cret' } });
    out.sameAuth = hdr(same, 'authorization');
    // Back to the first origin after a detour: still dropped (it was removed from the request).
    out.badScheme = await echo(`${up}/redirect/302/0?to=${encodeURIComponent('ftp://x.test/')}`);
    out.dataScheme = await echo(`${up}/redirect/302/0?to=${encodeURIComponent('data:,hi')}`);
    // A stream body cannot be sent again: 307 fails, 303 (turned into a GET) goes on.
    out.stream307 = await echo(`${up}/redirect/307/1`, { method: 'POST', duplex: 'half',
      body: streamOf('stream-body') });
    const s303 = await echo(`${up}/redirect/303/1`, { method: 'POST', duplex: 'half',
      body: streamOf('stream-body') });
    out.stream303 = s303.error ? s303 : { method: s303.echo.method, body: s303.echo.body };
    return out;
  },

  async headerCase(up) {
    // The upstream writes "Content-Type", "Set-Cookie", "X-Upstream": Headers names are
    // case-insensitive and iterate lowercased (Fetch Standard, "sort and combine").
    const r = await fetch(up + '/set-cookie');
    await r.text();
    const e = await fetch(up + '/echo');
    await e.text();
    return {
      names: [...r.headers].map(([k]) => k),
      getLower: e.headers.get('content-type'),
      getUpper: e.headers.get('CONTENT-TYPE'),
      getAsSent: e.headers.get('Content-Type'),
      has: e.headers.has('x-upstream'),
      getSetCookie: r.headers.getSetCookie(),
      copied: new Headers(e.headers).get('content-type'),
    };
  },

  async redirectLimits(up) {
    // 21 + 22 hops: within the single-app default of 50 subrequests.
    const r20 = await echo(`${up}/redirect/302/20`);
    const over20 = await echo(`${up}/redirect/302/21`);
    return { max20: r20.error ? r20 : { status: r20.status, path: r20.echo.path,
      redirected: r20.redirected }, over20 };
  },

  async statuses(up) {
    const out = {};
    for (const [path, s] of [['/status/404', 404], ['/status/299?reason=Custom%20Reason', 299],
                             ['/status/500', 500], ['/status/204', 204], ['/status/599', 599],
                             ['/status/201', 201]]) {
      const r = await fetch(up + path);
      out[s] = { status: r.status, ok: r.ok, statusText: r.statusText, nullBody: r.body === null,
        text: await r.text() };
    }
    return out;
  },

  async abort(up) {
    const out = {};
    // Already aborted: rejects with the signal's reason; nothing is sent.
    const c0 = new AbortController();
    c0.abort();
    out.before = await settle(fetch(up + '/echo?before=1', { signal: c0.signal }));
    const c1 = new AbortController();
    globalThis.lastReason = new Error('my reason');
    c1.abort(globalThis.lastReason);
    out.beforeReason = await settle(fetch(up + '/echo?before=2', { signal: c1.signal }));
    // While waiting for the head.
    const c2 = new AbortController();
    const t0 = Date.now();
    setTimeout(() => c2.abort(), 200);
    out.duringHead = await settle(fetch(up + '/hang?id=head', { signal: c2.signal }));
    out.duringHeadMs = Date.now() - t0;
    // During the body: the body stream errors with the signal's reason.
    const c3 = new AbortController();
    const r = await fetch(up + '/slow?n=20&delay=0.1', { signal: c3.signal });
    const reader = r.body.getReader();
    const first = await reader.read();
    out.firstChunk = first.done ? null : first.value.byteLength;
    globalThis.lastReason = new Error('body reason');
    c3.abort(globalThis.lastReason);
    out.duringBody = await settle(reader.read());
    out.duringBodyClosed = await settle(reader.closed);
    // Abort after the body was read fully: nothing happens.
    const c4 = new AbortController();
    const r4 = await fetch(up + '/echo?after=1', { signal: c4.signal });
    out.afterText = (await r4.text()).length > 0;
    c4.abort();
    // text() while the abort comes.
    const c5 = new AbortController();
    const r5 = await fetch(up + '/slow?n=20&delay=0.1', { signal: c5.signal });
    setTimeout(() => c5.abort(), 150);
    out.textDuringAbort = await settle(r5.text());
    // AbortSignal.timeout
    const t1 = Date.now();
    out.timeout = await settle(fetch(up + '/hang?id=timeout', { signal: AbortSignal.timeout(300) }));
    out.timeoutMs = Date.now() - t1;
    // Request signal on a Request object.
    const c6 = new AbortController();
    const rq = new Request(up + '/hang?id=request', { signal: c6.signal });
    setTimeout(() => c6.abort(), 100);
    out.requestSignal = await settle(fetch(rq));
    return out;
  },

  async broken(up) {
    const out = {};
    const r = await fetch(up + '/reset');
    out.resetStatus = r.status;
    out.resetBody = await settle(r.arrayBuffer().then((b) => b.byteLength));
    const d = await fetch(up + '/drop-after-head');
    out.dropStatus = d.status;
    out.dropBody = await settle(d.text().then((t) => t.length));
    out.resetBeforeHead = await settle(fetch(up + '/reset-before-head'));
    out.bigHead = await settle(fetch(up + '/headers-big').then((r) => r.status));
    const t0 = Date.now();
    const s = await fetch(up + '/slow?n=5&delay=0.2');
    out.slowText = await s.text();
    out.slowMs = Date.now() - t0;
    // Canceling the body lets the upstream connection go.
    const c = await fetch(up + '/slow?n=100&delay=0.05');
    const reader = c.body.getReader();
    await reader.read();
    await reader.cancel();
    out.afterwards = (await echo(up + '/echo')).status;
    return out;
  },

  async protocol(up) {
    const out = {};
    const h = await fetch(up + '/early-hints');
    out.hints = { status: h.status, final: hget(h.headers, 'x-final'),
      link: hget(h.headers, 'link'), text: await h.text() };
    out.garbage = await settle(fetch(up + '/garbage').then((r) => r.status));
    out.eof = await settle(fetch(up + '/eof').then((r) => r.text()).then((t) => t.length));
    out.head150 = await settle(fetch(up + '/headers-big?n=150').then(async (r) => {
      await r.text();
      return { status: r.status, n: [...r.headers].length };
    }));
    return out;
  },

  async uploadEnd(up) {
    const out = {};
    // The upstream answers while an endless upload goes on: the fetch resolves, the upload
    // stops and its stream is canceled.
    let canceled = false;
    const endless = new ReadableStream({
      pull(c) { c.enqueue(new Uint8Array(65536)); },
      cancel() { canceled = true; },
    });
    const t0 = Date.now();
    out.early = await settle(fetch(up + '/early-response', { method: 'POST', body: endless,
      duplex: 'half', signal: AbortSignal.timeout(8000) })
      .then(async (r) => ({ status: r.status, text: await r.text() })));
    out.earlyMs = Date.now() - t0;
    for (let i = 0; i < 20 && !canceled; i++) await sleep(100);
    out.earlyCanceled = canceled;
    // An abort during a streamed upload cancels the body stream with the reason.
    const c = new AbortController();
    let reason = null;
    const slow = new ReadableStream({
      async pull(ctl) { await sleep(20); ctl.enqueue(new Uint8Array(1024)); },
      cancel(r) { reason = r && r.name; },
    });
    setTimeout(() => c.abort(), 200);
    out.abortUpload = await settle(fetch(up + '/count', { method: 'POST', body: slow,
      duplex: 'half', signal: c.signal }));
    for (let i = 0; i < 20 && reason === null; i++) await sleep(100);
    out.abortUploadCancel = reason;
    return out;
  },

  async consume(up) {
    const out = {};
    // clone(): both branches get every byte.
    const r = await fetch(up + '/bytes?n=1048576&chunk=65536');
    const c = r.clone();
    const [a, b] = await Promise.all([r.arrayBuffer(), c.arrayBuffer()]);
    const sum = (buf) => new Uint8Array(buf).reduce((x, y) => (x + y) % 65521, 0);
    out.clone = [a.byteLength, b.byteLength, sum(a) === sum(b)];
    // A BYOB reader on the byte stream.
    const r2 = await fetch(up + '/bytes?n=100000');
    const reader = r2.body.getReader({ mode: 'byob' });
    let n = 0, reads = 0;
    for (;;) {
      const { value, done } = await reader.read(new Uint8Array(8192));
      if (done) break;
      n += value.byteLength;
      reads++;
    }
    out.byob = { n, atMost8k: reads >= 13 };
    // for await over the body, blob(), and a body left unread.
    let m = 0;
    for await (const chunk of (await fetch(up + '/bytes?n=300000&chunked=1')).body) m += chunk.byteLength;
    out.forAwait = m;
    out.blob = (await (await fetch(up + '/bytes?n=5000')).blob()).size;
    await fetch(up + '/bytes?n=10485760'); // never read: paused, then dropped
    // Sequential fetches reuse a kept-alive connection.
    for (let i = 0; i < 20; i++) await (await fetch(up + '/echo?seq=' + i)).text();
    return out;
  },

  async errors(up, q) {
    const out = {};
    out.refused = await settle(fetch(`http://127.0.0.1:${q.get('closed')}/`));
    out.dns = await settle(fetch('http://no-such-host.invalid/'));
    out.scheme = await settle(fetch('ftp://127.0.0.1/'));
    out.fileScheme = await settle(fetch('file:///etc/passwd'));
    out.badUrl = await settle(fetch('http://'));
    out.relative = await settle(fetch('/relative'));
    out.noArgs = await settle(fetch());
    out.credentialsInUrl = await settle(fetch(up.replace('http://', 'http://u:p@') + '/echo')
      .then((r) => r.status));
    return out;
  },

  async decoding(up) {
    const out = {};
    const g = await fetch(up + '/gzip');
    out.gzip = { text: await g.text(), ce: hget(g.headers, 'content-encoding') };
    const xg = await fetch(up + '/gzip?coding=x-gzip');
    out.xgzip = (await xg.text()).length;
    const d = await fetch(up + '/deflate');
    out.deflate = { text: await d.text(), ce: hget(d.headers, 'content-encoding') };
    const t = await fetch(up + '/gzip?bad=truncated');
    out.truncated = await settle(t.text().then((x) => x.length));
    const h = await fetch(up + '/gzip', { method: 'HEAD' });
    out.head = { status: h.status, body: h.body };
    return out;
  },

  async concurrent(up, q) {
    const n = Number(q.get('n') || 200);
    const all = [];
    for (let i = 0; i < n; i++) {
      all.push(fetch(`${up}/echo?i=${i}`, { method: 'POST', body: 'n' + i })
        .then((r) => r.json()).then((j) => j.query.i === String(i) && j.body === 'n' + i,
          (e) => E(e)));
    }
    const res = await Promise.all(all);
    return { ok: res.filter((x) => x === true).length, bad: res.filter((x) => x !== true).slice(0, 3) };
  },

  async limit(up) {
    const out = [];
    for (let i = 0; i < 7; i++) {
      out.push(await settle(fetch(`${up}/echo?i=${i}`).then(async (r) => { await r.text(); return r.status; })));
    }
    return out;
  },

  async limitRedirects(up) {
    // 3 redirects + the final hop = 4 hops; then one more fetch is the 5th... the 6th fails.
    const a = await settle(fetch(`${up}/redirect/302/3`).then((r) => r.status));
    const b = await settle(fetch(`${up}/echo`).then((r) => r.status));
    const c = await settle(fetch(`${up}/echo`).then((r) => r.status));
    return { a, b, c };
  },

  async flood(up, q) {
    // Hanging fetches far past the per-app cap: the first ones go, the rest are TypeErrors.
    const n = Number(q.get('n') || 300);
    const ac = new AbortController();
    const all = [];
    const released = new Promise((r) => { floodRelease = r; });
    for (let i = 0; i < n; i++) all.push(settle(fetch(`${up}/hang?id=flood${i}`, { signal: ac.signal })));
    // Held until the test has seen the fetches start (a busy machine may take seconds).
    await Promise.race([released, sleep(Number(q.get('hold') || 200))]);
    ac.abort();
    const res = await Promise.all(all);
    const capped = res.filter((x) => x.isTypeError && /fetches in flight/.test(x.message));
    const aborted = res.filter((x) => x.name === 'AbortError');
    return { capped: capped.length, aborted: aborted.length, sample: capped[0] };
  },

  async release() {
    floodRelease();
    return { released: true };
  },

  async fireAndForget(up) {
    // Not awaited, not waitUntil: stopped when this request ends.
    fetch(up + '/hang?id=forgotten').catch(() => {});
    await sleep(100);
    return { sent: true };
  },

  async sameOrigin(up) {
    const t0 = Date.now();
    const r = await settle(fetch(up + '/echo?second=1', { signal: AbortSignal.timeout(5000) })
      .then((r) => r.status));
    return { r, ms: Date.now() - t0 };
  },

  async waitUntil(up, q, ctx) {
    ctx.waitUntil(fetch(up + '/slow?n=3&delay=0.2').then((r) => r.text()));
    return { sent: true };
  },

  async awaitHang(up) {
    await fetch(up + '/hang?id=awaited');
    return { unexpected: 'answered' };
  },
};

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const q = url.searchParams;
    const up = q.get('up');
    const path = url.pathname;
    if (path.startsWith('/case/')) {
      const name = path.slice(6);
      try {
        return J(await cases[name](up, q, ctx));
      } catch (e) {
        return J({ threw: E(e), stack: String(e && e.stack) }, 500);
      }
    }
    if (path === '/proxy') {
      // The pass-through proxy: the client's Host names the upstream.
      return fetch(request);
    }
    if (path.startsWith('/via/')) {
      // To the upstream named by ?up, with the request's method, headers and body.
      const target = up + path.slice(4) + (q.get('q') ? '?' + q.get('q') : '');
      const mode = q.get('mode') || 'fetch';
      if (mode === 'fetch') return fetch(target, request);
      if (mode === 'request') return fetch(new Request(target, request));
      const r = await fetch(target, request);
      return new Response(r.body, r);
    }
    if (path === '/upload') {
      return fetch(up + '/count', { method: 'POST', body: request.body, duplex: 'half' });
    }
    if (path === '/download') return fetch(up + '/bytes?n=' + q.get('n'));
    return new Response('ok');
  },
};
"""


def query(up, **more):
    return urllib.parse.urlencode({"up": up.base, **more})


def case(s, name, up, timeout=30, **more):
    r = s.request(path=f"/case/{name}?{query(up, **more)}", timeout=timeout)
    data = json.loads(r.body)
    eq(r.status, 200, f"case {name}: {data}")
    return data


def is_type_error(v, what, contains=None):
    expect(isinstance(v, dict) and v.get("error") and v.get("isTypeError"),
           f"{what}: expected a TypeError, got {v!r}")
    if contains is not None:
        expect(contains.lower() in v["message"].lower(),
               f"{what}: the message {v['message']!r} does not say {contains!r}")


def peak_rss_kib(server):
    with open(f"/proc/{server.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def expect_growth_below(growth_kib, limit_mib, what):
    print(f"  {what}: peak RSS grew {growth_kib / 1024:.1f} MiB"
          + (" (not checked under a sanitizer)" if SANITIZED else ""))
    if not SANITIZED:
        expect(growth_kib < limit_mib * 1024, f"{what}: peak RSS grew {growth_kib} KiB")


class Failures:
    """Collects the mismatches of one check so that a report lists them all."""

    def __init__(self):
        self.items = []

    def eq(self, actual, expected, what):
        if actual != expected:
            self.items.append(f"{what}: expected {expected!r}, got {actual!r}")

    def expect(self, cond, what):
        if not cond:
            self.items.append(what)

    def type_error(self, v, what, contains=None):
        try:
            is_type_error(v, what, contains)
        except AssertionError as e:
            self.items.append(str(e))

    def done(self):
        if self.items:
            raise AssertionError("\n".join(self.items))


# --- bodies, methods, headers ------------------------------------------------------------

@check
def every_body_type_is_sent_with_its_content_type():
    with Upstream() as up, Server(APP) as s:
        d = case(s, "bodies", up)
        f = Failures()
        f.eq(d["string"], {"body": "h\u00c3\u00a9llo", "len": 6, "chunked": False, "cl": "6",
                           "ct": "text/plain;charset=UTF-8"}, "string")
        f.eq(d["arraybuffer"], {"body": "".join(map(chr, range(10))), "len": 10,
                                "chunked": False, "cl": "10", "ct": None}, "ArrayBuffer")
        f.eq(d["uint8"], {"body": "\x02\x03\x04\x05", "len": 4, "chunked": False, "cl": "4",
                          "ct": None}, "Uint8Array subarray")
        f.eq(d["uint16"]["body"], "ABCD", "Uint16Array (little endian)")
        f.eq(d["dataview"]["body"], "\x03\x04\x05\x06", "DataView window")
        f.eq(d["blob"], {"body": "blob-bytes", "len": 10, "chunked": False, "cl": "10",
                         "ct": "application/x-test"}, "Blob")
        fd = d["formdata"]
        f.expect(fd["ct"] and fd["ct"].startswith("multipart/form-data; boundary="),
                 f"FormData content-type {fd['ct']!r}")
        if fd["ct"]:
            boundary = fd["ct"].split("boundary=", 1)[1]
            body = fd["body"]
            f.expect(body.startswith(f"--{boundary}\r\n") and
                     body.endswith(f"--{boundary}--\r\n"), f"FormData framing: {body!r}")
            f.expect('name="field"\r\n\r\nvalue\r\n' in body, f"FormData field: {body!r}")
            f.expect('name="file"; filename="f.txt"\r\nContent-Type: text/x-file\r\n\r\n'
                     'file-bytes\r\n' in body, f"FormData file: {body!r}")
            f.eq(fd["cl"], str(len(body.encode("latin-1"))), "FormData content-length")
        f.eq(d["urlsearchparams"], {"body": "a=1&b=x+y", "len": 9, "chunked": False, "cl": "9",
                                    "ct": "application/x-www-form-urlencoded;charset=UTF-8"},
             "URLSearchParams")
        f.eq(d["stream"], {"body": "chunk1-chunk2-chunk3", "len": 20, "chunked": True,
                           "cl": None, "ct": None}, "ReadableStream (chunked upload)")
        # Fetch Standard, Request constructor step 40: a stream body without duplex throws a
        # TypeError (Deno and browsers do; informational only, workerd does not require it).
        print(f"  stream body without duplex: {d['streamNoDuplex']}")
        f.eq(d["emptyStream"], {"body": "", "chunked": True}, "an empty stream")
        f.eq(d["emptyString"], {"body": "", "cl": "0"}, "an empty string")
        f.eq(d["postNoBody"], {"cl": "0", "chunked": False}, "a POST without a body")
        f.type_error(d["stringChunk"], "a stream chunk that is not a Uint8Array")
        f.expect(d["erroredStream"].get("error") is True,
                 f"a stream body that errors: {d['erroredStream']}")
        f.eq(d["request"], {"method": "PUT", "body": "from a Request"}, "a Request with a body")
        f.eq(d["requestBodyUsed"], True, "the Request's body is used after fetch")
        f.type_error(d["reuse"], "fetching a Request whose body was used")
        f.done()


@check
def every_method_is_sent_and_forbidden_ones_throw():
    with Upstream() as up, Server(APP) as s:
        d = case(s, "methods", up)
        f = Failures()
        for m in ("GET", "DELETE", "OPTIONS"):
            f.eq(d[m], {"method": m, "body": ""}, m)
        for m in ("POST", "PUT", "PATCH", "PURGE"):
            f.eq(d[m], {"method": m, "body": "b"}, m)
        # Normalized (DELETE GET HEAD OPTIONS POST PUT uppercased), "patch" is not.
        f.eq(d["post"], {"method": "POST", "body": "b"}, "post normalized")
        f.eq(d["delete"], {"method": "DELETE", "body": ""}, "delete normalized")
        f.eq(d["patch"], {"method": "patch", "body": "b"}, "patch stays lowercase")
        f.eq(d["HEAD"]["status"], 200, "HEAD status")
        f.eq(d["HEAD"]["body"], None, "HEAD body is null")
        f.eq(d["HEAD"]["text"], "", "HEAD text")
        f.expect(d["HEAD"]["cl"] not in (None, "0"), f"HEAD keeps Content-Length {d['HEAD']}")
        for m in ("CONNECT", "TRACE", "TRACK", "bad method", ""):
            f.type_error(d["forbidden:" + m], f"method {m!r}")
        f.type_error(d["getWithBody"], "GET with a body")
        f.type_error(d["headWithBody"], "HEAD with a body")
        methods = [r["method"] for r in up.requests]
        f.expect("HEAD" in methods, f"the upstream saw no HEAD: {methods}")
        f.expect(not any(m in ("CONNECT", "TRACE", "TRACK") for m in methods),
                 f"a forbidden method reached the upstream: {methods}")
        f.done()


@check
def headers_go_out_and_come_back_with_set_cookie_kept_apart():
    with Upstream() as up, Server(APP) as s:
        d = case(s, "headers", up)
        f = Failures()
        f.eq(d["one"], "1", "a header")
        f.eq(d["multi"], "a, b", "an appended header is combined")
        f.expect(d["ua"] and d["ua"].startswith("nano/"), f"default user-agent {d['ua']!r}")
        f.eq(d["accept"], "*/*", "default accept")
        f.eq(d["acceptEncoding"], "gzip, deflate, br", "default accept-encoding")
        f.eq(d["host"], f"127.0.0.1:{up.port}", "host")
        f.eq((d["ownUa"], d["ownAccept"], d["ownAcceptEncoding"]), ("mine/1", "text/x", "identity"),
             "the app's own user-agent, accept, accept-encoding")
        f.eq(d["getSetCookie"], ["a=1; Path=/", "b=2; HttpOnly"], "getSetCookie()")
        f.eq(d["setCookieGet"], "a=1; Path=/, b=2; HttpOnly", "get('set-cookie')")
        f.eq(d["vary"], "Accept, Origin", "a repeated header combined")
        f.eq(d["immutable"], "TypeError", "a fetched response's headers are immutable")
        f.eq(d["ctype"], "application/json", "content-type")
        # "basic" in Deno and browsers (same-origin tainting), "default" in workerd: shown only.
        print(f"  response.type: {d['type']!r}")
        f.eq((d["bodyUsedBefore"], d["bodyUsedAfter"]), (False, True), "bodyUsed")
        f.done()


@check
def response_url_has_no_fragment():
    # Response's url getter: the last URL, serialized with "exclude fragment" (Deno too).
    with Upstream() as up, Server(APP) as s:
        d = case(s, "headers", up)
        eq(d["target"], "/echo?x=1", "the request target sent has no fragment")
        eq(d["echoUrl"], f"{up.base}/echo?x=1", "response.url of a URL with #frag")


@check
def headers_from_upstream_are_case_insensitive():
    with Upstream() as up, Server(APP) as s:
        d = case(s, "headerCase", up)
        eq(d, {"names": ["content-length", "set-cookie", "set-cookie", "vary"],
               "getLower": "application/json", "getUpper": "application/json",
               "getAsSent": "application/json", "has": True,
               "getSetCookie": ["a=1; Path=/", "b=2; HttpOnly"],
               "copied": "application/json"}, "a fetched response's headers")


# --- redirects ---------------------------------------------------------------------------

@check
def redirects_follow_the_fetch_standard():
    with Upstream() as up, Upstream("up2") as up2, Server(APP) as s:
        d = case(s, "redirects", up, up2=up2.base)
        f = Failures()
        final = f"{up.base}/echo/final"
        # HTTP-redirect fetch step 12: 301/302 after POST and 303 after anything but
        # GET/HEAD become GET without a body and without the body's headers.
        for st in (301, 302, 303):
            f.eq(d[f"post{st}"], {"status": 200, "method": "GET", "body": "", "ct": None,
                                  "keep": "kept", "redirected": True, "url": final, "cl": None},
                 f"POST then {st}")
        for st in (307, 308):
            f.eq(d[f"post{st}"], {"status": 200, "method": "POST", "body": "payload",
                                  "ct": "text/x-payload", "keep": "kept", "redirected": True,
                                  "url": final, "cl": "7"}, f"POST then {st}")
        for st in (301, 302, 307):
            f.eq(d[f"put{st}"], {"method": "PUT", "body": "payload"}, f"PUT then {st}")
        f.eq(d["put303"], {"method": "GET", "body": ""}, "PUT then 303")
        f.eq(d["head303"], {"status": 200, "url": final}, "HEAD then 303 stays HEAD")
        heads = [r["method"] for r in up.requests_to("/echo/final")]
        f.expect("HEAD" in heads, f"HEAD after a 303 was not sent as HEAD: {heads}")
        for loc in ("rel", "abs", "dots"):
            f.eq(d["chain3" + loc], {"status": 200, "url": final, "path": "/echo/final"},
                 f"3 redirects, Location {loc}")
        lim = case(s, "redirectLimits", up)
        f.eq(lim["max20"], {"status": 200, "path": "/echo/final", "redirected": True},
             "20 redirects")
        f.type_error(lim["over20"], "21 redirects", "redirect")
        f.type_error(d["error"], 'redirect: "error"', "redirect")
        f.eq(d["manual"], {"status": 302, "location": "/echo/final",
                           "url": f"{up.base}/redirect/302/1", "redirected": False,
                           "text": "redirecting"}, 'redirect: "manual"')
        f.eq(d["noLocation"], {"status": 302, "text": "no location"}, "a 302 without Location")
        f.eq(d["cross"], {"auth": None, "other": "o", "url": f"{up2.base}/echo"},
             "cross-origin redirect drops Authorization")
        f.eq(len(up2.requests_to("/echo")), 1, "the second origin was asked once")
        f.eq(d["sameAuth"], "Bearer s3cret", "same-origin redirect keeps Authorization")
        f.type_error(d["badScheme"], "a redirect to ftp:")
        f.type_error(d["dataScheme"], "a redirect to data:")
        f.type_error(d["stream307"], "a stream body and a 307")
        f.eq(d["stream303"], {"method": "GET", "body": ""}, "a stream body and a 303")
        f.done()


@check
def status_and_status_text_come_through():
    with Upstream() as up, Server(APP) as s:
        d = case(s, "statuses", up)
        f = Failures()
        f.eq(d["404"], {"status": 404, "ok": False, "statusText": "Not Found", "nullBody": False,
                        "text": "status 404"}, "404")
        f.eq(d["299"], {"status": 299, "ok": True, "statusText": "Custom Reason",
                        "nullBody": False, "text": "status 299"}, "299 with its own reason")
        f.eq(d["500"]["ok"], False, "500 ok")
        f.eq(d["204"], {"status": 204, "ok": True, "statusText": "No Content", "nullBody": True,
                        "text": ""}, "204")
        f.eq(d["599"]["status"], 599, "599")
        f.eq(d["201"]["statusText"], "Created", "201")
        f.done()


# --- aborts, broken and slow upstreams --------------------------------------------------

@check
def aborts_reject_with_the_signal_reason_at_every_stage():
    with Upstream() as up, Server(APP) as s:
        d = case(s, "abort", up)
        f = Failures()
        f.eq((d["before"].get("name"), d["before"].get("isDOMException")), ("AbortError", True),
             f"aborted before: {d['before']}")
        f.eq(len([r for r in up.requests if r["query"].get("before")]), 0,
             "an aborted fetch sent nothing")
        f.eq((d["beforeReason"].get("message"), d["beforeReason"].get("same")),
             ("my reason", True), "aborted before with a reason: rejects with that reason")
        f.eq(d["duringHead"].get("name"), "AbortError", f"abort while waiting: {d['duringHead']}")
        f.expect(d["duringHeadMs"] < 3000, f"the abort took {d['duringHeadMs']} ms")
        f.eq(d["firstChunk"], 10, "first body chunk")
        f.eq((d["duringBody"].get("message"), d["duringBody"].get("same")),
             ("body reason", True), f"abort during the body: read() {d['duringBody']}")
        f.eq(d["duringBodyClosed"].get("same"), True,
             f"reader.closed rejects with the reason {d['duringBodyClosed']}")
        f.eq(d["afterText"], True, "a body read before the abort")
        f.eq(d["textDuringAbort"].get("name"), "AbortError",
             f"text() when aborted: {d['textDuringAbort']}")
        f.eq((d["timeout"].get("name"), d["timeout"].get("isDOMException")),
             ("TimeoutError", True), f"AbortSignal.timeout: {d['timeout']}")
        f.expect(250 <= d["timeoutMs"] < 3000, f"AbortSignal.timeout(300) took {d['timeoutMs']} ms")
        f.eq(d["requestSignal"].get("name"), "AbortError", f"a Request's signal: {d['requestSignal']}")
        # The upstream sees each aborted connection closed.
        deadline = time.monotonic() + 10
        for ident in ("head", "timeout", "request"):
            while ident not in up.seen("hang-closed") and time.monotonic() < deadline:
                time.sleep(0.05)
            f.expect(ident in up.seen("hang-closed"),
                     f"the upstream connection of the aborted /hang?id={ident} stayed open")
        f.done()


@check
def broken_and_slow_upstreams_fail_cleanly_without_hanging():
    with Upstream() as up, Server(APP) as s:
        d = case(s, "broken", up)
        f = Failures()
        f.eq(d["resetStatus"], 200, "reset mid-body: the head arrived")
        f.type_error(d["resetBody"], "reset mid-body: reading the body")
        f.eq(d["dropStatus"], 200, "closed after the head: the head arrived")
        f.type_error(d["dropBody"], "closed after the head: reading the body")
        f.type_error(d["resetBeforeHead"], "reset before the head")
        f.type_error(d["bigHead"], "a 300 KiB response head", "too large")
        f.eq(d["slowText"], "".join("%09d\n" % i for i in range(5)), "slow body")
        f.expect(900 <= d["slowMs"] < 8000, f"slow upstream took {d['slowMs']} ms")
        f.eq(d["afterwards"], 200, "a fetch afterwards")
        try:
            up.wait_event("slow-closed", timeout=10)
        except AssertionError as e:
            f.items.append("a canceled body kept its upstream connection: " + str(e))
        f.done()
        eq(s.request(path="/").text, "ok", "nano-dp serves on")


@check
def network_errors_are_type_errors_with_a_clear_message():
    with Upstream() as up, Server(APP) as s:
        d = case(s, "errors", up, closed=str(closed_port()))
        f = Failures()
        f.type_error(d["refused"], "connection refused", "connect")
        f.type_error(d["dns"], "DNS (.invalid)", "DNS")
        f.type_error(d["scheme"], "ftp:", "scheme")
        f.type_error(d["fileScheme"], "file:")
        f.type_error(d["badUrl"], "http://")
        f.type_error(d["relative"], "a relative URL")
        f.type_error(d["noArgs"], "fetch()")
        # Request constructor: a URL with credentials throws a TypeError.
        f.type_error(d["credentialsInUrl"], "a URL with credentials")
        f.done()
        m = s.log()
        expect("fetch.failed" in m, "no fetch.failed log line")


@check
def gzip_and_deflate_are_decoded():
    with Upstream() as up, Server(APP) as s:
        d = case(s, "decoding", up)
        f = Failures()
        text = GZIP_TEXT.decode()
        f.eq(d["gzip"], {"text": text, "ce": "gzip"}, "gzip (Content-Encoding kept as sent)")
        f.eq(d["xgzip"], len(text), "x-gzip")
        f.eq(d["deflate"], {"text": text, "ce": "deflate"}, "deflate")
        f.type_error(d["truncated"], "a truncated gzip body")
        f.eq(d["head"], {"status": 200, "body": None}, "HEAD of a gzip resource")
        f.done()


@check
def interim_responses_eof_bodies_and_broken_heads():
    with Upstream() as up, Server(APP) as s:
        d = case(s, "protocol", up)
        f = Failures()
        f.eq(d["hints"], {"status": 200, "final": "1", "link": None, "text": "after hints"},
             "a 103 before the 200 (its headers are not the response's)")
        f.type_error(d["garbage"], "a response that is not HTTP")
        f.eq(d["eof"], 5000, "a body delimited by the connection's end")
        f.eq(d["head150"], {"status": 200, "n": 151}, "a 150 KiB response head (< 256 KiB)")
        f.done()


@check
def an_upload_stream_is_released_when_its_fetch_ends_or_aborts():
    with Upstream() as up, Server(APP) as s:
        d = case(s, "uploadEnd", up)
        f = Failures()
        f.eq(d["early"], {"status": 413, "text": "too large"},
             "an answer before the upload ended")
        f.expect(d["earlyMs"] < 8000, f"the early answer took {d['earlyMs']} ms")
        # 61_fetch_client.js pumpUpload means to cancel the source when "the response came
        # first"; left locked and unpulled, it is never released.
        f.eq(d["earlyCanceled"], True, "the endless upload stream was canceled (within 2 s)")
        f.eq(d["abortUpload"].get("name"), "AbortError", f"abort during an upload: {d['abortUpload']}")
        # Fetch Standard, "abort fetch": cancel the request's body with the abort reason.
        f.eq(d["abortUploadCancel"], "AbortError",
             "the upload stream's cancel() gets the signal's reason")
        f.done()


@check
def response_bodies_clone_byob_and_keep_alive():
    with Upstream() as up, Server(APP) as s:
        d = case(s, "consume", up)
        f = Failures()
        f.eq(d["clone"], [1048576, 1048576, True], "clone(): both branches")
        f.eq(d["byob"], {"n": 100000, "atMost8k": True}, "a BYOB reader")
        f.eq(d["forAwait"], 300000, "for await over a chunked body")
        f.eq(d["blob"], 5000, "blob()")
        conns = up.connections
        print(f"  {len(up.requests)} requests on {conns} upstream connections")
        # 20 sequential fetches after the others: they should share a kept-alive connection
        # (5 others before them, one left unread and dropped).
        f.expect(conns <= 8, f"{conns} connections for {len(up.requests)} requests: no reuse")
        f.eq(s.request(path="/").text, "ok", "nano-dp serves on")
        f.done()


TOP_LEVEL_APP = r"""
const boot = await (await fetch('UPSTREAM/echo?boot=1')).json();
export default {
  async fetch() { return new Response(JSON.stringify({ boot: boot.query.boot })); },
};
"""


@check
def module_code_may_fetch_with_top_level_await():
    with Upstream() as up:
        with Server(TOP_LEVEL_APP.replace("UPSTREAM", up.base)) as s:
            r = s.request(path="/")
            eq((r.status, r.text), (200, '{"boot":"1"}'), f"top-level fetch; log:\n{s.log()[-1500:]}")


# --- many fetches, the subrequest limit -------------------------------------------------

# (Loopback is refused by default in multi-tenant modes: these apps allow it.)
LIMIT_CFG = {"apps": [
    {"name": "five", "hostname": "five.test", "path": "./app.js",
     "limits": {"subrequests": 5, "cpu_ms": 1000}, "egress": {"allow": ["127.0.0.1"]}},
    {"name": "many", "hostname": "many.test", "path": "./app.js",
     "limits": {"subrequests": 1000, "cpu_ms": 1000}, "egress": {"allow": ["127.0.0.1"]}},
]}


def config_case(s, host, name, up, **more):
    r = s.request(path=f"/case/{name}?{query(up, **more)}", host=host, timeout=30)
    data = json.loads(r.body)
    eq(r.status, 200, f"case {name}: {data}")
    return data


@check
def two_hundred_concurrent_fetches_from_one_request():
    with Upstream() as up, ConfigServer(LIMIT_CFG, {"app.js": APP}) as s:
        t0 = time.monotonic()
        d = config_case(s, "many.test", "concurrent", up, n="200")
        print(f"  200 fetches in {time.monotonic() - t0:.2f} s, "
              f"{up.connections} upstream connections")
        eq(d, {"ok": 200, "bad": []}, "200 concurrent fetches")


@check
def one_app_cannot_hold_more_than_256_fetches_while_another_fetches():
    with Upstream() as up, ConfigServer(LIMIT_CFG, {"app.js": APP}, args=["--threads", "1"]) as s:
        box = {}
        def flood():
            try:
                box["d"] = config_case(s, "many.test", "flood", up, n="300", hold="30000")
            except Exception as e:  # reported below, with the upstream's view
                box["error"] = repr(e)

        t = threading.Thread(target=flood)
        t.start()
        try:
            up.wait_event("hang-start", count=200, timeout=15)
        except AssertionError as e:
            raise AssertionError(f"{e}; the flood: {box}") from None
        d = config_case(s, "five.test", "sameOrigin", up)
        eq(d["r"], 200, "another app's fetch while one app floods (same thread, same upstream)")
        eq(config_case(s, "many.test", "release", up), {"released": True}, "release the flood")
        t.join(30)
        d = box.get("d")
        expect(d is not None, "the flooding request answered")
        eq([d["capped"], d["aborted"]], [300 - 256, 256], f"fetches past the cap, aborted ones: {d}")


TLS_APP = r"""
export default {
  async fetch(request) {
    const target = new URL(request.url).searchParams.get('url');
    try {
      const r = await fetch(target);
      return Response.json({ status: r.status, body: await r.text() });
    } catch (e) {
      return Response.json({ error: e.name, message: e.message });
    }
  },
};
"""


def tls_upstream(d):
    """A one-certificate HTTPS server on 127.0.0.1 (a thread); returns (port, cert path)."""
    import http.server
    import ssl
    import subprocess
    key, cert = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=30)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_GET(self):
            body = b"secure hello"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, cert


@check
def https_is_verified_against_the_trusted_cas():
    import nanotest
    from urllib.parse import quote
    d = nanotest.scratch_dir()
    srv, cert = tls_upstream(d)
    try:
        url = quote(f"https://127.0.0.1:{srv.server_address[1]}/", safe="")
        with Server(TLS_APP) as s:
            data = json.loads(s.request(path=f"/?url={url}", timeout=20).body)
            expect(data.get("error") == "TypeError" and "TLS error" in data.get("message", ""),
                   f"a self-signed certificate: {data}")
        # The operator names its CA the way OpenSSL's tools read it.
        old = os.environ.get("SSL_CERT_FILE")
        os.environ["SSL_CERT_FILE"] = cert
        try:
            with Server(TLS_APP) as s:
                data = json.loads(s.request(path=f"/?url={url}", timeout=20).body)
                eq(data, {"status": 200, "body": "secure hello"}, "with SSL_CERT_FILE naming its CA")
        finally:
            if old is None:
                del os.environ["SSL_CERT_FILE"]
            else:
                os.environ["SSL_CERT_FILE"] = old
    finally:
        srv.shutdown()


@check
def an_operators_http_proxy_carries_the_fetches():
    from urllib.parse import quote
    with Upstream() as proxy:
        old = os.environ.get("http_proxy")
        os.environ["http_proxy"] = proxy.base
        try:
            with Server(TLS_APP) as s:
                url = quote("http://through-the-proxy.invalid/echo?x=1", safe="")
                data = json.loads(s.request(path=f"/?url={url}", timeout=20).body)
        finally:
            if old is None:
                del os.environ["http_proxy"]
            else:
                os.environ["http_proxy"] = old
        eq(data.get("status"), 200, f"a fetch through http_proxy: {data}")
        seen = [r for r in proxy.requests if r["path"] == "/echo"]
        eq(len(seen), 1, "requests the proxy received")
        hosts = [v for k, v in seen[0]["headers"] if k.lower() == "host"]
        eq(hosts, ["through-the-proxy.invalid"], "the Host the proxy was asked for")


UNOWNED_APP = r"""
// A fetch that no request owns (a timer set by module code): bounded by the app's wall_time.
let outcome = 'pending';
export default {
  async fetch(request) {
    const u = new URL(request.url);
    if (u.pathname === '/start') {
      globalThis.pendingTarget = u.searchParams.get('target');
      return new Response('started');
    }
    return new Response(outcome);
  },
};
// Module code's timers run for no request: this one starts the fetch the request asked for.
setInterval(() => {
  const target = globalThis.pendingTarget;
  if (target === undefined) return;
  globalThis.pendingTarget = undefined;
  const t0 = Date.now();
  fetch(target).then(() => { outcome = 'answered'; },
    (e) => { outcome = `${e.name}: ${e.message} after ${Date.now() - t0} ms`; });
}, 50);
"""


@check
def a_fetch_no_request_owns_is_bounded_by_wall_time():
    cfg = {"apps": [{"name": "bg", "hostname": "bg.test", "path": "./app.js",
                     "limits": {"wall_time": "1s"}, "egress": {"allow": ["127.0.0.1"]}}]}
    from urllib.parse import quote
    with Upstream() as up, ConfigServer(cfg, {"app.js": UNOWNED_APP}) as s:
        r = s.request(path=f"/start?target={quote(up.url('/hang?id=unowned'), safe='')}",
                      host="bg.test")
        eq(r.status, 200, "start")
        up.wait_event("hang-start", timeout=10)
        deadline = time.monotonic() + 10
        outcome = "pending"
        while time.monotonic() < deadline:
            outcome = s.request(path="/outcome", host="bg.test").body.decode()
            if outcome != "pending":
                break
            time.sleep(0.2)
        expect(outcome.startswith("TypeError") and "bounded by wall_time" in outcome,
               f"the unowned fetch's outcome: {outcome}")
        up.wait_event("hang-closed", timeout=10)


LOOP_APP = r"""
export default {
  async fetch(request) {
    try {
      const r = await fetch(request.url, { headers: { 'cdn-loop': 'forged' } });
      return new Response(String(Number(await r.text()) + 1));
    } catch (e) {
      return new Response(e instanceof TypeError && /CDN-Loop/.test(e.message) ? '0' : 'x' + e.message);
    }
  },
};
"""


@check
def an_app_that_fetches_itself_is_stopped_after_sixteen_hops():
    with Server(LOOP_APP) as s:
        r = s.request(path="/loop", timeout=30)
        eq((r.status, r.body.decode()), (200, "16"), "hops before the loop was refused")


@check
def the_sixth_fetch_past_a_limit_of_five_is_a_type_error():
    with Upstream() as up, ConfigServer(LIMIT_CFG, {"app.js": APP}) as s:
        d = config_case(s, "five.test", "limit", up)
        f = Failures()
        f.eq(d[:5], [200] * 5, "the first five fetches")
        f.type_error(d[5], "the sixth fetch", "subrequests")
        f.type_error(d[6], "the seventh fetch", "subrequests")
        f.eq(len(up.requests_to("/echo")), 5, "the upstream saw five")
        # A new request gets a fresh count.
        d2 = config_case(s, "five.test", "limit", up)
        f.eq(d2[:5], [200] * 5, "the next request's first five")
        # Redirect hops count (each is a request to the network): 4 + 1 = 5, then the 6th.
        d3 = config_case(s, "five.test", "limitRedirects", up)
        print(f"  redirect hops against the limit: {d3}")
        f.eq(d3["a"], 200, "3 redirects within the limit")
        f.done()


# --- proxies and requests that end -----------------------------------------------------

def raw(s, method, path, headers, body=None, host=None, timeout=10):
    with Conn(s.port, timeout) as c:
        c.send(build_request(method, path, headers, body, host=host or s.host))
        return c.read_response(head_only=method == "HEAD")


@check
def a_proxy_passes_method_headers_and_bodies_through():
    with Upstream() as up, Server(APP) as s:
        f = Failures()
        # `return fetch(request)`: the client's Host names the upstream (request.url).
        body = bytes(range(256)) * 4096  # 1 MiB
        r = raw(s, "PUT", "/proxy", {"X-Custom": "c1", "Content-Type": "application/x-bin"},
                body, host=f"127.0.0.1:{up.port}")
        f.eq(r.status, 404, "fetch(request) reached the upstream (no /proxy route there)")
        got = up.requests_to("/proxy")
        f.eq(len(got), 1, "the upstream saw the proxied request")
        if got:
            g = got[0]
            hd = {k.lower(): v for k, v in g["headers"]}
            f.eq(g["method"], "PUT", "proxied method")
            f.eq(hd.get("x-custom"), "c1", "proxied header")
            f.eq(hd.get("content-type"), "application/x-bin", "proxied content-type")
            f.eq(hd.get("host"), f"127.0.0.1:{up.port}", "proxied host")
            f.eq(g.get("body") == body, True, f"proxied body ({len(g.get('body', b''))} bytes)")
            # The incoming body's declared length goes on (61_fetch_client.js transmitBody).
            f.eq(hd.get("content-length"), str(len(body)), "proxied content-length")
            f.eq(hd.get("transfer-encoding"), None, "proxied transfer-encoding")
        # fetch(url, request), fetch(new Request(url, request)), new Response(r.body, r).
        for mode in ("fetch", "request", "wrap"):
            r = raw(s, "POST", f"/via/echo?{query(up, mode=mode)}",
                    {"X-Custom": "c2", "Content-Type": "text/x-up"}, b"proxied body " * 1000)
            f.eq(r.status, 200, f"{mode}: status")
            if r.status != 200:
                f.items.append(f"{mode}: {r.text[:300]}")
                continue
            e = json.loads(r.body)
            hd = {k.lower(): v for k, v in e["headers"]}
            f.eq((e["method"], e["body_len"], hd.get("x-custom"), hd.get("content-type")),
                 ("POST", 13000, "c2", "text/x-up"), f"{mode}: what the upstream saw")
            f.eq(r.header("x-upstream"), "up", f"{mode}: the upstream's response headers")
        r = raw(s, "GET", f"/via/status/299?{query(up, mode='wrap', q='reason=Fine')}", {})
        f.eq((r.status, r.reason, r.text), (299, "Fine", "status 299"),
             "new Response(r.body, r) keeps status and statusText")
        f.done()


@check
def a_gzip_response_served_through_fetch_stays_decodable():
    # fetch() decodes the body and keeps Content-Encoding (Fetch Standard; Deno since
    # denoland/deno#35124). Serving that Response as it is must not send plain bytes labelled
    # gzip: workerd encodes them again, Bun drops the header (oven-sh/bun#35546).
    with Upstream() as up, Server(APP) as s:
        f = Failures()
        for mode in ("fetch", "wrap"):
            r = raw(s, "GET", f"/via/gzip?{query(up, mode=mode)}", {"Accept-Encoding": "gzip"})
            ce = r.header("content-encoding")
            try:
                plain = gzip.decompress(r.body) if ce == "gzip" else r.body
            except Exception as e:  # noqa: BLE001
                plain = f"undecodable ({e})".encode()
            f.eq(plain == GZIP_TEXT, True,
                 f"{mode}: a gzip upstream served through fetch(): the client got {plain[:60]!r} "
                 f"with content-encoding {ce!r}, content-length {r.header('content-length')!r}, "
                 f"{len(r.body)} bytes")
        f.done()


@check
def a_hanging_upstream_does_not_hold_up_other_fetches_to_its_origin():
    # Request A waits for /hang; request B then fetches /echo from the same origin: B must
    # get its own connection at once (HTTP/1.1 has no multiplexing to wait for).
    with Upstream() as up, Server(APP) as s:
        c = Conn(s.port, timeout=15)
        try:
            c.send(build_request("GET", f"/case/awaitHang?{query(up)}", host=s.host))
            up.wait_event("hang-start", timeout=10)
            d = case(s, "sameOrigin", up)
            eq(d["r"], 200, f"a second fetch to the origin of a hanging one ({d['ms']} ms): "
                            f"{d['r']}; the upstream saw {[r['path'] for r in up.requests]}")
        finally:
            c.close()


@check
def a_hanging_fetch_of_one_app_does_not_hold_up_another_apps():
    # The same with two apps of a nano.json on one worker thread (tenants share the worker).
    with Upstream() as up, ConfigServer(LIMIT_CFG, {"app.js": APP}) as s:
        c = Conn(s.port, timeout=15)
        try:
            c.send(build_request("GET", f"/case/awaitHang?{query(up)}", host="five.test"))
            up.wait_event("hang-start", timeout=10)
            d = config_case(s, "many.test", "sameOrigin", up)
            eq(d["r"], 200, f"app many's fetch while app five's fetch to the same origin hangs "
                            f"({d['ms']} ms): {d['r']}")
        finally:
            c.close()


@check
def a_request_that_ends_stops_its_fetches():
    with Upstream() as up, Upstream("up2") as up2, Server(APP) as s:
        f = Failures()
        # 1. A fetch the handler started and forgot: stopped when the response is sent.
        r = s.request(path=f"/case/fireAndForget?{query(up)}")
        eq(r.status, 200)
        try:
            up.wait_event("hang-closed", timeout=10)
        except AssertionError as e:
            f.items.append("a fetch left running after its request ended: " + str(e))
        # 2. The client disconnects while the handler awaits a fetch. It resets the
        # connection: a FIN alone reads as a half-close, which the server still answers.
        c = Conn(s.port)
        c.send(build_request("GET", f"/case/awaitHang?{query(up)}", host=s.host))
        up.wait_event("hang-start", count=2, timeout=10)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
        deadline = time.monotonic() + 10
        while "awaited" not in up.seen("hang-closed") and time.monotonic() < deadline:
            time.sleep(0.05)
        f.expect("awaited" in up.seen("hang-closed"),
                 "the client left, yet its request's fetch still holds the upstream "
                 f"connection (events {up.events})")
        # 3. ctx.waitUntil keeps a fetch going after the response (to another origin: see
        # a_hanging_upstream_does_not_hold_up_other_fetches_to_its_origin).
        r = s.request(path=f"/case/waitUntil?{query(up2)}")
        eq(r.status, 200)
        try:
            up2.wait_event("slow-done", timeout=10)
        except AssertionError as e:
            f.items.append("a waitUntil fetch was stopped: " + str(e))
        f.eq(s.request(path="/").text, "ok", "nano-dp serves on")
        f.done()


# --- 256 MiB each way -------------------------------------------------------------------

@check
def a_256mib_download_streams_through_with_flat_memory():
    with Upstream() as up, Server(APP) as s:
        eq(s.request(path=f"/download?{query(up, n='1000')}").status, 200)
        before = peak_rss_kib(s)
        t0 = time.monotonic()
        with Conn(s.port, timeout=60) as c:
            c.send(build_request("GET", f"/download?{query(up, n=str(BIG))}", host=s.host))
            status = int(c._line().split(b" ")[1])
            headers = {}
            while True:
                line = c._line()
                if not line:
                    break
                k, v = line.decode("latin-1").split(":", 1)
                headers[k.strip().lower()] = v.strip()
            eq(status, 200, "download status")
            total = 0
            if "content-length" in headers:
                eq(headers["content-length"], str(BIG), "content-length passed on")
                total = len(c.buf)
                c.buf = b""
                while total < BIG:
                    chunk = c.sock.recv(1 << 20)
                    if not chunk:
                        break
                    total += len(chunk)
            else:
                while True:
                    size = int(c._line().split(b";")[0], 16)
                    if size == 0:
                        break
                    left = size
                    while left:
                        if not c.buf:
                            c._fill()
                        take = min(left, len(c.buf))
                        c.buf = c.buf[take:]
                        left -= take
                    total += size
                    c._exact(2)
        print(f"  256 MiB download in {time.monotonic() - t0:.1f} s")
        eq(total, BIG, "bytes received")
        expect_growth_below(peak_rss_kib(s) - before, 64, "256 MiB download")


@check
def a_256mib_upload_streams_through_with_flat_memory():
    with Upstream() as up, Server(APP, args=["--max-body-size", str(4 * BIG)]) as s:
        eq(s.request("POST", f"/upload?{query(up)}", body=b"warm").status, 200)
        before = peak_rss_kib(s)
        t0 = time.monotonic()
        block = b"\x5a" * MIB
        with Conn(s.port, timeout=60) as c:
            c.send(build_request("POST", f"/upload?{query(up)}", {"Content-Length": str(BIG)},
                                 host=s.host))
            for _ in range(BIG // MIB):
                c.sock.sendall(block)
            r = c.read_response()
        print(f"  256 MiB upload in {time.monotonic() - t0:.1f} s")
        eq(r.status, 200, f"upload status: {r.text[:300]}")
        d = json.loads(r.body)
        print(f"  the upstream got it chunked={d['chunked']} content-length={d['content_length']}")
        eq(d["bytes"], BIG, "the upstream counted")
        expect_growth_below(peak_rss_kib(s) - before, 64, "256 MiB upload")



UPLOAD_TO_SINK_APP = r"""
export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === '/ping') return new Response('pong');
    // An endless upload produced synchronously, in small chunks, to a peer that reads
    // faster than it is produced: every write succeeds at once.
    const chunk = new Uint8Array(1024);
    let n = 0;
    const endless = new ReadableStream({ pull(c) { n++; c.enqueue(chunk); } });
    try {
      const r = await fetch(url.searchParams.get('sink'), { method: 'POST', body: endless,
        duplex: 'half' });
      return new Response(`${r.status} ${await r.text()} after ${n} chunks`);
    } catch (e) {
      return new Response(`failed after ${n} chunks: ${e.message}`);
    }
  },
};
"""


class FastSink:
    """A raw TCP peer that reads whatever comes as fast as it can (1 MiB reads, no HTTP
    parsing) for `secs`, then answers 200 and drains until the client stops; counts what it
    read before answering."""

    def __init__(self, secs):
        self.secs = secs
        self.bytes = 0
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(1)
        self.url = f"http://127.0.0.1:{self.lsock.getsockname()[1]}/sink"
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        self.lsock.settimeout(10)
        try:
            c, _ = self.lsock.accept()
        except OSError:
            return
        with c:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * MIB)
            c.settimeout(0.2)
            buf = bytearray(MIB)
            end = time.monotonic() + self.secs
            while time.monotonic() < end:
                try:
                    k = c.recv_into(buf)
                except socket.timeout:
                    continue
                if not k:
                    return
                self.bytes += k
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nsunk")
            # Then drain until the client stops sending: closing with unread bytes would
            # reset the connection, and a reset may discard the answer before it is read.
            c.shutdown(socket.SHUT_WR)
            end = time.monotonic() + 3
            while time.monotonic() < end:
                try:
                    if not c.recv_into(buf):
                        break
                except socket.timeout:
                    continue
                except OSError:
                    break

    def close(self):
        self.lsock.close()
        self.thread.join(timeout=15)


@check
def an_upload_the_peer_takes_at_once_does_not_stall_the_worker():
    # Each written piece of an upload lets the app produce the next on the next loop turn;
    # libuv runs a zero timer re-armed by its own callback again in the same turn, so with a
    # peer that keeps taking the bytes the worker never polled: no other request on its
    # thread was served (and the upload's own response went unread) until the peer stopped.
    sink = FastSink(secs=3)
    with Server(UPLOAD_TO_SINK_APP) as s:
        done = {}

        def upload():
            done["r"] = s.request(path=f"/upload?sink={urllib.parse.quote(sink.url)}", timeout=30)
        t = threading.Thread(target=upload)
        t.start()
        try:
            deadline = time.monotonic() + 5
            while sink.bytes < MIB and time.monotonic() < deadline:
                time.sleep(0.01)
            expect(sink.bytes >= MIB, f"the upload reached the sink ({sink.bytes} bytes)")
            t0 = time.monotonic()
            r = s.request(path="/ping", timeout=10)
            took = time.monotonic() - t0
            at = sink.bytes
            eq((r.status, r.text), (200, "pong"), "another request during the upload")
            print(f"  /ping answered in {took * 1000:.0f} ms while the upload ran "
                  f"({at // MIB} MiB taken by then)")
            expect(took < 1.0, f"/ping waited {took:.2f} s behind the upload")
        finally:
            t.join(timeout=30)
            sink.close()
        r = done.get("r")
        expect(r is not None and r.status == 200 and r.text.startswith("200 sunk after"),
               f"the upload's fetch got the sink's answer: {r and r.text[:200]}")
        print(f"  the sink took {sink.bytes // MIB} MiB; {r.text}")

if __name__ == "__main__":
    run()
