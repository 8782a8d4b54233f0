// 90_dispatch.js: calls the app's fetch handler for each request and hands its Response to
// the server. The runtime calls internal.dispatch(id, method, url, hasBody) once per request;
// that is the only JS entry on the request path.
'use strict';

const {
  PromisePrototypeThen, PromiseResolve, ReflectApply, TypeError, ObjectFreeze,
  Uint8Array: PrimordialUint8Array, Error: PrimordialError, RegExpPrototypeTest, NumberParseInt,
  ObjectIsFrozen, ReflectOwnKeys, ObjectCreate, ObjectDefineProperty, ArrayPrototypePush,
  ObjectAssign,
} = primordials;
const {
  inspect, formatError, Event, kTrustedEvent, dispatchEvent, reportUncaught, streams,
  isReadableStream, createIncomingRequest, isResponse, responseParts, NativeBody, LazyBody,
  bodyStream, onRequestAborted, forgetRequest, clientGoneReason,
} = internal;
// The request path reads binding.respond on every request. `binding` holds hundreds of
// properties (V8 keeps it in dictionary mode), so a load from it in optimized code is a
// generic LoadIC call: taken once here instead.
const { respond: bindingRespond } = binding;

// The env the next request gets: the runtime sets internal.env (the accessor given at the
// end) when the app's env changes; dispatch reads the variable.
let currentEnv;

let handler = null;
let fetchFn = null;

// Set by the runtime once the app's module has evaluated: its default export.
const setHandler = (exported) => {
  handler = exported;
  fetchFn = exported.fetch;
};

// The `ctx` argument (Workers' ExecutionContext).
class ExecutionContext {
  #id;
  constructor(id) { this.#id = id; }
  waitUntil(promise) {
    if (arguments.length < 1) throw new TypeError('waitUntil: 1 argument required');
    const id = this.#id;
    binding.waitUntilStart(id); // throws once the request context has ended
    PromisePrototypeThen(PromiseResolve(promise),
      () => binding.waitUntilEnd(id),
      (err) => {
        reportUncaught(err);
        binding.waitUntilEnd(id);
      });
  }
}
Reflect.defineProperty(ExecutionContext.prototype, Symbol.toStringTag,
  { value: 'ExecutionContext', configurable: true });

function describe(v) {
  if (v === null) return 'null';
  if (typeof v !== 'object') return typeof v;
  return inspect(v, 0);
}

function fail(id, err) {
  forgetRequest(id);
  binding.fail(id, formatError(err));
}

// The length of a streamed body, when the app gave a valid Content-Length; -1 otherwise
// (the server then sends it chunked).
function contentEncoding(list) {
  for (let i = 0; i < list.length; i++) {
    if (list[i][0] === 'content-encoding') return list[i][1];
  }
  return null;
}

function declaredLength(list) {
  for (let i = 0; i < list.length; i++) {
    if (list[i][0] === 'content-length') {
      const v = list[i][1];
      return RegExpPrototypeTest(/^[0-9]{1,15}$/, v) ? NumberParseInt(v, 10) : -1;
    }
  }
  return -1;
}

// Calls fn(id, status, statusText, extra, name, value, name, value, ...): the server's
// response functions take the header list as trailing arguments, which the native side reads
// for free (each element of an array would cost it a property lookup). Most responses have
// a few headers; those calls spread nothing.
function withHeaders(fn, id, status, statusText, extra, list) {
  switch (list.length) {
    case 0: return fn(id, status, statusText, extra);
    case 1: return fn(id, status, statusText, extra, list[0][0], list[0][1]);
    case 2: return fn(id, status, statusText, extra, list[0][0], list[0][1], list[1][0],
      list[1][1]);
    case 3: return fn(id, status, statusText, extra, list[0][0], list[0][1], list[1][0],
      list[1][1], list[2][0], list[2][1]);
  }
  const args = [id, status, statusText, extra];
  for (let i = 0; i < list.length; i++) ArrayPrototypePush(args, list[i][0], list[i][1]);
  return ReflectApply(fn, undefined, args);
}

// Sends a ReadableStream body as it is produced: each chunk is written when it arrives, and
// the next read waits while the socket is backed up (binding.responseWrite's promise). Reads
// use the reader's internal read requests, so a chunk costs no promise. A client that goes
// away cancels the stream (its source's cancel() runs) with an AbortError.
function streamResponse(id, status, statusText, list, stream, length = declaredLength(list)) {
  const S = streams;
  const rr = S.RDR(new S.ReadableStreamDefaultReader(stream));
  let finished = false;
  const finish = () => {
    finished = true;
    forgetRequest(id);
  };
  const abandon = (reason) => {
    if (finished) return;
    finish();
    S.readableStreamCancel(rr.stream, reason);
    binding.responseEnd(id);
  };
  if (!withHeaders(binding.responseStart, id, status, statusText, length, list)) {
    // No body wanted (HEAD, 204, 304) or nowhere to send it.
    abandon(undefined);
    return;
  }
  onRequestAborted(id, () => abandon(clientGoneReason()));
  let reading = false;
  let readAgain = false;
  const onWritable = (ok) => {
    if (!ok) abandon(clientGoneReason());
    else if (!finished) pump();
  };
  const readRequest = {
    chunk(chunk) {
      if (finished) return;
      if (!(chunk instanceof PrimordialUint8Array)) {
        const err = new TypeError('A response body stream chunk is not a Uint8Array');
        finish();
        S.readableStreamCancel(rr.stream, err);
        binding.fail(id, formatError(err));
        return;
      }
      let wait;
      try {
        wait = binding.responseWrite(id, chunk);
      } catch (err) {
        abandon(err); // the request's context ended
        return;
      }
      if (wait === false) {
        abandon(clientGoneReason());
      } else if (wait === undefined) {
        if (reading) readAgain = true;
        else pump();
      } else {
        PromisePrototypeThen(wait, onWritable);
      }
    },
    close() {
      if (finished) return;
      finish();
      binding.responseEnd(id);
    },
    error(err) {
      if (finished) return;
      finish();
      binding.fail(id, formatError(err)); // the head went out: the connection closes
    },
  };
  // Reads until a read does not complete at once; chunks already queued are taken in a
  // loop, not by recursion.
  const pump = () => {
    do {
      readAgain = false;
      reading = true;
      S.defaultReaderRead(rr, readRequest);
      reading = false;
    } while (readAgain && !finished);
  };
  // A stream that errors while no read is pending (the socket backed up: a source enqueuing
  // past its memory limit, say) ends the response now, not when the client next drains it.
  PromisePrototypeThen(rr.closed.promise, undefined, (err) => readRequest.error(err));
  pump();
}

function send(id, res) {
  if (!isResponse(res)) {
    fail(id, new TypeError(`The fetch handler returned ${describe(res)}, not a Response`));
    return;
  }
  const parts = responseParts(res);
  const status = parts[0];
  const statusText = parts[1];
  const list = parts[2];
  const body = parts[3];
  if (status === 0) {
    fail(id, new TypeError('The fetch handler returned Response.error()'));
    return;
  }
  if (body.used) {
    fail(id, new TypeError('The fetch handler returned a Response whose body was already read'));
    return;
  }
  let source = body.source;
  if (source instanceof LazyBody) {
    // A fetched response's body nobody read: the bytes go from the upstream to the client
    // natively, as they came (still compressed) when the headers still say so.
    if (contentEncoding(list) === source.coding && source.pipe(id)) {
      body.used = true;
      forgetRequest(id);
      withHeaders(binding.respondPipe, id, status, statusText, declaredLength(list), list);
      return;
    }
    const decodes = source.decodes;
    source = bodyStream(body);
    if (decodes) {
      // Decoded here: the upstream's Content-Length counted the encoded bytes.
      body.used = true;
      streamResponse(id, status, statusText, list, source, -1);
      return;
    }
  }
  if (isReadableStream(source)) {
    if (source.locked || streams.isDisturbed(source)) {
      fail(id, new TypeError('The fetch handler returned a Response whose body stream is locked or already read'));
      return;
    }
    body.used = true;
    const piped = streams.RS(source).fetchPipe;
    if (piped !== undefined) {
      // A fetched response's body, untouched: the bytes go from the upstream to the client
      // natively, as they came (still compressed) when the headers still say so.
      if (contentEncoding(list) === piped.coding && piped.take(id)) {
        forgetRequest(id);
        withHeaders(binding.respondPipe, id, status, statusText, declaredLength(list), list);
        return;
      }
      // Decoded here: the upstream's Content-Length counted the encoded bytes.
      if (piped.decodes) {
        streamResponse(id, status, statusText, list, source, -1);
        return;
      }
    }
    if (streams.RS(source).nativeBodyId === id) {
      // This request's own body, untouched: the server moves it socket to socket.
      const S = streams;
      S.RS(source).disturbed = true;
      void new S.ReadableStreamDefaultReader(source); // locked for good: nothing else reads it
      forgetRequest(id);
      withHeaders(binding.respondPipe, id, status, statusText, declaredLength(list), list);
      return;
    }
    streamResponse(id, status, statusText, list, source);
    return;
  }
  if (source !== null) body.used = true;
  forgetRequest(id);
  if (source instanceof NativeBody) {
    // An incoming body given back untouched (new Response(request)?): read whole, then sent.
    PromisePrototypeThen(binding.readBody(source.id),
      (buffer) => withHeaders(binding.respond, id, status, statusText,
        new PrimordialUint8Array(buffer), list),
      (err) => fail(id, err));
    return;
  }
  withHeaders(bindingRespond, id, status, statusText, source, list);
}

function dispatch(id, method, url, hasBody) {
  const request = createIncomingRequest(id, method, url, hasBody);
  const ctx = new ExecutionContext(id);
  let result;
  try {
    result = ReflectApply(fetchFn, handler, [request, currentEnv, ctx]);
  } catch (err) {
    fail(id, err);
    return;
  }
  if (isResponse(result)) {
    send(id, result); // no promise: answer without waiting for a microtask turn
    return;
  }
  PromisePrototypeThen(PromiseResolve(result), (res) => send(id, res), (err) => fail(id, err));
}

const formatUncaught = (value) =>
  value instanceof PrimordialError ? formatError(value) : inspect(value);

// Env objects are frozen all the way down: a request must not change what the next one sees
// (JSON vars are objects).
function deepFreeze(value) {
  if (value === null || typeof value !== 'object' || ObjectIsFrozen(value)) return value;
  ObjectFreeze(value);
  const keys = ReflectOwnKeys(value);
  for (let i = 0; i < keys.length; i++) deepFreeze(value[keys[i]]);
  return value;
}

// Node compatibility (an app's "node_compat": true): `process.env` is the app's env, the one
// later requests get (it follows env changes; a request's own `env` argument does not).
const enableNodeCompat = () => {
  const process = ObjectFreeze(ObjectCreate(null, {
    env: { get: () => currentEnv, enumerable: true },
  }));
  ObjectDefineProperty(globalThis, 'process', {
    value: process, writable: true, configurable: true, enumerable: false,
  });
};

// The `shutdown` event (docs/nano-dp.md, "The shutdown event"): this isolate's drain has
// begun (the node is shutting down, the app is being removed, or a new version replaced this
// one). Requests in flight go on; the app has until `deadline` (ms since the epoch) to end
// long responses and flush its work. Listeners may extend it with waitUntil(promise); the
// runtime is told once every such promise settled (binding.shutdownDone). The caller bounds
// the wait.
class ShutdownEvent extends Event {
  #promises;
  #deadline;
  constructor(type, promises, deadline) {
    super(type, undefined, kTrustedEvent);
    this.#promises = promises;
    this.#deadline = deadline;
  }
  get deadline() {
    if (!(this !== null && typeof this === 'object' && #deadline in this)) {
      throw new TypeError('Illegal invocation');
    }
    return this.#deadline;
  }
  waitUntil(promise) {
    if (!(this !== null && typeof this === 'object' && #promises in this)) {
      throw new TypeError('Illegal invocation');
    }
    ArrayPrototypePush(this.#promises, PromiseResolve(promise));
  }
}

const dispatchShutdown = (deadline) => {
  const promises = [];
  try {
    dispatchEvent(globalThis, new ShutdownEvent('shutdown', promises, deadline));
  } catch (err) {
    reportUncaught(err);
  }
  let left = promises.length;
  if (left === 0) {
    binding.shutdownDone();
    return;
  }
  const settled = () => { if (--left === 0) binding.shutdownDone(); };
  for (let i = 0; i < promises.length; i++) {
    PromisePrototypeThen(promises[i], settled, (err) => {
      reportUncaught(err);
      settled();
    });
  }
};

ObjectAssign(internal, {
  setHandler, dispatch, formatUncaught, deepFreeze, enableNodeCompat, dispatchShutdown,
});
ObjectDefineProperty(internal, 'env', {
  get: () => currentEnv,
  set: (value) => { currentEnv = value; },
  enumerable: true,
  configurable: false,
});
