// 61_fetch_client.js: fetch() (Fetch Standard §5.6, and "HTTP fetch" / "HTTP-redirect fetch"
// as a server runtime does them: no CORS, no cookies, no cache). Each hop is one native
// transfer (runtime/fetch.cc, on libcurl); redirects, aborts, body streams and content
// decoding are done here, so every hop gets the same rules and the same egress check.
'use strict';

const {
  ArrayBuffer, ArrayPrototypePush, Promise, PromisePrototypeThen, PromiseReject,
  PromiseResolve, SafeSet, StringPrototypeToLowerCase, StringPrototypeTrim, StringPrototypeSplit,
  TypeError, Uint8Array, NumberParseInt, RegExpPrototypeTest, StringPrototypeSlice,
  StringPrototypeCharCodeAt, StringPrototypeIndexOf, StringPrototypeLastIndexOf,
  StringFromCharCode, TypedArrayPrototypeSubarray,
} = primordials;

const {
  defineGlobal, addAbortAlgorithm, streams, headerList, parseURL, serializeURL, blobBytes,
  blobType, Request, requestParts, createFetchedResponse, NativeBody, LazyBody, bodyStream,
  isBodyUnusable,
} = internal;

const kRedirectStatus = new SafeSet([301, 302, 303, 307, 308]);
const kNullBodyStatus = new SafeSet([101, 103, 204, 205, 304]);
// Framing and connection headers are the client's to write; an app's values are not sent
// (the incoming request's, when it is fetched as it is, name our own connection).
const kClientOwned = new SafeSet(['host', 'connection', 'keep-alive', 'transfer-encoding',
  'content-length', 'te', 'upgrade', 'trailer', 'proxy-connection', 'expect',
  // CDN-Loop is the runtime's own (fetch.cc: loop detection)
  'cdn-loop']);
// HTTP-redirect fetch step 12: dropped with the body when a redirect turns the method to GET.
const kRequestBodyHeaders = new SafeSet(['content-encoding', 'content-language',
  'content-location', 'content-type']);
// Dropped when a redirect leaves the origin (step 13: Authorization; cookies and proxy
// credentials too, as Deno and workerd do, since no cookie store scopes them here).
const kCredentialHeaders = new SafeSet(['authorization', 'cookie', 'proxy-authorization']);
const kMaxRedirects = 20;
// Fetch §2.9 "port blocking": ports of protocols an HTTP request could be smuggled into
// (SMTP, IRC, SIP...). Refused on every hop, as browsers do.
const kBadPorts = new SafeSet([1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53,
  69, 77, 79, 87, 95, 101, 102, 103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137,
  139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554,
  556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190,
  5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080]);

function isBadPort(record) {
  return record.port !== null && record.port !== '' && kBadPorts.has(NumberParseInt(record.port, 10));
}
const kUserAgent = `nano/${binding.version}`;
// native body kinds (client.h dp_xfer_body)
const kNoBody = 0, kSized = 1, kStream = 2;
// binding.compressorPush's modes and results (35_compression_streams.js)
const kNextChunk = 0, kRest = 1, kFinish = 2;
const kMore = 1, kTrailing = 2, kTruncated = 3;
const kCodings = { __proto__: null, 'gzip': 'gzip', 'x-gzip': 'gzip', 'deflate': 'deflate', 'br': 'brotli' };
const contentLengthRe = /^[0-9]{1,15}$/;

function networkError(message) {
  return new TypeError(`fetch: ${message}`);
}

// The URL's host as the egress policy sees it: lowercase, IPv6 without brackets.
function hostOf(record) {
  const host = record.host;
  return host[0] === '[' ? StringPrototypeSlice(host, 1, -1) : host;
}

function parseHttpUrl(url, base) {
  const record = parseURL(url, base);
  if (typeof record !== 'object') return null;
  return record;
}

// The request as it goes out on one hop: method, URL, header pairs and body.
class Hop {
  constructor(method, url, record, pairs, body) {
    this.method = method;
    this.url = url;
    this.record = record;
    this.pairs = pairs; // [[name, value], ...], names as the app wrote them
    this.body = body;   // null | { bytes: Uint8Array } | { stream, length (-1 unknown) }
  }
}

// Fetch "extract" for transmission: the request's body as bytes (re-sendable on a 307/308)
// or a stream (sent once).
function transmitBody(state, headers) {
  const source = state.source;
  if (source === null) return null;
  if (isBodyUnusable(state)) throw networkError('the request body has already been read');
  if (typeof source === 'string') {
    state.used = true;
    return { bytes: binding.encodeUtf8(source) };
  }
  if (source instanceof Uint8Array) {
    state.used = true;
    return { bytes: source };
  }
  // The incoming request's body, untouched (as it is, or as the stream its `body` made): the
  // runtime sends it as it arrives, with its declared length (upstreams that refuse chunked
  // uploads accept it).
  let nativeId = -1;
  if (source instanceof NativeBody) {
    nativeId = source.id;
    state.used = true;
  } else {
    const S = streams;
    const r = S.RS(source);
    if (r.nativeBodyId !== undefined && !r.disturbed && r.reader === null && r.state === 'readable') {
      nativeId = r.nativeBodyId;
      r.disturbed = true;
      void new S.ReadableStreamDefaultReader(source); // locked for good: nothing else reads it
    }
  }
  if (nativeId !== -1) {
    let length = -1;
    const declared = headerValue(headers, 'content-length');
    if (declared !== null && RegExpPrototypeTest(contentLengthRe, declared)) {
      length = NumberParseInt(declared, 10);
    }
    return { native: nativeId, length };
  }
  return { stream: bodyStream(state), length: -1 };
}

function headerValue(headers, name) {
  const list = headerList(headers);
  for (let i = 0; i < list.length; i++) {
    if (list[i][0] === name) return list[i][1];
  }
  return null;
}

function headerLines(hop) {
  const lines = [];
  let hasAccept = false, hasEncoding = false, hasAgent = false;
  const pairs = hop.pairs;
  for (let i = 0; i < pairs.length; i++) {
    const name = pairs[i][0];
    const lower = StringPrototypeToLowerCase(name);
    if (kClientOwned.has(lower)) continue;
    if (lower === 'accept') hasAccept = true;
    else if (lower === 'accept-encoding') hasEncoding = true;
    else if (lower === 'user-agent') hasAgent = true;
    ArrayPrototypePush(lines, `${name}: ${pairs[i][1]}`);
  }
  if (!hasAccept) ArrayPrototypePush(lines, 'accept: */*');
  if (!hasEncoding) ArrayPrototypePush(lines, 'accept-encoding: gzip, deflate, br');
  if (!hasAgent) ArrayPrototypePush(lines, `user-agent: ${kUserAgent}`);
  return lines;
}

function cancelReader(reader, reason) {
  PromisePrototypeThen(reader.cancel(reason), undefined, () => undefined);
}

// Sends a stream body piece by piece, each when the transfer wants the next.
function pumpUpload(ongoing, id, stream) {
  const S = streams;
  const reader = new S.ReadableStreamDefaultReader(stream);
  ongoing.uploadReader = reader; // an abort cancels it with the signal's reason
  const fail = (err) => {
    try {
      binding.fetchSendEnd(id, false);
    } catch {
      // the transfer is gone already
    }
    cancelReader(reader, err);
  };
  const step = () => {
    if (ongoing.id !== id) {
      cancelReader(reader, networkError('the request was abandoned'));
      return;
    }
    PromisePrototypeThen(reader.read(), (r) => {
      if (ongoing.id !== id) {
        cancelReader(reader, networkError('the request was abandoned'));
        return;
      }
      if (r.done) {
        binding.fetchSendEnd(id, true);
        return;
      }
      const chunk = r.value;
      if (!(chunk instanceof Uint8Array)) {
        fail(new TypeError('fetch: a request body stream chunk is not a Uint8Array'));
        return;
      }
      if (chunk.length === 0) {
        step();
        return;
      }
      let sent;
      try {
        sent = binding.fetchSend(id, chunk);
      } catch (e) {
        cancelReader(reader, e);
        return;
      }
      PromisePrototypeThen(sent, (more) => {
        if (more) step();
        else if (ongoing.uploadReader === reader) cancelReader(reader, undefined); // the transfer ended first
      });
    }, (err) => fail(err));
  };
  step();
}

function startHop(ongoing, hop) {
  if (isBadPort(hop.record)) {
    throw networkError(`port ${hop.record.port} of "${hop.url}" is blocked (a port of another protocol, Fetch's "bad port" list)`);
  }
  const body = hop.body;
  let kind = kNoBody, length = 0, bytes;
  if (body !== null && body.bytes !== undefined) {
    kind = kSized;
    length = body.bytes.length;
    bytes = body.bytes;
  } else if (body !== null) {
    kind = body.length >= 0 ? kSized : kStream;
    length = body.length >= 0 ? body.length : 0;
  }
  const id = binding.fetchStart(hop.method, hop.url, hostOf(hop.record), headerLines(hop), kind,
    length, body !== null && body.native !== undefined ? body.native : bytes);
  ongoing.id = id;
  if (body !== null && body.stream !== undefined) pumpUpload(ongoing, id, body.stream);
  return id;
}

// A fetched response's body: a byte stream pulled from the transfer, decoded when the
// response says gzip, deflate or br. The transfer is paused while nobody reads (client.c).
// Made only when something reads the body (a LazyBody until then): a response the handler
// returns untouched is piped natively and never needs it.
function responseBody(ongoing, id, coding, codingHeader) {
  const S = streams;
  const B = S.bytes;
  let stream;
  let decoder = coding === undefined ? null : binding.compressorNew(coding, true);
  if (ongoing.abortReason !== undefined) {
    // The signal aborted before the body was first read: a stream errored with its reason.
    if (decoder !== null) binding.compressorEnd(decoder);
    stream = S.createReadableByteStream(() => undefined, () => PromiseResolve(undefined),
      () => PromiseResolve(undefined), 0);
    B.rbscError(S.RS(stream).controller, ongoing.abortReason);
    return stream;
  }
  let pending = -1; // a decoder step to continue (kRest or kFinish) before reading more
  const out = [];
  const finish = () => {
    if (ongoing.id === id) {
      ongoing.id = 0;
      binding.fetchAbort(id);
    }
    ongoing.finished();
  };
  const controller = () => S.RS(stream).controller;
  // One decoder step; returns true if it enqueued something or ended the stream.
  const decodeStep = (chunk, mode) => {
    const status = binding.compressorPush(decoder, chunk, mode, out);
    let progressed = false;
    if (out.length !== 0) {
      B.rbscEnqueue(controller(), B.viewSlots(out[0]));
      out.length = 0;
      progressed = true;
    }
    if (status === kMore) {
      pending = mode === kFinish ? kFinish : kRest;
      return progressed;
    }
    pending = -1;
    if (status === kTrailing) throw networkError('the response body has bytes after its compressed data');
    if (status === kTruncated) throw networkError('the response body ends before its compressed data does');
    if (mode === kFinish) {
      decoder = null;
      close();
      return true;
    }
    return progressed;
  };
  const close = () => {
    const c = controller();
    B.rbscClose(c);
    if (c.pendingPullIntos.length > 0) B.rbscRespond(c, 0);
    finish();
  };
  // Takes what the transfer gave (bytes, or null at the end); true when the read is served.
  const take = (buffer) => {
    if (buffer === null) {
      if (decoder !== null) return decodeStep(undefined, kFinish) || take(null);
      close();
      return true;
    }
    if (decoder !== null) return decodeStep(new Uint8Array(buffer), kNextChunk);
    B.rbscEnqueue(controller(), B.viewSlots(new Uint8Array(buffer)));
    return true;
  };
  const pull = () => {
    for (;;) {
      if (ongoing.id !== id) return PromiseResolve(undefined); // aborted: the stream errored
      let next;
      try {
        if (pending !== -1) {
          if (decodeStep(undefined, pending)) return PromiseResolve(undefined);
          continue;
        }
        next = binding.fetchRead(id);
      } catch (e) {
        finish();
        return PromiseReject(e);
      }
      if (next === null || next instanceof ArrayBuffer) {
        try {
          if (take(next)) return PromiseResolve(undefined);
        } catch (e) {
          finish();
          return PromiseReject(e);
        }
        continue;
      }
      return PromisePrototypeThen(next, (buffer) => {
        if (ongoing.id !== id) return undefined;
        try {
          if (!take(buffer)) return pull();
        } catch (e) {
          finish();
          throw e;
        }
        return undefined;
      }, (e) => {
        finish();
        throw e;
      });
    }
  };
  const cancel = () => {
    if (decoder !== null) binding.compressorEnd(decoder);
    decoder = null;
    finish();
    return PromiseResolve(undefined);
  };
  stream = S.createReadableByteStream(() => undefined, pull, cancel, 0);
  ongoing.stream = stream;
  // For the server (90_dispatch.js send): while nobody has read the body, it can send the
  // transfer's bytes to its client itself, without decoding them.
  S.RS(stream).fetchPipe = {
    coding: codingHeader,
    decodes: decoder !== null,
    take(requestId) {
      const r = S.RS(stream);
      if (ongoing.id !== id || r.disturbed || r.reader !== null || r.state !== 'readable') return false;
      binding.fetchPipe(id, requestId);
      if (decoder !== null) binding.compressorEnd(decoder);
      decoder = null;
      r.disturbed = true;
      void new S.ReadableStreamDefaultReader(stream); // locked for good: nothing else reads it
      return true;
    },
  };
  return stream;
}

// The response's Content-Encoding: [the first value or null, whether there are several].
function codingHeader(list) {
  let value = null;
  let several = false;
  for (let i = 0; i < list.length; i++) {
    if (list[i][0] === 'content-encoding') {
      if (value !== null) several = true;
      else value = list[i][1];
    }
  }
  return [value, several];
}

function contentCoding(value) {
  if (value === null || value === undefined) return undefined;
  const codings = StringPrototypeSplit(value, ',');
  if (codings.length !== 1) return undefined;
  return kCodings[StringPrototypeToLowerCase(StringPrototypeTrim(codings[0]))];
}

function pairsOf(flat) {
  const list = [];
  for (let i = 0; i < flat.length; i += 2) ArrayPrototypePush(list, [flat[i], flat[i + 1]]);
  return list;
}

function locationOf(list) {
  for (let i = 0; i < list.length; i++) {
    if (list[i][0] === 'location') return list[i][1];
  }
  return null;
}

function sameOrigin(a, b) {
  return a.scheme === b.scheme && a.host === b.host && a.port === b.port;
}

// --- scheme fetch: data: and blob: URLs, answered without the network ------------------

const mimeEssenceRe = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+\/[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const base64SuffixRe = /;[\t\n\f\r ]*base64[\t\n\f\r ]*$/i;
const hexDigitRe = /^[0-9A-Fa-f]{2}$/;

// Fetch "percent-decode" of the URL's serialized text (ASCII): a byte per code unit.
function percentDecode(s) {
  const out = new Uint8Array(s.length);
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = StringPrototypeCharCodeAt(s, i);
    if (c === 0x25 && i + 2 < s.length && RegExpPrototypeTest(hexDigitRe, StringPrototypeSlice(s, i + 1, i + 3))) {
      out[n++] = NumberParseInt(StringPrototypeSlice(s, i + 1, i + 3), 16);
      i += 2;
    } else {
      out[n++] = c & 0xff;
    }
  }
  return TypedArrayPrototypeSubarray(out, 0, n);
}

// Fetch §4.7 "data: URL processor": [MIME type, body bytes], or null on failure.
function processDataUrl(url) {
  const hash = StringPrototypeIndexOf(url, '#');
  const input = StringPrototypeSlice(url, 5, hash === -1 ? url.length : hash);
  const comma = StringPrototypeIndexOf(input, ',');
  if (comma === -1) return null;
  let mime = StringPrototypeTrim(StringPrototypeSlice(input, 0, comma));
  let body = percentDecode(StringPrototypeSlice(input, comma + 1));
  if (RegExpPrototypeTest(base64SuffixRe, mime)) {
    mime = StringPrototypeSlice(mime, 0, StringPrototypeLastIndexOf(mime, ';'));
    let text = '';
    for (let i = 0; i < body.length; i++) text += StringFromCharCode(body[i]);
    const decoded = binding.base64Decode(text);
    if (decoded === undefined || decoded === null) return null;
    body = new Uint8Array(decoded.length);
    for (let i = 0; i < decoded.length; i++) body[i] = StringPrototypeCharCodeAt(decoded, i);
  }
  if (mime[0] === ';') mime = 'text/plain' + mime;
  const semi = StringPrototypeIndexOf(mime, ';');
  const essence = StringPrototypeTrim(semi === -1 ? mime : StringPrototypeSlice(mime, 0, semi));
  if (!RegExpPrototypeTest(mimeEssenceRe, essence)) mime = 'text/plain;charset=US-ASCII';
  return [mime, body];
}

// blob: the Blob the Request resolved when its URL was parsed (undefined: none was
// registered then), so revoking the URL after making the Request does not stop it.
function schemeFetch(method, url, record, blob) {
  if (record.scheme === 'data') {
    const data = processDataUrl(url);
    if (data === null) throw networkError(`"${url}" is not a valid data: URL`);
    return createFetchedResponse(200, 'OK', [['content-type', data[0]]], data[1], [url]);
  }
  // blob: (File API §8.3): the isolate's blob URL store, GET only.
  if (blob === undefined) throw networkError(`no Blob is registered for "${url}"`);
  if (method !== 'GET') throw networkError(`a blob: URL can only be fetched with GET, not ${method}`);
  const bytes = blobBytes(blob);
  const list = [['content-length', `${bytes.length}`]];
  const type = blobType(blob);
  if (type !== '') ArrayPrototypePush(list, ['content-type', type]);
  return createFetchedResponse(200, 'OK', list, bytes, [url]);
}

function fetch(input, init = undefined) {
  let request;
  try {
    if (arguments.length < 1) throw new TypeError('fetch: 1 argument required, but only 0 present');
    request = new Request(input, init);
  } catch (e) {
    return PromiseReject(e);
  }
  const parts = requestParts(request);
  let method = parts[0];
  const url = parts[1];
  const headers = parts[2];
  const signal = parts[4];
  const redirectMode = parts[5];
  if (signal !== null && signal.aborted) return PromiseReject(signal.reason);
  const record = parseHttpUrl(url);
  if (record !== null && (record.scheme === 'data' || record.scheme === 'blob')) {
    try {
      // The request body is not read for these; a fetch still marks it used.
      const state = parts[3];
      if (state.source !== null) state.used = true;
      return PromiseResolve(schemeFetch(method, url, record, parts[6]));
    } catch (e) {
      return PromiseReject(e);
    }
  }
  if (record === null || (record.scheme !== 'http' && record.scheme !== 'https')) {
    return PromiseReject(networkError(`the URL scheme of "${url}" is not http, https, data or blob`));
  }
  let body;
  try {
    body = transmitBody(parts[3], headers);
  } catch (e) {
    return PromiseReject(e);
  }
  // Our own copy of the header list, edited by redirects.
  const list = headerList(headers);
  const pairs = [];
  for (let i = 0; i < list.length; i++) ArrayPrototypePush(pairs, [list[i][0], list[i][1]]);
  let hop = new Hop(method, url, record, pairs, body);
  const urlList = [url];
  let redirects = 0;
  let resolveFn, rejectFn;
  const promise = new Promise((resolve, reject) => {
    resolveFn = resolve;
    rejectFn = reject;
  });
  // The fetch in progress: the current hop's transfer id (0 when none), its body stream.
  const ongoing = {
    id: 0,
    stream: null,
    abortReason: undefined,
    uploadReader: null,
    settled: false,
    removeAbort: null,
    finished() {
      if (this.removeAbort !== null) this.removeAbort();
      this.removeAbort = null;
    },
  };
  const stop = () => {
    if (ongoing.id !== 0) {
      const id = ongoing.id;
      ongoing.id = 0;
      binding.fetchAbort(id);
    }
  };
  const fail = (err) => {
    stop();
    ongoing.finished();
    if (!ongoing.settled) {
      ongoing.settled = true;
      rejectFn(err);
    }
  };
  if (signal !== null) ongoing.removeAbort = addAbortAlgorithm(signal, () => {
    const reason = signal.reason;
    const upload = ongoing.uploadReader;
    ongoing.uploadReader = null;
    if (upload !== null) cancelReader(upload, reason); // Fetch "abort fetch": cancel the body
    stop();
    ongoing.finished();
    if (!ongoing.settled) {
      ongoing.settled = true;
      rejectFn(reason);
      return;
    }
    ongoing.abortReason = reason; // a body made later starts errored
    const stream = ongoing.stream;
    if (stream !== null) {
      const r = streams.RS(stream);
      if (r.state === 'readable') streams.bytes.rbscError(r.controller, reason);
    }
  });
  const onHead = (head) => {
    if (ongoing.settled) return;
    const status = head[0];
    const responseList = pairsOf(head[2]);
    const location = kRedirectStatus.has(status) ? locationOf(responseList) : null;
    if (location !== null && redirectMode !== 'manual') {
      if (redirectMode === 'error') {
        fail(networkError(`${hop.url} redirected (${status}) and the request's redirect mode is "error"`));
        return;
      }
      const next = parseHttpUrl(location, hop.url);
      if (next === null) {
        fail(networkError(`${hop.url} redirected (${status}) to an invalid URL: "${location}"`));
        return;
      }
      if (next.scheme !== 'http' && next.scheme !== 'https') {
        fail(networkError(`${hop.url} redirected to "${location}", which is not http or https`));
        return;
      }
      if (++redirects > kMaxRedirects) {
        fail(networkError(`more than ${kMaxRedirects} redirects, the last from ${hop.url}`));
        return;
      }
      stop();
      let nextBody = hop.body;
      let nextPairs = hop.pairs;
      // Step 11: a stream body (or the incoming request's) cannot be sent again.
      if (status !== 303 && nextBody !== null && nextBody.bytes === undefined) {
        fail(networkError(`${hop.url} redirected (${status}) and the request body was a stream, which cannot be sent again`));
        return;
      }
      // Step 12: 301/302 after POST, and 303 after anything but GET/HEAD, become a GET
      // without a body.
      if (((status === 301 || status === 302) && method === 'POST') ||
          (status === 303 && method !== 'GET' && method !== 'HEAD')) {
        method = 'GET';
        nextBody = null;
        const kept = [];
        for (let i = 0; i < nextPairs.length; i++) {
          if (!kRequestBodyHeaders.has(StringPrototypeToLowerCase(nextPairs[i][0]))) {
            ArrayPrototypePush(kept, nextPairs[i]);
          }
        }
        nextPairs = kept;
      }
      if (!sameOrigin(hop.record, next)) {
        const kept = [];
        for (let i = 0; i < nextPairs.length; i++) {
          if (!kCredentialHeaders.has(StringPrototypeToLowerCase(nextPairs[i][0]))) {
            ArrayPrototypePush(kept, nextPairs[i]);
          }
        }
        nextPairs = kept;
      }
      const nextUrl = serializeURL(next);
      ArrayPrototypePush(urlList, nextUrl);
      hop = new Hop(method, nextUrl, next, nextPairs, nextBody);
      run();
      return;
    }
    const id = ongoing.id;
    let source = null;
    if (method === 'HEAD' || kNullBodyStatus.has(status)) {
      stop();
      ongoing.finished();
    } else {
      const coding = codingHeader(responseList);
      // several codings (rare): the body is left as it came
      const decoded = coding[1] ? undefined : contentCoding(coding[0]);
      source = new LazyBody(
        () => responseBody(ongoing, id, decoded, coding[0]),
        coding[0], decoded !== undefined,
        (requestId) => {
          if (ongoing.id !== id) return false; // aborted or over: nothing to pipe
          binding.fetchPipe(id, requestId);
          return true;
        });
    }
    ongoing.settled = true;
    resolveFn(createFetchedResponse(status, head[1], responseList, source, urlList));
  };
  const run = () => {
    let head;
    try {
      const id = startHop(ongoing, hop);
      head = binding.fetchHead(id);
    } catch (e) {
      fail(e);
      return;
    }
    if (head instanceof Promise) PromisePrototypeThen(head, onHead, fail);
    else onHead(head);
  };
  run();
  return promise;
}

defineGlobal('fetch', fetch, true);
