// 60_fetch.js: Request, Response and the Body mixin (Fetch §5.3-5.5) for the server side.
//
// A body is one of: null, a string (USVString), a Uint8Array we own (a copy taken when the
// body was extracted), or a native request body (the incoming request's, read through
// binding.readBody). Reading marks it used; a used body cannot be read again.
'use strict';

const {
  ArrayBuffer, ArrayBufferIsView, ArrayBufferPrototypeGetByteLength, ArrayBufferPrototypeSlice,
  ArrayPrototypePush, JSONParse, JSONStringify, Number, NumberIsFinite, MathTrunc,
  PromisePrototypeThen, PromiseReject, PromiseResolve, RangeError, RegExpPrototypeTest, String,
  StringPrototypeCharCodeAt, StringPrototypeToUpperCase, SymbolToStringTag, TypeError,
  Uint8Array, TypedArrayPrototypeGetBuffer, TypedArrayPrototypeGetByteOffset,
  TypedArrayPrototypeGetByteLength, DataView, DataViewPrototypeGetBuffer,
  DataViewPrototypeGetByteOffset, DataViewPrototypeGetByteLength, SafeSet,
  StringPrototypeToLowerCase, StringPrototypeTrim, StringPrototypeSplit,
  StringPrototypeIndexOf, StringPrototypeSlice, ObjectAssign,
} = primordials;

const {
  webidl, DOMException, defineGlobal, kInspect, reportUncaught, newAbortSignal, signalAbort,
  isAbortSignal, Headers, headerList, headersFromList, fillHeaders, setHeadersGuard,
  headersAddDefault, appendHeader, hasHeader, toByteString, kGuardRequest, kGuardRequestNoCors,
  kGuardResponse, kGuardImmutable, streams, isReadableStream, URLSearchParams, parseURL,
  serializeURL, parseUrlencoded, isBlob, blobBytes, blobType, makeBlob, normalizeBlobType,
  blobURLStore, FormData, isFormData, formDataAppend, encodeMultipart, parseMultipart,
} = internal;
// Late (read as internal.x when called): baseURL (set per context).

// WebIDL USVString: lone surrogates become U+FFFD.
const surrogateRe = /[\uD800-\uDFFF]/;
function toUSVString(v) {
  const s = String(v);
  if (!RegExpPrototypeTest(surrogateRe, s)) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = StringPrototypeCharCodeAt(s, i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = StringPrototypeCharCodeAt(s, i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        out += s[i] + s[i + 1];
        i++;
        continue;
      }
    }
    out += c >= 0xd800 && c <= 0xdfff ? '\uFFFD' : s[i];
  }
  return out;
}

function copyBytes(buffer, offset, length) {
  return new Uint8Array(ArrayBufferPrototypeSlice(buffer, offset, offset + length));
}

// Fetch "extract a body": returns [source, content type or null].
const kTextPlainUtf8 = 'text/plain;charset=UTF-8';

function extractBody(init) {
  if (init === null || init === undefined) return [null, null];
  // A string is kept as it is: every way out of a body turns it into a USVString (the UTF-8
  // encoders replace lone surrogates; text() converts it), so no scan is paid here.
  if (typeof init === 'string') return [init, kTextPlainUtf8];
  if (init instanceof ArrayBuffer) {
    return [copyBytes(init, 0, ArrayBufferPrototypeGetByteLength(init)), null];
  }
  if (ArrayBufferIsView(init)) {
    if (init instanceof DataView) {
      return [copyBytes(DataViewPrototypeGetBuffer(init), DataViewPrototypeGetByteOffset(init),
        DataViewPrototypeGetByteLength(init)), null];
    }
    return [copyBytes(TypedArrayPrototypeGetBuffer(init), TypedArrayPrototypeGetByteOffset(init),
      TypedArrayPrototypeGetByteLength(init)), null];
  }
  if (isReadableStream(init)) {
    if (init.locked || streams.isDisturbed(init)) {
      throw new TypeError('A ReadableStream body must be neither locked nor already read');
    }
    return [init, null];
  }
  if (isBlob(init)) {
    const type = blobType(init);
    return [blobBytes(init), type === '' ? null : type];
  }
  if (isFormData(init)) {
    return encodeMultipart(init);
  }
  if (init instanceof URLSearchParams) {
    return [init.toString(), 'application/x-www-form-urlencoded;charset=UTF-8'];
  }
  if (typeof init === 'object' && isBodyHolder(init)) {
    throw new TypeError('A Request or Response cannot be used as a body; use its body instead');
  }
  // Any other object converts to a string, as the BodyInit union's USVString branch says.
  return [toUSVString(init), kTextPlainUtf8];
}

class NativeBody {
  constructor(id) { this.id = id; }
}

// A body whose stream is made on first use (a fetched response's: 61_fetch_client.js).
// Until then the server may instead move its bytes natively (pipe(requestId) -> true when
// it took them), sent as they came, so only while its headers still say `coding` (the
// Content-Encoding it came with; decodes: whether reading would decode it).
class LazyBody {
  constructor(make, coding, decodes, pipe) {
    this.make = make;
    this.coding = coding;
    this.decodes = decodes;
    this.pipe = pipe;
  }
}

// What to do when the server lets go of a request before its response ended (the client
// went away): by the request's slot (the low bits of its id, as in runtime_int.h), the entry
// [id, fn, ...]. Entries exist only while something listens (a streamed response, an
// incoming request's signal) and go when the response ends. An array rather than a Map:
// a Map's table, once old, links to each table that replaces it, so the handlers in young
// tables (and the requests they reach) would survive every scavenge until a full GC.
const kSlotMask = 0xfffff;
const abortHandlers = [];
const onRequestAborted = (id, fn) => {
  const slot = id & kSlotMask;
  const entry = abortHandlers[slot];
  if (entry !== undefined && entry !== null && entry[0] === id) ArrayPrototypePush(entry, fn);
  else abortHandlers[slot] = [id, fn];
};
const forgetRequest = (id) => {
  const slot = id & kSlotMask;
  const entry = abortHandlers[slot];
  if (entry !== undefined && entry !== null && entry[0] === id) abortHandlers[slot] = null;
};
// Called by the runtime (rt_request_aborted).
const requestAborted = (id) => {
  const slot = id & kSlotMask;
  const entry = abortHandlers[slot];
  if (entry === undefined || entry === null || entry[0] !== id) return;
  abortHandlers[slot] = null;
  for (let i = 1; i < entry.length; i++) {
    const fn = entry[i];
    try {
      fn();
    } catch (e) {
      reportUncaught(e);
    }
  }
};
const clientGoneReason = () =>
  new DOMException('The client closed the connection before the response ended', 'AbortError');

// The state behind one body; Request and Response each hold one.
class BodyState {
  constructor(source) {
    this.source = source;
    this.used = false;
  }
}

function bodyUsedError(what) {
  return new TypeError(`${what}: the body has already been read`);
}

// Fetch "unusable": read already, or a stream body that is locked or disturbed.
function isUnusable(state) {
  const source = state.source;
  if (source !== null && isReadableStream(source)) {
    return state.used || source.locked || streams.isDisturbed(source);
  }
  return state.used;
}

async function readBytes(state, what) {
  if (isUnusable(state)) throw bodyUsedError(what);
  const source = state.source;
  if (source === null) return new Uint8Array(0);
  state.used = true;
  if (typeof source === 'string') return binding.encodeUtf8(source);
  if (source instanceof NativeBody) return new Uint8Array(await binding.readBody(source.id));
  if (source instanceof LazyBody) return readAllBytes(materialize(state), what);
  if (isReadableStream(source)) return readAllBytes(source, what);
  return source;
}

// Fetch "fully read" a body stream: its chunks must be Uint8Arrays.
async function readAllBytes(stream, what) {
  if (stream.locked) throw new TypeError(`${what}: the body stream is locked`);
  const reader = stream.getReader();
  const chunks = [];
  let total = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    if (!(value instanceof Uint8Array)) {
      const err = new TypeError(`${what}: a body stream chunk is not a Uint8Array`);
      reader.cancel(err);
      throw err;
    }
    ArrayPrototypePush(chunks, value);
    total += value.length;
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (let i = 0; i < chunks.length; i++) {
    const c = chunks[i];
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}

function consumeText(state, what) {
  if (isUnusable(state)) return PromiseReject(bodyUsedError(what));
  if (typeof state.source === 'string') {
    state.used = true;
    return PromiseResolve(toUSVString(state.source));
  }
  return PromisePrototypeThen(readBytes(state, what), (bytes) => binding.decodeUtf8(bytes));
}

// The Body mixin's methods, installed on both classes; `stateOf` finds the BodyState and
// brand-checks the receiver.
function installBody(proto, stateOf, name, headersOf) {
  const mimeOf = (self) => headersOf(self).get('content-type') ?? '';
  const methods = {
    blob() {
      const type = mimeOf(this);
      return PromisePrototypeThen(readBytes(stateOf(this), `${name}.blob`),
        (bytes) => makeBlob(bytes, normalizeBlobType(type)));
    },
    formData() {
      const type = mimeOf(this);
      const hasNoBody = stateOf(this).source === null;
      return PromisePrototypeThen(readBytes(stateOf(this), `${name}.formData`), (bytes) => {
        const essence = StringPrototypeToLowerCase(StringPrototypeTrim(StringPrototypeSplit(type, ';')[0]));
        if (essence === 'multipart/form-data') {
          // An empty FormData is sent as no bytes, and reads back as one; no body at all is
          // not multipart data.
          if (hasNoBody) throw new TypeError(`${name}.formData: there is no body to parse as multipart/form-data`);
          return parseMultipart(bytes, type);
        }
        if (essence === 'application/x-www-form-urlencoded') {
          const fd = new FormData();
          const pairs = parseUrlencoded(binding.utf8Decode(bytes, false, false)[0]);
          for (let i = 0; i < pairs.length; i++) formDataAppend(fd, pairs[i][0], pairs[i][1]);
          return fd;
        }
        throw new TypeError(`${name}.formData: the body's Content-Type (${type || 'none'}) is ` +
          'not multipart/form-data or application/x-www-form-urlencoded');
      });
    },
    arrayBuffer() {
      return PromisePrototypeThen(readBytes(stateOf(this), `${name}.arrayBuffer`), (bytes) => {
        const buffer = TypedArrayPrototypeGetBuffer(bytes);
        return TypedArrayPrototypeGetByteOffset(bytes) === 0 &&
          ArrayBufferPrototypeGetByteLength(buffer) === TypedArrayPrototypeGetByteLength(bytes)
          ? buffer : ArrayBufferPrototypeSlice(buffer, TypedArrayPrototypeGetByteOffset(bytes),
            TypedArrayPrototypeGetByteOffset(bytes) + TypedArrayPrototypeGetByteLength(bytes));
      });
    },
    bytes() {
      return readBytes(stateOf(this), `${name}.bytes`);
    },
    text() {
      return consumeText(stateOf(this), `${name}.text`);
    },
    json() {
      return PromisePrototypeThen(consumeText(stateOf(this), `${name}.json`), JSONParse);
    },
  };
  for (let i = 0, list = ['arrayBuffer', 'blob', 'bytes', 'formData', 'text', 'json']; i < list.length; i++) {
    const key = list[i];
    Reflect.defineProperty(proto, key,
      { value: methods[key], writable: true, enumerable: true, configurable: true });
  }
  Reflect.defineProperty(proto, 'body', {
    get: { body() { return bodyStream(stateOf(this)); } }.body,
    enumerable: true, configurable: true,
  });
  Reflect.defineProperty(proto, 'bodyUsed', {
    get: { bodyUsed() {
      const s = stateOf(this);
      if (s.source !== null && isReadableStream(s.source) && streams.isDisturbed(s.source)) return true;
      return s.source !== null && s.used;
    } }.bodyUsed,
    enumerable: true, configurable: true,
  });
}

// The body as a ReadableStream (Fetch "body" getter): null for no body; otherwise the body
// becomes a stream on first access, and every later read goes through it. An incoming
// request's body is the socket-fed byte stream of nativeBodyStream.
function materialize(state) {
  const stream = state.source.make();
  state.source = stream;
  return stream;
}

function bodyStream(state) {
  const source = state.source;
  if (source === null) return null;
  if (isReadableStream(source)) return source;
  if (source instanceof LazyBody) {
    if (!state.used) return materialize(state);
    state.source = ''; // read already: made below as a used, closed stream
  }
  const S = streams;
  let stream;
  if (state.used) {
    // Already consumed by text() and friends: a closed stream that was read and stays
    // locked to the reader that consumed it.
    stream = S.createReadableStream(() => undefined, () => undefined, () => undefined, 0);
    S.rdcClose(S.RS(stream).controller);
    S.RS(stream).disturbed = true;
    void new S.ReadableStreamDefaultReader(stream);
    state.source = stream;
    state.used = false;
    return stream;
  }
  if (source instanceof NativeBody) {
    stream = nativeBodyStream(source.id);
    state.source = stream;
    return stream;
  }
  let delivered = false;
  // A byte stream (Fetch: "set up with byte reading support"), so BYOB readers work too.
  const pull = () => {
    if (delivered) return PromiseResolve(undefined);
    delivered = true;
    const c = S.RS(stream).controller;
    // Our own bytes are copied, so a reader cannot change what a clone sees.
    let bytes;
    if (typeof source === 'string') {
      bytes = binding.encodeUtf8(source);
    } else {
      bytes = new Uint8Array(source.length);
      bytes.set(source);
    }
    if (bytes.length > 0) S.bytes.rbscEnqueue(c, S.bytes.viewSlots(bytes));
    S.bytes.rbscClose(c);
    if (c.pendingPullIntos.length > 0) S.bytes.rbscRespond(c, 0);
    return PromiseResolve(undefined);
  };
  stream = S.createReadableByteStream(() => undefined, pull, () => PromiseResolve(undefined), 0);
  state.source = stream;
  return stream;
}

// An incoming request's body as a byte stream fed from the socket. Each pull takes what the
// server has received (one ArrayBuffer, no copy); while nobody pulls, the server holds the
// client back once 64 KiB wait (request.h). Canceling drops the rest of the body.
function nativeBodyStream(id) {
  const S = streams;
  const B = S.bytes;
  let stream;
  const deliver = (buffer) => {
    const c = S.RS(stream).controller;
    if (c.stream.state !== 'readable' || c.closeRequested) return;
    if (buffer === null) {
      B.rbscClose(c);
      // A BYOB read waiting when the body ends gets its (empty) view back.
      if (c.pendingPullIntos.length > 0) B.rbscRespond(c, 0);
      return;
    }
    B.rbscEnqueue(c, B.viewSlots(new Uint8Array(buffer)));
  };
  const pull = () => {
    let next;
    try {
      next = binding.readBodyChunk(id);
    } catch (e) {
      return PromiseReject(e);
    }
    if (next === null || next instanceof ArrayBuffer) {
      deliver(next);
      return PromiseResolve(undefined);
    }
    return PromisePrototypeThen(next, deliver);
  };
  const cancel = () => {
    try {
      binding.cancelBody(id);
    } catch {
      // The request's context ended: nothing is left to drop.
    }
    return PromiseResolve(undefined);
  };
  stream = S.createReadableByteStream(() => undefined, pull, cancel, 0);
  S.RS(stream).nativeBodyId = id;
  return stream;
}

// Fetch "clone a body": a stream body is teed, one branch staying, the other for the copy.
function cloneBodySource(body) {
  if (body.source instanceof NativeBody || body.source instanceof LazyBody) bodyStream(body);
  if (!isReadableStream(body.source)) return body.source;
  const branches = streams.readableStreamTee(streams.RS(body.source));
  const a = branches[0];
  const b = branches[1];
  body.source = a;
  return b;
}

let isBodyHolder;

// --- Request ---------------------------------------------------------------------------

const kMethodsToNormalize = new SafeSet(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT']);
const kForbiddenMethods = new SafeSet(['CONNECT', 'TRACE', 'TRACK']);
const tokenRe = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const absoluteUrlRe = /^[A-Za-z][A-Za-z0-9+.\-]*:[^\s]*$/;
const kRedirectModes = new SafeSet(['follow', 'error', 'manual']);
const kCacheModes = ['default', 'no-store', 'reload', 'no-cache', 'force-cache', 'only-if-cached'];
const kReferrerPolicies = ['', 'no-referrer', 'no-referrer-when-downgrade', 'same-origin', 'origin',
  'strict-origin', 'origin-when-cross-origin', 'strict-origin-when-cross-origin', 'unsafe-url'];

function normalizeMethod(method) {
  method = toByteString(method, 'Request method');
  if (!RegExpPrototypeTest(tokenRe, method)) {
    throw new TypeError(`"${method}" is not a valid HTTP method`);
  }
  const upper = StringPrototypeToUpperCase(method);
  if (kForbiddenMethods.has(upper)) throw new TypeError(`HTTP method ${upper} is not allowed`);
  return kMethodsToNormalize.has(upper) ? upper : method;
}

// Parses a request URL against the base URL (--location; none on a server, as on Workers):
// an absolute URL without credentials, serialized.
function parseRequestUrl(input, what = 'Request') {
  const url = toUSVString(input);
  const record = parseURL(url, internal.baseURL);
  if (typeof record !== 'object') throw new TypeError(`${what}: Invalid URL: "${url}"`);
  if (what === 'Request' && (record.username !== '' || record.password !== '')) {
    throw new TypeError(`Request: the URL "${url}" includes credentials`);
  }
  return serializeURL(record);
}

let requestState, createIncomingRequest, isRequest, requestParts;
const kIncoming = Symbol('nano.incomingRequest');

class Request {
  #method = 'GET';
  #url = '';
  #urlIsRaw = false;    // #url is the server's text, not yet parsed
  #headers = null;      // Headers, made on first use for incoming requests
  #nativeId = -1;       // incoming request: its runtime id, for lazy headers
  #body = new BodyState(null);
  #redirect = 'follow';
  #mode = 'cors';
  #credentials = 'same-origin';
  #cache = 'default';
  #referrer = 'about:client';
  #referrerPolicy = '';
  #integrity = '';
  #keepalive = false;
  #priority = 'auto';
  #signal = null; // made on first read for incoming requests
  // A constructed request's signal follows this one (null: none); the dependent signal is made
  // when the app first reads request.signal (no one can listen to it before), since making
  // one per Request costs WeakRefs that fetch() does not need.
  #signalSource = null;
  #blob = undefined; // a blob: URL's Blob, resolved when the URL was parsed (File API §8.3)

  constructor(input, init = undefined) {
    if (input === kIncoming) {
      // An incoming request: the server's absolute URL is parsed when first read.
      this.#url = init;
      this.#urlIsRaw = true;
      return;
    }
    if (arguments.length < 1) throw new TypeError('Request: 1 argument required');
    if (init !== undefined && (init === null || typeof init !== 'object')) {
      throw new TypeError('Request: init must be an object');
    }
    let inputBody = null;
    let inputSignal = null;
    if (input instanceof Request) {
      this.#method = input.#method;
      this.#url = input.url;
      this.#blob = input.#blob;
      this.#redirect = input.#redirect;
      this.#mode = input.#mode;
      this.#credentials = input.#credentials;
      this.#cache = input.#cache;
      this.#referrer = input.#referrer;
      this.#referrerPolicy = input.#referrerPolicy;
      this.#integrity = input.#integrity;
      this.#keepalive = input.#keepalive;
      this.#priority = input.#priority;
      this.#headers = new Headers(input.headers);
      inputBody = input.#body;
      inputSignal = input.signal;
    } else {
      this.#url = parseRequestUrl(input);
      this.#headers = new Headers();
      if (StringPrototypeSlice(this.#url, 0, 5) === 'blob:') {
        const hash = StringPrototypeIndexOf(this.#url, '#');
        this.#blob = blobURLStore.get(hash === -1 ? this.#url : StringPrototypeSlice(this.#url, 0, hash));
      }
    }
    init = init || {};
    const context = "Failed to construct 'Request'";
    // RequestInit members (Fetch §5.4, "new Request" steps 13-29), validated as the spec says.
    if (init.window !== undefined && init.window !== null) {
      throw new TypeError(`${context}: RequestInit's window must be null`);
    }
    if (init.referrer !== undefined) {
      const referrer = toUSVString(init.referrer);
      if (referrer === '') {
        this.#referrer = '';
      } else {
        const parsed = parseURL(referrer, internal.baseURL);
        if (typeof parsed !== 'object') throw new TypeError(`${context}: the referrer "${referrer}" is not a valid URL`);
        this.#referrer = serializeURL(parsed);
      }
    }
    if (init.referrerPolicy !== undefined) {
      this.#referrerPolicy = webidl.enumValue(init.referrerPolicy, kReferrerPolicies, `${context}: referrerPolicy`);
    }
    if (init.mode !== undefined) {
      const mode = webidl.enumValue(init.mode, ['navigate', 'same-origin', 'no-cors', 'cors'], `${context}: mode`);
      if (mode === 'navigate') throw new TypeError(`${context}: mode cannot be "navigate"`);
      this.#mode = mode;
    }
    if (init.credentials !== undefined) {
      this.#credentials = webidl.enumValue(init.credentials, ['omit', 'same-origin', 'include'], `${context}: credentials`);
    }
    if (init.cache !== undefined) {
      this.#cache = webidl.enumValue(init.cache, kCacheModes, `${context}: cache`);
    }
    if (this.#cache === 'only-if-cached' && this.#mode !== 'same-origin') {
      throw new TypeError(`${context}: cache "only-if-cached" needs mode "same-origin"`);
    }
    if (init.redirect !== undefined) {
      this.#redirect = webidl.enumValue(init.redirect, ['follow', 'error', 'manual'], `${context}: redirect`);
    }
    if (init.integrity !== undefined) this.#integrity = webidl.DOMString(init.integrity);
    if (init.keepalive !== undefined) this.#keepalive = !!init.keepalive;
    if (init.priority !== undefined) {
      this.#priority = webidl.enumValue(init.priority, ['high', 'low', 'auto'], `${context}: priority`);
    }
    if (init.method !== undefined) this.#method = normalizeMethod(init.method);
    let signal = inputSignal;
    if (init.signal !== undefined) {
      if (init.signal !== null && !isAbortSignal(init.signal)) {
        throw new TypeError(`${context}: signal is not an AbortSignal`);
      }
      signal = init.signal;
    }
    // The request's own signal follows the given one.
    this.#signalSource = signal;
    if (this.#mode === 'no-cors' && this.#method !== 'GET' && this.#method !== 'HEAD' && this.#method !== 'POST') {
      throw new TypeError(`${context}: a no-cors request's method must be GET, HEAD or POST`);
    }
    if (init.duplex !== undefined) webidl.enumValue(init.duplex, ['half'], `${context}: duplex`);
    // Fetch "new Request" step 32: with any init member, the headers are refilled (from
    // init.headers, else the input's) under the request's guard, which filters for no-cors.
    const source = init.headers !== undefined ? init.headers : this.#headers;
    const headers = new Headers();
    setHeadersGuard(headers, this.#mode === 'no-cors' ? kGuardRequestNoCors
      : kGuardRequest);
    fillHeaders(headers, source);
    this.#headers = headers;
    const hasInitBody = init.body !== undefined && init.body !== null;
    if ((hasInitBody || (inputBody !== null && inputBody.source !== null)) &&
        (this.#method === 'GET' || this.#method === 'HEAD')) {
      throw new TypeError(`A ${this.#method} request cannot have a body`);
    }
    if (hasInitBody) {
      const extracted = extractBody(init.body);
      const source = extracted[0];
      const type = extracted[1];
      if (isReadableStream(source)) {
        // Fetch "extract a body" with keepalive, and the mode rule for stream bodies. (Fetch
        // also wants duplex: "half" here; Workers and Deno do not, and apps written for them
        // omit it, so a missing duplex means "half".)
        if (this.#keepalive) throw new TypeError(`${context}: a keepalive request cannot have a ReadableStream body`);
        if (this.#mode !== 'same-origin' && this.#mode !== 'cors') {
          throw new TypeError(`${context}: a ReadableStream body needs mode "same-origin" or "cors"`);
        }
      }
      this.#body = new BodyState(source);
      if (type !== null && !hasHeader(this.#headers, 'content-type')) {
        appendHeader(this.#headers, 'content-type', type);
      }
    } else if (inputBody !== null) {
      if (isUnusable(inputBody)) throw new TypeError('Request: the input request\'s body is already used or locked');
      // Fetch: the new request takes over the input's body, which becomes used.
      this.#body = new BodyState(inputBody.source);
      if (inputBody.source !== null) inputBody.used = true;
    }
  }

  get method() { return this.#method; }
  get url() {
    if (this.#urlIsRaw) {
      this.#urlIsRaw = false;
      const record = parseURL(this.#url);
      if (typeof record === 'object') this.#url = serializeURL(record);
    }
    return this.#url;
  }
  get headers() {
    if (this.#headers === null) {
      const flat = binding.requestHeaders(this.#nativeId);
      const list = [];
      for (let i = 0; i < flat.length; i += 2) ArrayPrototypePush(list, [flat[i], flat[i + 1]]);
      this.#headers = headersFromList(list, kGuardImmutable);
    }
    return this.#headers;
  }
  get redirect() { return this.#redirect; }
  get destination() { return ''; }
  get referrer() {
    // "no-referrer" is the empty string; "client" serializes as about:client.
    return this.#referrer;
  }
  get referrerPolicy() { return this.#referrerPolicy; }
  get mode() { return this.#mode; }
  get credentials() { return this.#credentials; }
  get cache() { return this.#cache; }
  get integrity() { return this.#integrity; }
  get keepalive() { return this.#keepalive; }
  get isReloadNavigation() { return false; }
  get isHistoryNavigation() { return false; }
  get duplex() { return 'half'; }
  get signal() {
    // An incoming request's signal is made when first asked for, and aborts if the client
    // goes away before the response has ended.
    if (this.#signal === null) {
      if (this.#signalSource !== null) {
        this.#signal = AbortSignal.any([this.#signalSource]);
        this.#signalSource = null;
        return this.#signal;
      }
      const signal = newAbortSignal();
      this.#signal = signal;
      if (this.#nativeId !== -1) {
        onRequestAborted(this.#nativeId, () => signalAbort(signal, clientGoneReason()));
      }
    }
    return this.#signal;
  }

  clone() {
    const body = this.#body;
    if (isUnusable(body)) throw new TypeError('Request.clone: the body has already been read or is locked');
    // Built field by field: the constructor would take over (use up) this request's body.
    const copy = new Request(kIncoming, this.url);
    copy.#urlIsRaw = false;
    copy.#method = this.#method;
    copy.#redirect = this.#redirect;
    copy.#blob = this.#blob;
    copy.#mode = this.#mode;
    copy.#credentials = this.#credentials;
    copy.#cache = this.#cache;
    copy.#referrer = this.#referrer;
    copy.#referrerPolicy = this.#referrerPolicy;
    copy.#integrity = this.#integrity;
    copy.#keepalive = this.#keepalive;
    copy.#priority = this.#priority;
    copy.#signal = AbortSignal.any([this.signal]);
    copy.#headers = new Headers(this.headers);
    setHeadersGuard(copy.#headers, kGuardRequest);
    copy.#body = new BodyState(cloneBodySource(body));
    return copy;
  }

  static {
    requestState = (r) => {
      if (!(#body in r)) throw new TypeError('Illegal invocation: not a Request');
      return r.#body;
    };
    createIncomingRequest = (id, method, url, hasBody) => {
      const r = new Request(kIncoming, url);
      r.#method = method;
      r.#headers = null;
      r.#nativeId = id;
      r.#body = new BodyState(hasBody ? new NativeBody(id) : null);
      return r;
    };
    isRequest = (v) => v !== null && typeof v === 'object' && #body in v;
    // What fetch() needs: [method, url, Headers, BodyState, signal, redirect mode].
    // The signal is the request's own if made, else the one it follows (null: none), with
    // the same effect on a fetch.
    requestParts = (r) => [r.#method, r.url, r.headers, r.#body,
      r.#signal !== null ? r.#signal : r.#signalSource, r.#redirect, r.#blob];
  }
}
installBody(Request.prototype, (r) => requestState(r), 'Request', (r) => r.headers);
Reflect.defineProperty(Request.prototype, SymbolToStringTag, { value: 'Request', configurable: true });
Request.prototype[kInspect] = function (fmt) {
  return `Request { method: ${fmt(this.method)}, url: ${fmt(this.url)}, headers: ${fmt(this.headers)} }`;
};
Reflect.defineProperty(Request.prototype, kInspect, { enumerable: false });

// --- Response --------------------------------------------------------------------------

const reasonPhraseRe = /^[\t\x20-\x7e\x80-\xff]*$/;
const kNullBodyStatus = new SafeSet([101, 103, 204, 205, 304]);
const kRedirectStatus = new SafeSet([301, 302, 303, 307, 308]);
let responseState, isResponse, responseParts, createFetchedResponse;
const kInitialized = Symbol('nano.responseInitialized');

// Fetch "initialize a response"; typeOverride replaces the body's own Content-Type
// (Response.json uses application/json).
function initResponse(init, body, typeOverride = null) {
  let s16 = 200;
  let statusText = '';
  const headers = new Headers();
  // No init (most responses): the defaults, with nothing to read or check.
  if (init !== undefined && init !== null) {
    if (typeof init !== 'object') throw new TypeError('Response: init must be an object');
    // WebIDL unsigned short (truncate, modulo 2^16), then Fetch's range check.
    if (init.status !== undefined) {
      s16 = Number(init.status);
      s16 = NumberIsFinite(s16) ? ((MathTrunc(s16) % 65536) + 65536) % 65536 : 0;
      if (s16 < 200 || s16 > 599) {
        throw new RangeError(`Response status ${init.status} is outside the range 200 to 599`);
      }
    }
    if (init.statusText !== undefined) {
      statusText = toByteString(init.statusText, 'Response statusText');
      if (!RegExpPrototypeTest(reasonPhraseRe, statusText)) {
        throw new TypeError('Response statusText must be a valid reason phrase (no CR or LF)');
      }
    }
    if (init.headers !== undefined) fillHeaders(headers, init.headers);
  }
  setHeadersGuard(headers, kGuardResponse);
  let source = null;
  if (body !== null && body !== undefined) {
    if (kNullBodyStatus.has(s16)) {
      throw new TypeError(`A Response with status ${s16} cannot have a body`);
    }
    const extracted = extractBody(body);
    const src = extracted[0];
    const type = extracted[1];
    source = src;
    const contentType = typeOverride !== null ? typeOverride : type;
    if (contentType !== null && (contentType === kTextPlainUtf8 || contentType === typeOverride)) {
      // Our own constants (every Response with a string body): no header checks needed.
      headersAddDefault(headers, 'content-type', contentType);
    } else if (contentType !== null && !hasHeader(headers, 'content-type')) {
      appendHeader(headers, 'content-type', contentType);
    }
  }
  return { status: s16, statusText, headers, source };
}

class Response {
  #type = 'default';
  #status = 200;
  #statusText = '';
  #headers;
  #body;
  #urlList = null; // a fetched response: the URLs it went through, redirects included

  constructor(body = null, init = undefined) {
    // kInitialized: a static factory (json) ran initResponse itself; init is its result.
    const r = body === kInitialized ? init : initResponse(init, body);
    this.#status = r.status;
    this.#statusText = r.statusText;
    this.#headers = r.headers;
    this.#body = new BodyState(r.source);
  }

  static error() {
    const res = new Response(null);
    res.#type = 'error';
    res.#status = 0;
    res.#headers = headersFromList([], kGuardImmutable);
    return res;
  }

  static redirect(url, status = 302) {
    const parsed = parseRequestUrl(url, 'Response.redirect');
    status = Number(status);
    if (!kRedirectStatus.has(status)) {
      throw new RangeError(`Redirect status must be 301, 302, 303, 307 or 308, got ${status}`);
    }
    const res = new Response(null, { status });
    res.#headers = headersFromList([['location', parsed]], kGuardImmutable);
    return res;
  }

  static json(data, init = undefined) {
    const text = JSONStringify(data);
    if (text === undefined) throw new TypeError('Response.json: the data is not serializable to JSON');
    return new Response(kInitialized, initResponse(init, text, 'application/json'));
  }

  get type() { return this.#type; }
  get url() {
    if (this.#urlList === null) return '';
    // Fetch: the response URL serialized with "exclude fragment".
    const url = this.#urlList[this.#urlList.length - 1];
    const hash = StringPrototypeIndexOf(url, '#');
    return hash === -1 ? url : StringPrototypeSlice(url, 0, hash);
  }
  get redirected() { return this.#urlList !== null && this.#urlList.length > 1; }
  get status() { return this.#status; }
  get ok() { return this.#status >= 200 && this.#status <= 299; }
  get statusText() { return this.#statusText; }
  get headers() { return this.#headers; }

  clone() {
    const body = this.#body;
    if (isUnusable(body)) throw new TypeError('Response.clone: the body has already been read or is locked');
    const copy = new Response(null);
    copy.#type = this.#type;
    copy.#status = this.#status;
    copy.#statusText = this.#statusText;
    copy.#headers = new Headers(this.#headers);
    setHeadersGuard(copy.#headers, this.#type === 'error' || this.#urlList !== null
      ? kGuardImmutable : kGuardResponse);
    copy.#urlList = this.#urlList;
    copy.#body = new BodyState(cloneBodySource(body));
    return copy;
  }

  static {
    responseState = (r) => {
      if (!(#body in r)) throw new TypeError('Illegal invocation: not a Response');
      return r.#body;
    };
    isResponse = (v) => v !== null && typeof v === 'object' && #body in v;
    // What the server needs to send it: [status, statusText, header list, body source].
    responseParts = (r) => [r.#type === 'error' ? 0 : r.#status, r.#statusText,
      headerList(r.#headers), r.#body];
    // A response that fetch() received: its headers cannot be changed (Fetch: "immutable").
    createFetchedResponse = (status, statusText, list, source, urlList) => {
      const res = new Response(null);
      res.#status = status;
      res.#statusText = statusText;
      res.#headers = headersFromList(list, kGuardImmutable);
      res.#body = new BodyState(source);
      res.#urlList = urlList;
      return res;
    };
  }
}
installBody(Response.prototype, (r) => responseState(r), 'Response', (r) => r.headers);
Reflect.defineProperty(Response.prototype, SymbolToStringTag, { value: 'Response', configurable: true });
Response.prototype[kInspect] = function (fmt) {
  return `Response { status: ${this.status}, statusText: ${fmt(this.statusText)}, ` +
    `headers: ${fmt(this.headers)}, bodyUsed: ${this.bodyUsed} }`;
};
Reflect.defineProperty(Response.prototype, kInspect, { enumerable: false });

isBodyHolder = (v) => isRequest(v) || isResponse(v);
webidl.configureInterface(Request);
webidl.configureInterface(Response);
defineGlobal('Request', Request);
defineGlobal('Response', Response);

ObjectAssign(internal, {
  Request, isRequest, requestParts, createIncomingRequest, isResponse, responseParts,
  createFetchedResponse, NativeBody, LazyBody, bodyStream, isBodyUnusable: isUnusable,
  readAllBytes, toUSVString, onRequestAborted, forgetRequest, requestAborted, clientGoneReason,
});
