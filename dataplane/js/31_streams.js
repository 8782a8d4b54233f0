// 31_streams.js: WHATWG Streams (https://streams.spec.whatwg.org/): ReadableStream with its
// default controller and reader (§4), WritableStream (§5), TransformStream (§6), the queuing
// strategies (§7) and the queue-with-sizes helpers (§8). Function names follow the
// standard's abstract operations so code maps to spec sections.
//
// Internal state lives in plain records held by a private field of each object; the
// abstract operations work on those records. Byte streams (type: "bytes"), the BYOB reader and
// request live in 32_streams_bytes.js; this file reaches them through `bytes`, filled there.
'use strict';

const {
  ArrayPrototypePush, ArrayPrototypeShift, NumberIsNaN, ObjectDefineProperty,
  ObjectSetPrototypeOf, Promise, PromisePrototypeThen, PromiseReject, PromiseResolve, RangeError,
  ReflectApply, SymbolAsyncIterator, SymbolIterator, TypeError, FunctionPrototypeCall, Symbol,
  ObjectAssign,
} = primordials;
const { webidl, defineGlobal, structuredClone, queueMicrotask } = internal;
// Byte-stream operations (32_streams_bytes.js, through internal.streamsBytes), looked up when
// first used.
const bytes = {};

// --- promise helpers (§1 "promise" conventions) -------------------------------------------------

function newPromise() {
  let resolve, reject;
  const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
  return { promise, resolve, reject };
}
// WebIDL's "a promise resolved with v": a new promise even when v is one, so resolving with a
// promise takes the spec's two extra ticks (PromiseResolve would return v itself).
const resolved = (v) => ((typeof v === 'object' && v !== null) || typeof v === 'function'
  ? new Promise((resolve) => resolve(v)) : PromiseResolve(v));
const rejected = (e) => PromiseReject(e);
function markHandled(p) {
  PromisePrototypeThen(p, undefined, () => {});
}
const then = (p, onOk, onErr) => PromisePrototypeThen(p, onOk, onErr);
function uponPromise(p, onOk, onErr) {
  markHandled(then(p, onOk, onErr));
}
// "Promise call": a user callback's result (or throw) as a promise.
function promiseCall(fn, thisArg, args) {
  try {
    return resolved(ReflectApply(fn, thisArg, args));
  } catch (e) {
    return rejected(e);
  }
}

// --- queue with sizes (§8.1) ---------------------------------------------------------------------

function resetQueue(c) {
  c.queue = [];
  c.queueHead = 0;
  c.queueTotalSize = 0;
}
function enqueueValueWithSize(c, value, size) {
  if (typeof size !== 'number' || NumberIsNaN(size) || size < 0 || size === Infinity) {
    throw new RangeError('The size of a chunk must be a finite, non-negative number');
  }
  ArrayPrototypePush(c.queue, { value, size });
  c.queueTotalSize += size;
}
function dequeueValue(c) {
  const pair = c.queue[c.queueHead];
  c.queue[c.queueHead++] = undefined;
  if (c.queueHead > 1024 && c.queueHead * 2 > c.queue.length) {
    c.queue = c.queue.slice(c.queueHead);
    c.queueHead = 0;
  }
  c.queueTotalSize -= pair.size;
  if (c.queueTotalSize < 0) c.queueTotalSize = 0; // rounding errors
  return pair.value;
}
const queueLength = (c) => c.queue.length - c.queueHead;
const peekQueueValue = (c) => c.queue[c.queueHead].value;

// --- strategies (§7) ----------------------------------------------------------------------------

function extractHighWaterMark(strategy, defaultHWM) {
  if (strategy.highWaterMark === undefined) return defaultHWM;
  const hwm = +strategy.highWaterMark;
  if (NumberIsNaN(hwm) || hwm < 0) throw new RangeError('highWaterMark must be a non-negative number');
  return hwm;
}
function extractSizeAlgorithm(strategy) {
  const size = strategy.size;
  if (size === undefined) return () => 1;
  if (typeof size !== 'function') throw new TypeError('strategy.size must be a function');
  return (chunk) => FunctionPrototypeCall(size, undefined, chunk);
}
function convertStrategy(strategy) {
  if (strategy === undefined || strategy === null) return {};
  if (typeof strategy !== 'object' && typeof strategy !== 'function') {
    throw new TypeError('The strategy must be an object');
  }
  // QueuingStrategy dictionary: members read in order (highWaterMark, size).
  const out = {};
  const hwm = strategy.highWaterMark;
  if (hwm !== undefined) out.highWaterMark = webidl.unrestrictedDouble(hwm);
  const size = strategy.size;
  if (size !== undefined) {
    if (typeof size !== 'function') throw new TypeError('strategy.size must be a function');
    out.size = size;
  }
  return out;
}

const sizeOfByteLength = (chunk) => chunk.byteLength;
ObjectDefineProperty(sizeOfByteLength, 'name', { value: 'size' });
const sizeOfOne = () => 1;
ObjectDefineProperty(sizeOfOne, 'name', { value: 'size' });

class ByteLengthQueuingStrategy {
  #highWaterMark;
  constructor(init) {
    webidl.argCount(arguments, 1, "Failed to construct 'ByteLengthQueuingStrategy'");
    const dict = webidl.dictionary(init);
    if (dict.highWaterMark === undefined) throw new TypeError("Failed to construct 'ByteLengthQueuingStrategy': highWaterMark is required");
    this.#highWaterMark = webidl.unrestrictedDouble(dict.highWaterMark);
  }
  get highWaterMark() {
    if (!(this !== null && typeof this === 'object' && #highWaterMark in this)) throw webidl.illegalInvocation('ByteLengthQueuingStrategy.highWaterMark');
    return this.#highWaterMark;
  }
  get size() {
    if (!(this !== null && typeof this === 'object' && #highWaterMark in this)) throw webidl.illegalInvocation('ByteLengthQueuingStrategy.size');
    return sizeOfByteLength;
  }
}
webidl.configureInterface(ByteLengthQueuingStrategy);

class CountQueuingStrategy {
  #highWaterMark;
  constructor(init) {
    webidl.argCount(arguments, 1, "Failed to construct 'CountQueuingStrategy'");
    const dict = webidl.dictionary(init);
    if (dict.highWaterMark === undefined) throw new TypeError("Failed to construct 'CountQueuingStrategy': highWaterMark is required");
    this.#highWaterMark = webidl.unrestrictedDouble(dict.highWaterMark);
  }
  get highWaterMark() {
    if (!(this !== null && typeof this === 'object' && #highWaterMark in this)) throw webidl.illegalInvocation('CountQueuingStrategy.highWaterMark');
    return this.#highWaterMark;
  }
  get size() {
    if (!(this !== null && typeof this === 'object' && #highWaterMark in this)) throw webidl.illegalInvocation('CountQueuingStrategy.size');
    return sizeOfOne;
  }
}
webidl.configureInterface(CountQueuingStrategy);

// --- ReadableStream (§4) --------------------------------------------------------------------------

let RS; // record accessors, set in the class's static block
class ReadableStream {
  #r; // { state, reader, storedError, disturbed, controller }

  constructor(underlyingSource = undefined, strategy = undefined) {
    if (underlyingSource === kInternal) {
      // createReadableStream: a stream over the runtime's own algorithms.
      const a = strategy;
      this.#r = newStreamRecord(this);
      if (a.type === 'bytes') {
        bytes.setUpController(this.#r, a.start, a.pull, a.cancel, a.hwm, a.autoAllocateChunkSize);
        return;
      }
      const c = newDefaultControllerRecord(this.#r);
      setUpReadableStreamDefaultController(this.#r, c, a.start, a.pull, a.cancel, a.hwm, a.size);
      return;
    }
    if (underlyingSource === null) {
      throw new TypeError("Failed to construct 'ReadableStream': the underlying source cannot be null");
    }
    const source = underlyingSource === undefined ? null : underlyingSource;
    if (source !== null && typeof source !== 'object' && typeof source !== 'function') {
      throw new TypeError("Failed to construct 'ReadableStream': the underlying source must be an object");
    }
    const strat = convertStrategy(strategy);
    // UnderlyingSource dictionary members, in order.
    const src = readUnderlyingSource(source);
    this.#r = newStreamRecord(this);
    if (src.type === 'bytes') {
      if (strat.size !== undefined) {
        throw new RangeError("Failed to construct 'ReadableStream': a byte stream's strategy cannot have a size function");
      }
      bytes.setUpControllerFromSource(this.#r, source, src, extractHighWaterMark(strat, 0));
      return;
    }
    const size = extractSizeAlgorithm(strat);
    const hwm = extractHighWaterMark(strat, 1);
    setUpDefaultControllerFromSource(this.#r, source, src, hwm, size);
  }

  static {
    RS = (s) => {
      if (s === null || typeof s !== 'object' || !(#r in s)) return null;
      return s.#r;
    };
  }

  static #check(s, what) {
    const r = RS(s);
    if (r === null) throw webidl.illegalInvocation(`ReadableStream.${what}`);
    return r;
  }

  get locked() { return isLocked(ReadableStream.#check(this, 'locked')); }

  cancel(reason = undefined) {
    const r = RS(this);
    if (r === null) return rejected(webidl.illegalInvocation('ReadableStream.cancel'));
    if (isLocked(r)) return rejected(new TypeError('Cannot cancel a locked ReadableStream'));
    return readableStreamCancel(r, reason);
  }

  getReader(options = undefined) {
    const r = ReadableStream.#check(this, 'getReader');
    const opts = webidl.dictionary(options, "Failed to execute 'getReader' on 'ReadableStream'");
    if (opts.mode === undefined) return new ReadableStreamDefaultReader(this);
    webidl.enumValue(opts.mode, ['byob'], "Failed to execute 'getReader' on 'ReadableStream': mode");
    void r;
    return new bytes.ReadableStreamBYOBReader(this);
  }

  tee() {
    const r = ReadableStream.#check(this, 'tee');
    return readableStreamTee(r);
  }

  values(options = undefined) {
    const r = ReadableStream.#check(this, 'values');
    const opts = webidl.dictionary(options);
    return makeAsyncIterator(r, !!opts.preventCancel);
  }

  static from(asyncIterable) {
    webidl.argCount(arguments, 1, "Failed to execute 'from' on 'ReadableStream'");
    return readableStreamFromIterable(asyncIterable);
  }
}
ObjectDefineProperty(ReadableStream.prototype, SymbolAsyncIterator, {
  value: ReadableStream.prototype.values, writable: true, configurable: true, enumerable: false,
});

function readUnderlyingSource(source) {
  if (source === null) return {};
  const out = {};
  for (let i = 0, list = ['autoAllocateChunkSize', 'cancel', 'pull', 'start', 'type']; i < list.length; i++) {
    const key = list[i];
    const v = source[key];
    if (v === undefined) continue;
    if (key === 'type') out.type = webidl.enumValue(v, ['bytes', 'owning'], "Failed to construct 'ReadableStream': type");
    else if (key === 'autoAllocateChunkSize') out.autoAllocateChunkSize = webidl.unsignedLongLong(v, { enforceRange: true });
    else {
      if (typeof v !== 'function') throw new TypeError(`Failed to construct 'ReadableStream': ${key} must be a function`);
      out[key] = v;
    }
  }
  return out;
}

function newStreamRecord(object) {
  return { object, state: 'readable', reader: null, storedError: undefined, disturbed: false, controller: null };
}

const isLocked = (r) => r.reader !== null;

// §4.9.1 CreateReadableStream: a stream over the runtime's algorithms (tee, from, bodies).
const kInternal = Symbol('nano.readableStreamInternal');
function createReadableStream(start, pull, cancel, hwm = 1, size = () => 1) {
  return new ReadableStream(kInternal, { __proto__: null, start, pull, cancel, hwm, size });
}
// CreateReadableByteStream
function createReadableByteStream(start, pull, cancel, hwm = 0, autoAllocateChunkSize = undefined) {
  return new ReadableStream(kInternal, { __proto__: null, type: 'bytes', start, pull, cancel, hwm, autoAllocateChunkSize });
}

function readableStreamCancel(r, reason) {
  r.disturbed = true;
  if (r.state === 'closed') return resolved(undefined);
  if (r.state === 'errored') return rejected(r.storedError);
  readableStreamClose(r);
  const reader = r.reader;
  if (reader !== null && reader.kind === 'byob') {
    const requests = reader.readIntoRequests;
    reader.readIntoRequests = [];
    for (let i = 0; i < requests.length; i++) {
      const req = requests[i];
      req.close(undefined);
    }
  }
  const sourceCancel = r.controller.cancelSteps(reason);
  return then(sourceCancel, () => undefined);
}

function readableStreamClose(r) {
  r.state = 'closed';
  const reader = r.reader;
  if (reader === null) return;
  reader.closed.resolve(undefined);
  if (reader.kind !== 'default') return;
  const requests = reader.readRequests;
  reader.readRequests = [];
  for (let i = 0; i < requests.length; i++) {
    const req = requests[i];
    req.close();
  }
}

function readableStreamError(r, e) {
  r.state = 'errored';
  r.storedError = e;
  const reader = r.reader;
  if (reader === null) return;
  reader.closed.reject(e);
  markHandled(reader.closed.promise);
  if (reader.kind === 'byob') {
    const requests = reader.readIntoRequests;
    reader.readIntoRequests = [];
    for (let i = 0; i < requests.length; i++) {
      const req = requests[i];
      req.error(e);
    }
    return;
  }
  const requests = reader.readRequests;
  reader.readRequests = [];
  for (let i = 0; i < requests.length; i++) {
    const req = requests[i];
    req.error(e);
  }
}

function readableStreamAddReadRequest(r, req) {
  ArrayPrototypePush(r.reader.readRequests, req);
}

function readableStreamFulfillReadRequest(r, chunk, done) {
  const req = ArrayPrototypeShift(r.reader.readRequests);
  if (done) req.close();
  else req.chunk(chunk);
}

const getNumReadRequests = (r) => r.reader.readRequests.length;
const hasDefaultReader = (r) => r.reader !== null && r.reader.kind === 'default';

// --- ReadableStreamDefaultReader (§4.3) ---------------------------------------------------------

let RDR;
class ReadableStreamDefaultReader {
  #r; // { kind, stream (record), closed (deferred), readRequests }

  constructor(stream) {
    webidl.argCount(arguments, 1, "Failed to construct 'ReadableStreamDefaultReader'");
    const sr = RS(stream);
    if (sr === null) throw new TypeError("Failed to construct 'ReadableStreamDefaultReader': parameter 1 is not a ReadableStream");
    if (isLocked(sr)) throw new TypeError('This ReadableStream is already locked to a reader');
    this.#r = { kind: 'default', object: this, stream: null, closed: null, readRequests: [] };
    readerGenericInitialize(this.#r, sr);
  }

  static {
    RDR = (o) => (o !== null && typeof o === 'object' && #r in o ? o.#r : null);
  }

  get closed() {
    const rr = RDR(this);
    if (rr === null) return rejected(webidl.illegalInvocation('ReadableStreamDefaultReader.closed'));
    return rr.closed.promise;
  }

  cancel(reason = undefined) {
    const rr = RDR(this);
    if (rr === null) return rejected(webidl.illegalInvocation('ReadableStreamDefaultReader.cancel'));
    if (rr.stream === null) return rejected(new TypeError('This reader is released'));
    return readableStreamCancel(rr.stream, reason);
  }

  read() {
    const rr = RDR(this);
    if (rr === null) return rejected(webidl.illegalInvocation('ReadableStreamDefaultReader.read'));
    if (rr.stream === null) return rejected(new TypeError('This reader is released'));
    const d = newPromise();
    defaultReaderRead(rr, {
      chunk: (value) => d.resolve({ value, done: false }),
      close: () => d.resolve({ value: undefined, done: true }),
      error: (e) => d.reject(e),
    });
    return d.promise;
  }

  releaseLock() {
    const rr = RDR(this);
    if (rr === null) throw webidl.illegalInvocation('ReadableStreamDefaultReader.releaseLock');
    if (rr.stream === null) return;
    defaultReaderRelease(rr);
  }
}
webidl.configureInterface(ReadableStreamDefaultReader);

function readerGenericInitialize(rr, sr) {
  rr.stream = sr;
  sr.reader = rr;
  rr.closed = newPromise();
  if (sr.state === 'closed') rr.closed.resolve(undefined);
  else if (sr.state === 'errored') {
    rr.closed.reject(sr.storedError);
    markHandled(rr.closed.promise);
  }
}

function readerGenericRelease(rr) {
  const sr = rr.stream;
  const e = new TypeError('The reader was released');
  if (sr.state === 'readable') {
    rr.closed.reject(e);
  } else {
    rr.closed = newPromise();
    rr.closed.reject(e);
  }
  markHandled(rr.closed.promise);
  sr.controller.releaseSteps();
  sr.reader = null;
  rr.stream = null;
}

function defaultReaderRelease(rr) {
  readerGenericRelease(rr);
  const e = new TypeError('The reader was released');
  const requests = rr.readRequests;
  rr.readRequests = [];
  for (let i = 0; i < requests.length; i++) {
    const req = requests[i];
    req.error(e);
  }
}

function defaultReaderRead(rr, req) {
  const sr = rr.stream;
  sr.disturbed = true;
  if (sr.state === 'closed') req.close();
  else if (sr.state === 'errored') req.error(sr.storedError);
  else sr.controller.pullSteps(req);
}

// --- ReadableStreamDefaultController (§4.6) ------------------------------------------------------

let RDC;
class ReadableStreamDefaultController {
  #c;
  constructor(key = undefined, record = undefined) {
    webidl.illegalConstructor(key, 'ReadableStreamDefaultController');
    this.#c = record;
  }
  static {
    RDC = (o) => (o !== null && typeof o === 'object' && #c in o ? o.#c : null);
  }
  static #check(o, what) {
    const c = RDC(o);
    if (c === null) throw webidl.illegalInvocation(`ReadableStreamDefaultController.${what}`);
    return c;
  }
  get desiredSize() { return rdcGetDesiredSize(ReadableStreamDefaultController.#check(this, 'desiredSize')); }
  close() {
    const c = ReadableStreamDefaultController.#check(this, 'close');
    if (!rdcCanCloseOrEnqueue(c)) throw new TypeError('The stream is not in a state that permits close');
    rdcClose(c);
  }
  enqueue(chunk = undefined, options = undefined) {
    const c = ReadableStreamDefaultController.#check(this, 'enqueue');
    const transfer = readTransferList(options, "Failed to execute 'enqueue' on 'ReadableStreamDefaultController'");
    if (!rdcCanCloseOrEnqueue(c)) throw new TypeError('The stream is not in a state that permits enqueue');
    if (c.owning) {
      // type: 'owning' (a proposal the WPT covers): the stream takes the chunk by structured
      // serialization, moving what the transfer list names.
      chunk = structuredClone(chunk, { transfer });
    } else if (transfer.length > 0) {
      throw new TypeError("Failed to execute 'enqueue' on 'ReadableStreamDefaultController': only a stream of type 'owning' can take a transfer list");
    }
    rdcEnqueue(c, chunk);
  }
  error(e = undefined) {
    rdcError(ReadableStreamDefaultController.#check(this, 'error'), e);
  }
}
webidl.configureInterface(ReadableStreamDefaultController);

// StructuredSerializeOptions' transfer member: sequence<object>.
function readTransferList(options, context) {
  const opts = webidl.dictionary(options, context);
  const list = opts.transfer;
  if (list === undefined) return [];
  return webidl.iterable(list, (item) => {
    if (item === null || (typeof item !== 'object' && typeof item !== 'function')) {
      throw new TypeError(`${context}: transfer holds a value that is not an object`);
    }
    return item;
  }, `${context}: transfer`);
}

function newDefaultControllerRecord(sr) {
  const c = {
    stream: sr, object: null, queue: [], queueHead: 0, queueTotalSize: 0, started: false,
    closeRequested: false, pullAgain: false, pulling: false, strategyHWM: 1, owning: false,
    strategySizeAlgorithm: null, pullAlgorithm: null, cancelAlgorithm: null,
  };
  c.object = new ReadableStreamDefaultController(webidl.kIllegalConstructor, c);
  c.cancelSteps = (reason) => {
    resetQueue(c);
    const result = c.cancelAlgorithm(reason);
    rdcClearAlgorithms(c);
    return result;
  };
  c.pullSteps = (req) => {
    const stream = c.stream;
    if (queueLength(c) > 0) {
      const chunk = dequeueValue(c);
      if (c.closeRequested && queueLength(c) === 0) {
        rdcClearAlgorithms(c);
        readableStreamClose(stream);
      } else {
        rdcCallPullIfNeeded(c);
      }
      req.chunk(chunk);
    } else {
      readableStreamAddReadRequest(stream, req);
      rdcCallPullIfNeeded(c);
    }
  };
  c.releaseSteps = () => {};
  return c;
}

function setUpReadableStreamDefaultController(sr, c, startAlgorithm, pullAlgorithm, cancelAlgorithm, hwm, size) {
  c.stream = sr;
  resetQueue(c);
  c.started = false;
  c.closeRequested = false;
  c.pullAgain = false;
  c.pulling = false;
  c.strategySizeAlgorithm = size;
  c.strategyHWM = hwm;
  c.pullAlgorithm = pullAlgorithm;
  c.cancelAlgorithm = cancelAlgorithm;
  sr.controller = c;
  const startResult = startAlgorithm();
  uponPromise(resolved(startResult), () => {
    c.started = true;
    rdcCallPullIfNeeded(c);
  }, (e) => rdcError(c, e));
}

function setUpDefaultControllerFromSource(sr, source, src, hwm, size) {
  const c = newDefaultControllerRecord(sr);
  c.owning = src.type === 'owning';
  const start = src.start ? () => FunctionPrototypeCall(src.start, source, c.object) : () => undefined;
  const pull = src.pull ? () => promiseCall(src.pull, source, [c.object]) : () => resolved(undefined);
  const cancel = src.cancel ? (reason) => promiseCall(src.cancel, source, [reason]) : () => resolved(undefined);
  setUpReadableStreamDefaultController(sr, c, start, pull, cancel, hwm, size);
}

function rdcCallPullIfNeeded(c) {
  if (!rdcShouldCallPull(c)) return;
  if (c.pulling) {
    c.pullAgain = true;
    return;
  }
  c.pulling = true;
  uponPromise(c.pullAlgorithm(), () => {
    c.pulling = false;
    if (c.pullAgain) {
      c.pullAgain = false;
      rdcCallPullIfNeeded(c);
    }
  }, (e) => rdcError(c, e));
}

function rdcShouldCallPull(c) {
  const sr = c.stream;
  if (!rdcCanCloseOrEnqueue(c)) return false;
  if (!c.started) return false;
  if (isLocked(sr) && getNumReadRequests(sr) > 0) return true;
  return rdcGetDesiredSize(c) > 0;
}

function rdcClearAlgorithms(c) {
  c.pullAlgorithm = undefined;
  c.cancelAlgorithm = undefined;
  c.strategySizeAlgorithm = undefined;
}

function rdcClose(c) {
  if (!rdcCanCloseOrEnqueue(c)) return;
  c.closeRequested = true;
  if (queueLength(c) === 0) {
    rdcClearAlgorithms(c);
    readableStreamClose(c.stream);
  }
}

function rdcEnqueue(c, chunk) {
  if (!rdcCanCloseOrEnqueue(c)) return;
  const sr = c.stream;
  if (isLocked(sr) && getNumReadRequests(sr) > 0) {
    readableStreamFulfillReadRequest(sr, chunk, false);
  } else {
    let size;
    try {
      size = c.strategySizeAlgorithm(chunk);
    } catch (e) {
      rdcError(c, e);
      throw e;
    }
    try {
      enqueueValueWithSize(c, chunk, size);
    } catch (e) {
      rdcError(c, e);
      throw e;
    }
  }
  rdcCallPullIfNeeded(c);
}

function rdcError(c, e) {
  const sr = c.stream;
  if (sr.state !== 'readable') return;
  resetQueue(c);
  rdcClearAlgorithms(c);
  readableStreamError(sr, e);
}

function rdcGetDesiredSize(c) {
  const state = c.stream.state;
  if (state === 'errored') return null;
  if (state === 'closed') return 0;
  return c.strategyHWM - c.queueTotalSize;
}

function rdcCanCloseOrEnqueue(c) {
  return !c.closeRequested && c.stream.state === 'readable';
}

// --- tee (§4.9.1 ReadableStreamTee, ReadableStreamDefaultTee) --------------------------------------

function readableStreamTee(r) {
  if (r.controller.isByteController) return bytes.readableByteStreamTee(r);
  return readableStreamDefaultTee(r, r.controller.owning);
}

function readableStreamDefaultTee(r, cloneForBranch2) {
  const reader = new ReadableStreamDefaultReader(r.object);
  const rr = RDR(reader);
  let reading = false, readAgain = false, canceled1 = false, canceled2 = false;
  let reason1, reason2, branch1, branch2;
  const cancelPromise = newPromise();
  const pullAlgorithm = () => {
    if (reading) {
      readAgain = true;
      return resolved(undefined);
    }
    reading = true;
    defaultReaderRead(rr, {
      chunk: (chunk) => {
        // A microtask, so that errors from the branches' enqueue do not reach the read.
        queueMicrotask(() => {
          readAgain = false;
          let chunk2 = chunk;
          if (!canceled2 && cloneForBranch2) {
            try {
              chunk2 = structuredClone(chunk);
            } catch (e) {
              rdcError(RS(branch1).controller, e);
              rdcError(RS(branch2).controller, e);
              cancelPromise.resolve(readableStreamCancel(r, e));
              return;
            }
          }
          if (!canceled1) rdcEnqueue(RS(branch1).controller, chunk);
          if (!canceled2) rdcEnqueue(RS(branch2).controller, chunk2);
          reading = false;
          if (readAgain) pullAlgorithm();
        });
      },
      close: () => {
        reading = false;
        if (!canceled1) rdcClose(RS(branch1).controller);
        if (!canceled2) rdcClose(RS(branch2).controller);
        if (!canceled1 || !canceled2) cancelPromise.resolve(undefined);
      },
      error: () => { reading = false; },
    });
    return resolved(undefined);
  };
  const cancel1 = (reason) => {
    canceled1 = true;
    reason1 = reason;
    if (canceled2) cancelPromise.resolve(readableStreamCancel(r, [reason1, reason2]));
    return cancelPromise.promise;
  };
  const cancel2 = (reason) => {
    canceled2 = true;
    reason2 = reason;
    if (canceled1) cancelPromise.resolve(readableStreamCancel(r, [reason1, reason2]));
    return cancelPromise.promise;
  };
  branch1 = createReadableStream(() => undefined, pullAlgorithm, cancel1);
  branch2 = createReadableStream(() => undefined, pullAlgorithm, cancel2);
  uponPromise(rr.closed.promise, undefined, (e) => {
    rdcError(RS(branch1).controller, e);
    rdcError(RS(branch2).controller, e);
    if (!canceled1 || !canceled2) cancelPromise.resolve(undefined);
  });
  return [branch1, branch2];
}

// --- ReadableStream.from (§4.2.5) ---------------------------------------------------------------

function readableStreamFromIterable(asyncIterable) {
  let method = asyncIterable?.[SymbolAsyncIterator];
  let iterator;
  if (method === undefined || method === null) {
    const syncMethod = asyncIterable?.[SymbolIterator];
    if (typeof syncMethod !== 'function') throw new TypeError('ReadableStream.from: the argument is not iterable');
    const syncIterator = FunctionPrototypeCall(syncMethod, asyncIterable);
    if (syncIterator === null || typeof syncIterator !== 'object') throw new TypeError('ReadableStream.from: the iterator is not an object');
    const next = syncIterator.next;
    // CreateAsyncFromSyncIterator
    iterator = {
      next() {
        const res = FunctionPrototypeCall(next, syncIterator);
        return then(resolved(res.value), (value) => ({ value, done: res.done }));
      },
      return(v) {
        const ret = syncIterator.return;
        if (ret === undefined) return resolved({ value: v, done: true });
        return resolved(FunctionPrototypeCall(ret, syncIterator, v));
      },
    };
  } else {
    if (typeof method !== 'function') throw new TypeError('ReadableStream.from: @@asyncIterator is not a function');
    iterator = FunctionPrototypeCall(method, asyncIterable);
    if (iterator === null || typeof iterator !== 'object') throw new TypeError('ReadableStream.from: the iterator is not an object');
  }
  const nextMethod = iterator.next;
  let stream;
  const pull = () => {
    let nextResult;
    try {
      nextResult = FunctionPrototypeCall(nextMethod, iterator);
    } catch (e) {
      return rejected(e);
    }
    return then(resolved(nextResult), (res) => {
      if (res === null || typeof res !== 'object') throw new TypeError('The iterator result is not an object');
      if (res.done) rdcClose(RS(stream).controller);
      else rdcEnqueue(RS(stream).controller, res.value);
    });
  };
  const cancel = (reason) => {
    let ret;
    try {
      ret = iterator.return;
    } catch (e) {
      return rejected(e);
    }
    if (ret === undefined || ret === null) return resolved(undefined);
    let result;
    try {
      result = FunctionPrototypeCall(ret, iterator, reason);
    } catch (e) {
      return rejected(e);
    }
    return then(resolved(result), (r) => {
      if (r === null || typeof r !== 'object') throw new TypeError('The iterator return() result is not an object');
    });
  };
  stream = createReadableStream(() => undefined, pull, cancel, 0);
  return stream;
}

// --- async iteration (§4.2.6) ------------------------------------------------------------------

class ReadableStreamAsyncIterator {
  #reader;       // the reader's record
  #preventCancel;
  #ongoing = null;
  #finished = false;

  constructor(key, r, preventCancel) {
    webidl.illegalConstructor(key, 'ReadableStreamAsyncIterator');
    this.#reader = RDR(new ReadableStreamDefaultReader(r.object));
    this.#preventCancel = preventCancel;
  }

  static #check(o, what) {
    if (o === null || typeof o !== 'object' || !(#reader in o)) {
      throw new TypeError(`${what} called on an object that is not a ReadableStream async iterator`);
    }
  }

  // WebIDL's asynchronous iterator next() and return() steps, with the ongoing promise; the
  // extra reactions are deliberate: they give the spec's microtask timing.
  #nextSteps() {
    const rr = this.#reader;
    if (this.#finished) return resolved({ value: undefined, done: true });
    let nextPromise;
    if (rr.stream === null) {
      nextPromise = rejected(new TypeError("The iterator's reader was released"));
    } else {
      const d = newPromise();
      defaultReaderRead(rr, {
        chunk: (value) => d.resolve({ value, done: false }),
        close: () => {
          defaultReaderRelease(rr);
          d.resolve({ value: undefined, done: true });
        },
        error: (e) => {
          defaultReaderRelease(rr);
          d.reject(e);
        },
      });
      nextPromise = d.promise;
    }
    return then(nextPromise, (result) => {
      this.#ongoing = null;
      if (result.done) this.#finished = true;
      return result;
    }, (e) => {
      this.#ongoing = null;
      this.#finished = true;
      throw e;
    });
  }

  #returnSteps(value) {
    const rr = this.#reader;
    if (this.#finished) return resolved({ value, done: true });
    this.#finished = true;
    if (rr.stream === null) return rejected(new TypeError("The iterator's reader was released"));
    if (!this.#preventCancel) {
      const result = readableStreamCancel(rr.stream, value);
      defaultReaderRelease(rr);
      return result;
    }
    defaultReaderRelease(rr);
    return resolved(undefined);
  }

  next() {
    try {
      ReadableStreamAsyncIterator.#check(this, 'next');
    } catch (e) {
      return rejected(e);
    }
    const step = () => this.#nextSteps();
    const p = this.#ongoing === null ? step() : then(this.#ongoing, step, step);
    this.#ongoing = p;
    return p;
  }

  return(value) {
    try {
      ReadableStreamAsyncIterator.#check(this, 'return');
    } catch (e) {
      return rejected(e);
    }
    const step = () => this.#returnSteps(value);
    const after = this.#ongoing === null ? step() : then(this.#ongoing, step, step);
    const p = then(after, () => ({ value, done: true }));
    this.#ongoing = p;
    return p;
  }
}
ObjectSetPrototypeOf(ReadableStreamAsyncIterator.prototype, primordials.AsyncIteratorPrototype);
delete ReadableStreamAsyncIterator.prototype.constructor; // the spec's iterator prototype has none
for (const key of ['next', 'return']) {
  ObjectDefineProperty(ReadableStreamAsyncIterator.prototype, key, { enumerable: true });
}
const makeAsyncIterator = (r, preventCancel) =>
  new ReadableStreamAsyncIterator(webidl.kIllegalConstructor, r, preventCancel);

webidl.configureInterface(ReadableStream);
ObjectDefineProperty(ReadableStream.prototype, SymbolAsyncIterator, { enumerable: false });

defineGlobal('ReadableStream', ReadableStream);
defineGlobal('ReadableStreamDefaultReader', ReadableStreamDefaultReader);
defineGlobal('ReadableStreamDefaultController', ReadableStreamDefaultController);
defineGlobal('ByteLengthQueuingStrategy', ByteLengthQueuingStrategy);
defineGlobal('CountQueuingStrategy', CountQueuingStrategy);

ObjectAssign(internal, {
  ReadableStream,
  isReadableStream: (v) => RS(v) !== null,
  streams: {
    RS, RDR, createReadableStream, createReadableByteStream, rdcEnqueue, rdcClose, rdcError,
    rdcGetDesiredSize, rdcCanCloseOrEnqueue, rdcShouldCallPull, readableStreamCancel,
    defaultReaderRead, defaultReaderRelease, ReadableStreamDefaultReader, isLocked,
    readerGenericInitialize, readerGenericRelease, readableStreamClose, readableStreamError,
    readableStreamFulfillReadRequest, readableStreamAddReadRequest, getNumReadRequests,
    hasDefaultReader, newPromise, uponPromise, promiseCall, resolved, rejected, markHandled, then,
    resetQueue, readableStreamTee,
    isDisturbed: (s) => RS(s).disturbed,
  },
  streamsBytes: bytes,
  streamsConvertStrategy: convertStrategy,
  streamsExtractSize: extractSizeAlgorithm,
  streamsExtractHWM: extractHighWaterMark,
});

