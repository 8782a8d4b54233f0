// 90_dispatch.js: calls the app's fetch handler for each request and hands its Response to
// the server. The runtime calls internal.dispatch(id, method, url, hasBody) once per request;
// that is the only JS entry on the request path.
'use strict';

const {
  PromisePrototypeThen, PromiseResolve, ReflectApply, TypeError, ObjectFreeze,
  Uint8Array: PrimordialUint8Array, Error: PrimordialError,
} = primordials;

const { createIncomingRequest, isResponse, responseParts, NativeBody } = internal;

let handler = null;
let fetchFn = null;

// Set by the runtime once the app's module has evaluated: its default export.
internal.setHandler = (exported) => {
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
        internal.reportUncaught(err);
        binding.waitUntilEnd(id);
      });
  }
}
Reflect.defineProperty(ExecutionContext.prototype, Symbol.toStringTag,
  { value: 'ExecutionContext', configurable: true });

function describe(v) {
  if (v === null) return 'null';
  if (typeof v !== 'object') return typeof v;
  return internal.inspect(v, 0);
}

function fail(id, err) {
  binding.fail(id, internal.formatError(err));
}

function send(id, res) {
  if (!isResponse(res)) {
    fail(id, new TypeError(`The fetch handler returned ${describe(res)}, not a Response`));
    return;
  }
  const [status, statusText, list, body] = responseParts(res);
  if (status === 0) {
    fail(id, new TypeError('The fetch handler returned Response.error()'));
    return;
  }
  if (body.used) {
    fail(id, new TypeError('The fetch handler returned a Response whose body was already read'));
    return;
  }
  let source = body.source;
  if (source !== null) body.used = true;
  if (source instanceof NativeBody) {
    // An incoming body passed straight through: read it whole, then send.
    // TODO(#5): stream it natively instead of buffering.
    PromisePrototypeThen(binding.readBody(source.id),
      (buffer) => binding.respond(id, status, statusText, list, new PrimordialUint8Array(buffer)),
      (err) => fail(id, err));
    return;
  }
  if (internal.isReadableStream(source)) {
    // A stream body is read whole, then sent. TODO(#5): send chunks as they are produced,
    // pulled only as fast as the socket drains.
    PromisePrototypeThen(internal.readAllBytes(source, 'Response body'),
      (bytes) => binding.respond(id, status, statusText, list, bytes),
      (err) => fail(id, err));
    return;
  }
  binding.respond(id, status, statusText, list, source);
}

internal.dispatch = function dispatch(id, method, url, hasBody) {
  const request = createIncomingRequest(id, method, url, hasBody);
  const ctx = new ExecutionContext(id);
  let result;
  try {
    result = ReflectApply(fetchFn, handler, [request, internal.env, ctx]);
  } catch (err) {
    fail(id, err);
    return;
  }
  if (isResponse(result)) {
    send(id, result); // no promise: answer without waiting for a microtask turn
    return;
  }
  PromisePrototypeThen(PromiseResolve(result), (res) => send(id, res), (err) => fail(id, err));
};

internal.formatUncaught = (value) =>
  value instanceof PrimordialError ? internal.formatError(value) : internal.inspect(value);
