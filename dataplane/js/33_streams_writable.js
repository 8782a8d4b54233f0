// 33_streams_writable.js: WritableStream, WritableStreamDefaultWriter and
// WritableStreamDefaultController (Streams Standard §5), following the standard's abstract
// operations; records as in 31_streams.js.
'use strict';

const {
  ArrayPrototypePush, ArrayPrototypeShift, FunctionPrototypeCall, Promise, PromisePrototypeThen,
  PromiseReject, ReflectApply, TypeError, RangeError, NumberIsNaN, Symbol, ObjectAssign,
} = primordials;
const {
  webidl, defineGlobal, streams,
  // The controller's signal is made and aborted through the built-ins' own steps, not through
  // AbortController's prototype, which an app may patch.
  newAbortSignal, signalAbort,
  streamsConvertStrategy: convertStrategy, streamsExtractSize: extractSize,
  streamsExtractHWM: extractHWM,
} = internal;

function newPromise() {
  let resolve, reject;
  const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
  return { promise, resolve, reject, settled: false };
}
const { resolved } = streams; // WebIDL "a promise resolved with" (31_streams.js)
const rejected = (e) => PromiseReject(e);
const markHandled = (p) => { PromisePrototypeThen(p, undefined, () => {}); };
const uponPromise = (p, ok, err) => markHandled(PromisePrototypeThen(p, ok, err));
function promiseCall(fn, thisArg, args) {
  try {
    return resolved(ReflectApply(fn, thisArg, args));
  } catch (e) {
    return rejected(e);
  }
}
function resolveDeferred(d, v) { if (!d.settled) { d.settled = true; d.resolve(v); } }
function rejectDeferred(d, e) { if (!d.settled) { d.settled = true; d.reject(e); } }
function rejectedDeferred(e) {
  const d = newPromise();
  rejectDeferred(d, e);
  markHandled(d.promise);
  return d;
}
function resolvedDeferred(v) {
  const d = newPromise();
  resolveDeferred(d, v);
  return d;
}

// queue-with-sizes (§8.1), as in 31_streams.js
function resetQueue(c) { c.queue = []; c.queueTotalSize = 0; }
function enqueueValueWithSize(c, value, size) {
  if (typeof size !== 'number' || NumberIsNaN(size) || size < 0 || size === Infinity) {
    throw new RangeError('The size of a chunk must be a finite, non-negative number');
  }
  ArrayPrototypePush(c.queue, { value, size });
  c.queueTotalSize += size;
}
function dequeueValue(c) {
  const pair = ArrayPrototypeShift(c.queue);
  c.queueTotalSize -= pair.size;
  if (c.queueTotalSize < 0) c.queueTotalSize = 0;
  return pair.value;
}
const peekQueueValue = (c) => c.queue[0].value;

const kCloseSentinel = Symbol('nano.closeSentinel');
const kInternal = Symbol('nano.writableStreamInternal');

// --- WritableStream (§5.2) ------------------------------------------------------------------------

let WS;
class WritableStream {
  #r;

  constructor(underlyingSink = undefined, strategy = undefined) {
    if (underlyingSink === kInternal) {
      const a = strategy;
      this.#r = newWritableRecord(this);
      setUpWritableStreamDefaultController(this.#r, newControllerRecord(), a.start, a.write,
        a.close, a.abort, a.hwm, a.size);
      return;
    }
    if (underlyingSink === null) throw new TypeError("Failed to construct 'WritableStream': the underlying sink cannot be null");
    const sink = underlyingSink === undefined ? null : underlyingSink;
    if (sink !== null && typeof sink !== 'object' && typeof sink !== 'function') {
      throw new TypeError("Failed to construct 'WritableStream': the underlying sink must be an object");
    }
    const strat = convertStrategy(strategy);
    const s = readUnderlyingSink(sink);
    if (s.type !== undefined) throw new RangeError("Failed to construct 'WritableStream': type must be undefined");
    this.#r = newWritableRecord(this);
    const size = extractSize(strat);
    const hwm = extractHWM(strat, 1);
    const c = newControllerRecord();
    const start = s.start ? () => FunctionPrototypeCall(s.start, sink, c.object) : () => undefined;
    const write = s.write ? (chunk) => promiseCall(s.write, sink, [chunk, c.object]) : () => resolved(undefined);
    const close = s.close ? () => promiseCall(s.close, sink, []) : () => resolved(undefined);
    const abort = s.abort ? (reason) => promiseCall(s.abort, sink, [reason]) : () => resolved(undefined);
    setUpWritableStreamDefaultController(this.#r, c, start, write, close, abort, hwm, size);
  }

  static {
    WS = (o) => (o !== null && typeof o === 'object' && #r in o ? o.#r : null);
  }

  static #check(o, what) {
    const r = WS(o);
    if (r === null) throw webidl.illegalInvocation(`WritableStream.${what}`);
    return r;
  }

  get locked() { return isWritableStreamLocked(WritableStream.#check(this, 'locked')); }

  abort(reason = undefined) {
    const r = WS(this);
    if (r === null) return rejected(webidl.illegalInvocation('WritableStream.abort'));
    if (isWritableStreamLocked(r)) return rejected(new TypeError('Cannot abort a locked WritableStream'));
    return writableStreamAbort(r, reason);
  }

  close() {
    const r = WS(this);
    if (r === null) return rejected(webidl.illegalInvocation('WritableStream.close'));
    if (isWritableStreamLocked(r)) return rejected(new TypeError('Cannot close a locked WritableStream'));
    if (writableStreamCloseQueuedOrInFlight(r)) return rejected(new TypeError('The stream is already closing'));
    return writableStreamClose(r);
  }

  getWriter() {
    return new WritableStreamDefaultWriter(WritableStream.#check(this, 'getWriter').object);
  }
}
webidl.configureInterface(WritableStream);

function readUnderlyingSink(sink) {
  if (sink === null) return {};
  const out = {};
  for (let i = 0, list = ['abort', 'close', 'start', 'type', 'write']; i < list.length; i++) {
    const key = list[i];
    const v = sink[key];
    if (v === undefined) continue;
    if (key === 'type') {
      out.type = v;
      continue;
    }
    if (typeof v !== 'function') throw new TypeError(`Failed to construct 'WritableStream': ${key} must be a function`);
    out[key] = v;
  }
  return out;
}

function newWritableRecord(object) {
  return {
    object, state: 'writable', storedError: undefined, writer: null, controller: null,
    inFlightWriteRequest: null, closeRequest: null, inFlightCloseRequest: null,
    pendingAbortRequest: null, writeRequests: [], backpressure: false,
  };
}

function createWritableStream(start, write, close, abort, hwm = 1, size = () => 1) {
  return new WritableStream(kInternal, { __proto__: null, start, write, close, abort, hwm, size });
}

const isWritableStreamLocked = (r) => r.writer !== null;

function writableStreamAbort(r, reason) {
  if (r.state === 'closed' || r.state === 'errored') return resolved(undefined);
  signalAbort(r.controller.abortSignal, reason);
  const state = r.state;
  if (state === 'closed' || state === 'errored') return resolved(undefined);
  if (r.pendingAbortRequest !== null) return r.pendingAbortRequest.promise.promise;
  let wasAlreadyErroring = false;
  if (state === 'erroring') {
    wasAlreadyErroring = true;
    reason = undefined;
  }
  const d = newPromise();
  r.pendingAbortRequest = { promise: d, reason, wasAlreadyErroring };
  if (!wasAlreadyErroring) writableStreamStartErroring(r, reason);
  return d.promise;
}

function writableStreamClose(r) {
  const state = r.state;
  if (state === 'closed' || state === 'errored') {
    return rejected(new TypeError('The stream is closed or errored'));
  }
  const d = newPromise();
  r.closeRequest = d;
  const writer = r.writer;
  if (writer !== null && r.backpressure && state === 'writable') resolveDeferred(writer.ready, undefined);
  wdcClose(r.controller);
  return d.promise;
}

function writableStreamAddWriteRequest(r) {
  const d = newPromise();
  ArrayPrototypePush(r.writeRequests, d);
  return d.promise;
}

function writableStreamDealWithRejection(r, error) {
  if (r.state === 'writable') {
    writableStreamStartErroring(r, error);
    return;
  }
  writableStreamFinishErroring(r);
}

function writableStreamStartErroring(r, reason) {
  const c = r.controller;
  r.state = 'erroring';
  r.storedError = reason;
  const writer = r.writer;
  if (writer !== null) writerEnsureReadyPromiseRejected(writer, reason);
  if (!writableStreamHasOperationMarkedInFlight(r) && c.started) writableStreamFinishErroring(r);
}

function writableStreamFinishErroring(r) {
  r.state = 'errored';
  r.controller.errorSteps();
  const storedError = r.storedError;
  for (let i = 0; i < r.writeRequests.length; i++) {
    const d = r.writeRequests[i];
    rejectDeferred(d, storedError);
  }
  r.writeRequests = [];
  if (r.pendingAbortRequest === null) {
    writableStreamRejectCloseAndClosedPromiseIfNeeded(r);
    return;
  }
  const abortRequest = r.pendingAbortRequest;
  r.pendingAbortRequest = null;
  if (abortRequest.wasAlreadyErroring) {
    rejectDeferred(abortRequest.promise, storedError);
    writableStreamRejectCloseAndClosedPromiseIfNeeded(r);
    return;
  }
  const p = r.controller.abortSteps(abortRequest.reason);
  uponPromise(p, () => {
    resolveDeferred(abortRequest.promise, undefined);
    writableStreamRejectCloseAndClosedPromiseIfNeeded(r);
  }, (reason) => {
    rejectDeferred(abortRequest.promise, reason);
    writableStreamRejectCloseAndClosedPromiseIfNeeded(r);
  });
}

function writableStreamFinishInFlightWrite(r) {
  resolveDeferred(r.inFlightWriteRequest, undefined);
  r.inFlightWriteRequest = null;
}

function writableStreamFinishInFlightWriteWithError(r, error) {
  rejectDeferred(r.inFlightWriteRequest, error);
  r.inFlightWriteRequest = null;
  writableStreamDealWithRejection(r, error);
}

function writableStreamFinishInFlightClose(r) {
  resolveDeferred(r.inFlightCloseRequest, undefined);
  r.inFlightCloseRequest = null;
  if (r.state === 'erroring') {
    r.storedError = undefined;
    if (r.pendingAbortRequest !== null) {
      resolveDeferred(r.pendingAbortRequest.promise, undefined);
      r.pendingAbortRequest = null;
    }
  }
  r.state = 'closed';
  const writer = r.writer;
  if (writer !== null) resolveDeferred(writer.closed, undefined);
}

function writableStreamFinishInFlightCloseWithError(r, error) {
  rejectDeferred(r.inFlightCloseRequest, error);
  r.inFlightCloseRequest = null;
  if (r.pendingAbortRequest !== null) {
    rejectDeferred(r.pendingAbortRequest.promise, error);
    r.pendingAbortRequest = null;
  }
  writableStreamDealWithRejection(r, error);
}

const writableStreamCloseQueuedOrInFlight = (r) => r.closeRequest !== null || r.inFlightCloseRequest !== null;
const writableStreamHasOperationMarkedInFlight = (r) => r.inFlightWriteRequest !== null || r.inFlightCloseRequest !== null;

function writableStreamMarkCloseRequestInFlight(r) {
  r.inFlightCloseRequest = r.closeRequest;
  r.closeRequest = null;
}

function writableStreamMarkFirstWriteRequestInFlight(r) {
  r.inFlightWriteRequest = ArrayPrototypeShift(r.writeRequests);
}

function writableStreamRejectCloseAndClosedPromiseIfNeeded(r) {
  if (r.closeRequest !== null) {
    rejectDeferred(r.closeRequest, r.storedError);
    r.closeRequest = null;
  }
  const writer = r.writer;
  if (writer !== null) {
    rejectDeferred(writer.closed, r.storedError);
    markHandled(writer.closed.promise);
  }
}

function writableStreamUpdateBackpressure(r, backpressure) {
  const writer = r.writer;
  if (writer !== null && backpressure !== r.backpressure) {
    if (backpressure) writer.ready = newPromise();
    else resolveDeferred(writer.ready, undefined);
  }
  r.backpressure = backpressure;
}

// --- WritableStreamDefaultWriter (§5.3) -----------------------------------------------------------

let WW;
class WritableStreamDefaultWriter {
  #w;

  constructor(stream) {
    webidl.argCount(arguments, 1, "Failed to construct 'WritableStreamDefaultWriter'");
    const r = WS(stream);
    if (r === null) throw new TypeError("Failed to construct 'WritableStreamDefaultWriter': parameter 1 is not a WritableStream");
    if (isWritableStreamLocked(r)) throw new TypeError('This WritableStream is already locked to a writer');
    this.#w = { object: this, stream: r, ready: null, closed: null };
    setUpWriter(this.#w, r);
  }

  static {
    WW = (o) => (o !== null && typeof o === 'object' && #w in o ? o.#w : null);
  }

  get closed() {
    const w = WW(this);
    if (w === null) return rejected(webidl.illegalInvocation('WritableStreamDefaultWriter.closed'));
    return w.closed.promise;
  }

  get desiredSize() {
    const w = WW(this);
    if (w === null) throw webidl.illegalInvocation('WritableStreamDefaultWriter.desiredSize');
    if (w.stream === null) throw new TypeError('This writer is released');
    return writerGetDesiredSize(w);
  }

  get ready() {
    const w = WW(this);
    if (w === null) return rejected(webidl.illegalInvocation('WritableStreamDefaultWriter.ready'));
    return w.ready.promise;
  }

  abort(reason = undefined) {
    const w = WW(this);
    if (w === null) return rejected(webidl.illegalInvocation('WritableStreamDefaultWriter.abort'));
    if (w.stream === null) return rejected(new TypeError('This writer is released'));
    return writableStreamAbort(w.stream, reason);
  }

  close() {
    const w = WW(this);
    if (w === null) return rejected(webidl.illegalInvocation('WritableStreamDefaultWriter.close'));
    const r = w.stream;
    if (r === null) return rejected(new TypeError('This writer is released'));
    if (writableStreamCloseQueuedOrInFlight(r)) return rejected(new TypeError('The stream is already closing'));
    return writableStreamClose(r);
  }

  releaseLock() {
    const w = WW(this);
    if (w === null) throw webidl.illegalInvocation('WritableStreamDefaultWriter.releaseLock');
    if (w.stream === null) return;
    writerRelease(w);
  }

  write(chunk = undefined) {
    const w = WW(this);
    if (w === null) return rejected(webidl.illegalInvocation('WritableStreamDefaultWriter.write'));
    if (w.stream === null) return rejected(new TypeError('This writer is released'));
    return writerWrite(w, chunk);
  }
}
webidl.configureInterface(WritableStreamDefaultWriter);

function setUpWriter(w, r) {
  r.writer = w;
  const state = r.state;
  if (state === 'writable') {
    if (!writableStreamCloseQueuedOrInFlight(r) && r.backpressure) w.ready = newPromise();
    else w.ready = resolvedDeferred(undefined);
    w.closed = newPromise();
  } else if (state === 'erroring') {
    w.ready = rejectedDeferred(r.storedError);
    w.closed = newPromise();
  } else if (state === 'closed') {
    w.ready = resolvedDeferred(undefined);
    w.closed = resolvedDeferred(undefined);
  } else {
    w.ready = rejectedDeferred(r.storedError);
    w.closed = rejectedDeferred(r.storedError);
  }
}

function writerEnsureClosedPromiseRejected(w, error) {
  if (w.closed.settled) w.closed = rejectedDeferred(error);
  else {
    rejectDeferred(w.closed, error);
    markHandled(w.closed.promise);
  }
}

function writerEnsureReadyPromiseRejected(w, error) {
  if (w.ready.settled) w.ready = rejectedDeferred(error);
  else {
    rejectDeferred(w.ready, error);
    markHandled(w.ready.promise);
  }
}

function writerGetDesiredSize(w) {
  const r = w.stream;
  if (r.state === 'errored' || r.state === 'erroring') return null;
  if (r.state === 'closed') return 0;
  return wdcGetDesiredSize(r.controller);
}

function writerRelease(w) {
  const r = w.stream;
  const e = new TypeError('The writer was released');
  writerEnsureReadyPromiseRejected(w, e);
  writerEnsureClosedPromiseRejected(w, e);
  r.writer = null;
  w.stream = null;
}

function writerWrite(w, chunk) {
  const r = w.stream;
  const c = r.controller;
  const chunkSize = wdcGetChunkSize(c, chunk);
  if (r !== w.stream) return rejected(new TypeError('This writer is released'));
  const state = r.state;
  if (state === 'errored') return rejected(r.storedError);
  if (writableStreamCloseQueuedOrInFlight(r) || state === 'closed') {
    return rejected(new TypeError('The stream is closing or closed'));
  }
  if (state === 'erroring') return rejected(r.storedError);
  const p = writableStreamAddWriteRequest(r);
  wdcWrite(c, chunk, chunkSize);
  return p;
}

function writerCloseWithErrorPropagation(w) {
  const r = w.stream;
  const state = r.state;
  if (writableStreamCloseQueuedOrInFlight(r) || state === 'closed') return resolved(undefined);
  if (state === 'errored') return rejected(r.storedError);
  return writableStreamClose(r);
}

// --- WritableStreamDefaultController (§5.4) -----------------------------------------------------

let WDC;
class WritableStreamDefaultController {
  #c;
  constructor(key = undefined, record = undefined) {
    webidl.illegalConstructor(key, 'WritableStreamDefaultController');
    this.#c = record;
  }
  static {
    WDC = (o) => (o !== null && typeof o === 'object' && #c in o ? o.#c : null);
  }
  get signal() {
    const c = WDC(this);
    if (c === null) throw webidl.illegalInvocation('WritableStreamDefaultController.signal');
    return c.abortSignal;
  }
  error(e = undefined) {
    const c = WDC(this);
    if (c === null) throw webidl.illegalInvocation('WritableStreamDefaultController.error');
    if (c.stream.state !== 'writable') return;
    wdcError(c, e);
  }
}
webidl.configureInterface(WritableStreamDefaultController);

function newControllerRecord() {
  const c = {
    stream: null, object: null, queue: [], queueTotalSize: 0, started: false,
    strategyHWM: 1, strategySizeAlgorithm: null, writeAlgorithm: null, closeAlgorithm: null,
    abortAlgorithm: null, abortSignal: newAbortSignal(),
  };
  c.object = new WritableStreamDefaultController(webidl.kIllegalConstructor, c);
  c.abortSteps = (reason) => {
    const result = c.abortAlgorithm(reason);
    wdcClearAlgorithms(c);
    return result;
  };
  c.errorSteps = () => resetQueue(c);
  return c;
}

function setUpWritableStreamDefaultController(r, c, start, write, close, abort, hwm, size) {
  c.stream = r;
  r.controller = c;
  resetQueue(c);
  c.started = false;
  c.strategySizeAlgorithm = size;
  c.strategyHWM = hwm;
  c.writeAlgorithm = write;
  c.closeAlgorithm = close;
  c.abortAlgorithm = abort;
  writableStreamUpdateBackpressure(r, wdcGetBackpressure(c));
  const startResult = start();
  uponPromise(resolved(startResult), () => {
    c.started = true;
    wdcAdvanceQueueIfNeeded(c);
  }, (e) => {
    c.started = true;
    writableStreamDealWithRejection(r, e);
  });
}

function wdcAdvanceQueueIfNeeded(c) {
  const r = c.stream;
  if (!c.started) return;
  if (r.inFlightWriteRequest !== null) return;
  const state = r.state;
  if (state === 'erroring') {
    writableStreamFinishErroring(r);
    return;
  }
  if (c.queue.length === 0) return;
  const value = peekQueueValue(c);
  if (value === kCloseSentinel) wdcProcessClose(c);
  else wdcProcessWrite(c, value);
}

function wdcClearAlgorithms(c) {
  c.writeAlgorithm = undefined;
  c.closeAlgorithm = undefined;
  c.abortAlgorithm = undefined;
  c.strategySizeAlgorithm = undefined;
}

function wdcClose(c) {
  enqueueValueWithSize(c, kCloseSentinel, 0);
  wdcAdvanceQueueIfNeeded(c);
}

function wdcError(c, error) {
  const r = c.stream;
  wdcClearAlgorithms(c);
  writableStreamStartErroring(r, error);
}

function wdcErrorIfNeeded(c, error) {
  if (c.stream.state === 'writable') wdcError(c, error);
}

function wdcGetBackpressure(c) {
  return wdcGetDesiredSize(c) <= 0;
}

function wdcGetChunkSize(c, chunk) {
  try {
    return c.strategySizeAlgorithm(chunk);
  } catch (e) {
    wdcErrorIfNeeded(c, e);
    return 1;
  }
}

const wdcGetDesiredSize = (c) => c.strategyHWM - c.queueTotalSize;

function wdcProcessClose(c) {
  const r = c.stream;
  writableStreamMarkCloseRequestInFlight(r);
  dequeueValue(c);
  const sinkClose = c.closeAlgorithm();
  wdcClearAlgorithms(c);
  uponPromise(sinkClose, () => writableStreamFinishInFlightClose(r),
    (reason) => writableStreamFinishInFlightCloseWithError(r, reason));
}

function wdcProcessWrite(c, chunk) {
  const r = c.stream;
  writableStreamMarkFirstWriteRequestInFlight(r);
  const sinkWrite = c.writeAlgorithm(chunk);
  uponPromise(sinkWrite, () => {
    writableStreamFinishInFlightWrite(r);
    const state = r.state;
    dequeueValue(c);
    if (!writableStreamCloseQueuedOrInFlight(r) && state === 'writable') {
      writableStreamUpdateBackpressure(r, wdcGetBackpressure(c));
    }
    wdcAdvanceQueueIfNeeded(c);
  }, (reason) => {
    if (r.state === 'writable') wdcClearAlgorithms(c);
    writableStreamFinishInFlightWriteWithError(r, reason);
  });
}

function wdcWrite(c, chunk, chunkSize) {
  try {
    enqueueValueWithSize(c, chunk, chunkSize);
  } catch (e) {
    wdcErrorIfNeeded(c, e);
    return;
  }
  const r = c.stream;
  if (!writableStreamCloseQueuedOrInFlight(r) && r.state === 'writable') {
    writableStreamUpdateBackpressure(r, wdcGetBackpressure(c));
  }
  wdcAdvanceQueueIfNeeded(c);
}

defineGlobal('WritableStream', WritableStream);
defineGlobal('WritableStreamDefaultWriter', WritableStreamDefaultWriter);
defineGlobal('WritableStreamDefaultController', WritableStreamDefaultController);

ObjectAssign(internal, {
  WritableStream,
  isWritableStream: (v) => WS(v) !== null,
  writableStreams: {
    WS, WW, createWritableStream, WritableStreamDefaultWriter, isWritableStreamLocked,
    writableStreamAbort, writableStreamCloseQueuedOrInFlight, writerCloseWithErrorPropagation,
    writerWrite, writerRelease, wdcErrorIfNeeded, writerGetDesiredSize,
  },
});
