// 32_streams_bytes.js: readable byte streams (Streams Standard §4.4 ReadableStreamBYOBReader,
// §4.7 ReadableByteStreamController, §4.8 ReadableStreamBYOBRequest, §4.9 their abstract
// operations and ReadableByteStreamTee). Function names follow the standard's (rbsc… is
// ReadableByteStreamController…), so code maps to spec sections.
//
// Chunks move between buffers by transfer (detach + re-wrap, a native binding), as the
// standard's TransferArrayBuffer asks; the queue holds { buffer, byteOffset, byteLength }.
'use strict';

const {
  ArrayBuffer, ArrayBufferIsView, ArrayBufferPrototypeGetByteLength, ArrayPrototypePush,
  ArrayPrototypeShift, DataView, DataViewPrototypeGetBuffer, DataViewPrototypeGetByteLength,
  DataViewPrototypeGetByteOffset, MathMin, RangeError, ReflectConstruct, TypeError,
  TypedArrayPrototypeGetBuffer, TypedArrayPrototypeGetByteLength, TypedArrayPrototypeGetByteOffset,
  TypedArrayPrototypeGetLength, TypedArrayPrototypeGetSymbolToStringTag, TypedArrayPrototypeSet,
  Uint8Array, FunctionPrototypeCall, ObjectFreeze,
} = primordials;
const { webidl, defineGlobal, streams: S, streamsBytes: bytes, queueMicrotask } = internal;
const {
  RS, newPromise, uponPromise, promiseCall, resolved, rejected, readableStreamClose,
  readableStreamError, readableStreamFulfillReadRequest, readableStreamAddReadRequest,
  getNumReadRequests, hasDefaultReader, resetQueue, isLocked, readerGenericInitialize,
  readerGenericRelease, readableStreamCancel, defaultReaderRead, defaultReaderRelease,
  ReadableStreamDefaultReader, RDR, createReadableByteStream,
} = S;

// --- buffers and views ----------------------------------------------------------------------

const typedArrays = {
  Int8Array: primordials.Int8Array, Uint8Array, Uint8ClampedArray: primordials.Uint8ClampedArray,
  Int16Array: primordials.Int16Array, Uint16Array: primordials.Uint16Array,
  Int32Array: primordials.Int32Array, Uint32Array: primordials.Uint32Array,
  Float32Array: primordials.Float32Array, Float64Array: primordials.Float64Array,
  BigInt64Array: primordials.BigInt64Array, BigUint64Array: primordials.BigUint64Array,
};

// The internal slots of an ArrayBufferView, read without user-patchable getters.
function viewSlots(view) {
  const name = TypedArrayPrototypeGetSymbolToStringTag(view);
  if (name === undefined) {
    return {
      buffer: DataViewPrototypeGetBuffer(view), byteOffset: DataViewPrototypeGetByteOffset(view),
      byteLength: DataViewPrototypeGetByteLength(view), ctor: DataView, elementSize: 1, length: undefined,
    };
  }
  const ctor = typedArrays[name];
  return {
    buffer: TypedArrayPrototypeGetBuffer(view), byteOffset: TypedArrayPrototypeGetByteOffset(view),
    byteLength: TypedArrayPrototypeGetByteLength(view), ctor, elementSize: ctor.BYTES_PER_ELEMENT,
    length: TypedArrayPrototypeGetLength(view),
  };
}
// The slots of a detached DataView throw; a detached typed array reads as 0 length.
function safeViewSlots(view) {
  try {
    return viewSlots(view);
  } catch {
    return { buffer: DataViewPrototypeGetBuffer(view), byteOffset: 0, byteLength: 0, ctor: DataView, elementSize: 1, length: undefined };
  }
}

// WebIDL ArrayBufferView (not [AllowShared]).
function toArrayBufferView(v, context) {
  if (!ArrayBufferIsView(v)) throw new TypeError(`${context} is not an ArrayBufferView`);
  const slots = safeViewSlots(v);
  if (binding.isSharedArrayBuffer(slots.buffer)) throw new TypeError(`${context} is backed by a SharedArrayBuffer`);
  return slots;
}

const isDetached = (buffer) => binding.isDetached(buffer);
const transferArrayBuffer = (buffer) => binding.transferArrayBuffer(buffer);
const bufferByteLength = (buffer) => ArrayBufferPrototypeGetByteLength(buffer);
function copyBytes(dest, destOffset, src, srcOffset, n) {
  TypedArrayPrototypeSet(new Uint8Array(dest, destOffset, n), new Uint8Array(src, srcOffset, n));
}
// CloneArrayBuffer, without ArrayBuffer.prototype.slice's species lookup.
function cloneArrayBuffer(src, srcOffset, n) {
  const out = new ArrayBuffer(n);
  copyBytes(out, 0, src, srcOffset, n);
  return out;
}
// CloneAsUint8Array
function cloneAsUint8Array(view) {
  const s = viewSlots(view);
  return new Uint8Array(cloneArrayBuffer(s.buffer, s.byteOffset, s.byteLength));
}

// --- ReadableStreamBYOBReader (§4.4) --------------------------------------------------------

let BR;
class ReadableStreamBYOBReader {
  #r; // { kind: 'byob', stream, closed, readIntoRequests }

  constructor(stream) {
    webidl.argCount(arguments, 1, "Failed to construct 'ReadableStreamBYOBReader'");
    const sr = RS(stream);
    if (sr === null) throw new TypeError("Failed to construct 'ReadableStreamBYOBReader': parameter 1 is not a ReadableStream");
    this.#r = { kind: 'byob', object: this, stream: null, closed: null, readIntoRequests: [] };
    setUpBYOBReader(this.#r, sr);
  }

  static {
    BR = (o) => (o !== null && typeof o === 'object' && #r in o ? o.#r : null);
  }

  get closed() {
    const rr = BR(this);
    if (rr === null) return rejected(webidl.illegalInvocation('ReadableStreamBYOBReader.closed'));
    return rr.closed.promise;
  }

  cancel(reason = undefined) {
    const rr = BR(this);
    if (rr === null) return rejected(webidl.illegalInvocation('ReadableStreamBYOBReader.cancel'));
    if (rr.stream === null) return rejected(new TypeError('This reader is released'));
    return readableStreamCancel(rr.stream, reason);
  }

  read(view = undefined, options = undefined) {
    const rr = BR(this);
    if (rr === null) return rejected(webidl.illegalInvocation('ReadableStreamBYOBReader.read'));
    const ctx = "Failed to execute 'read' on 'ReadableStreamBYOBReader'";
    let slots, min;
    try {
      if (arguments.length < 1) throw new TypeError(`${ctx}: 1 argument required`);
      slots = toArrayBufferView(view, `${ctx}: parameter 1`);
      const opts = webidl.dictionary(options, ctx);
      min = opts.min === undefined ? 1 : webidl.unsignedLongLong(opts.min, { enforceRange: true }, `${ctx}: min`);
    } catch (e) {
      return rejected(e);
    }
    if (slots.byteLength === 0) return rejected(new TypeError(`${ctx}: the view is empty`));
    if (bufferByteLength(slots.buffer) === 0) return rejected(new TypeError(`${ctx}: the view's buffer is empty`));
    if (isDetached(slots.buffer)) return rejected(new TypeError(`${ctx}: the view's buffer is detached`));
    if (min === 0) return rejected(new TypeError(`${ctx}: min must be greater than 0`));
    if (slots.length !== undefined ? min > slots.length : min > slots.byteLength) {
      return rejected(new RangeError(`${ctx}: min is larger than the view`));
    }
    if (rr.stream === null) return rejected(new TypeError('This reader is released'));
    const d = newPromise();
    byobReaderRead(rr, view, slots, min, {
      chunk: (chunk) => d.resolve({ value: chunk, done: false }),
      close: (chunk) => d.resolve({ value: chunk, done: true }),
      error: (e) => d.reject(e),
    });
    return d.promise;
  }

  releaseLock() {
    const rr = BR(this);
    if (rr === null) throw webidl.illegalInvocation('ReadableStreamBYOBReader.releaseLock');
    if (rr.stream === null) return;
    byobReaderRelease(rr);
  }
}
webidl.configureInterface(ReadableStreamBYOBReader);

// SetUpReadableStreamBYOBReader
function setUpBYOBReader(rr, sr) {
  if (isLocked(sr)) throw new TypeError('This ReadableStream is already locked to a reader');
  if (!sr.controller.isByteController) {
    throw new TypeError('A BYOB reader needs a byte stream (one made with type: "bytes")');
  }
  readerGenericInitialize(rr, sr);
  rr.readIntoRequests = [];
}

function acquireBYOBReader(sr) {
  return BR(new ReadableStreamBYOBReader(sr.object));
}

// ReadableStreamBYOBReaderRead
function byobReaderRead(rr, view, slots, min, req) {
  const sr = rr.stream;
  sr.disturbed = true;
  if (sr.state === 'errored') req.error(sr.storedError);
  else rbscPullInto(sr.controller, slots, min, req);
}

// ReadableStreamBYOBReaderRelease
function byobReaderRelease(rr) {
  readerGenericRelease(rr);
  const e = new TypeError('The reader was released');
  const requests = rr.readIntoRequests;
  rr.readIntoRequests = [];
  for (let i = 0; i < requests.length; i++) {
    const req = requests[i];
    req.error(e);
  }
}

const hasBYOBReader = (sr) => sr.reader !== null && sr.reader.kind === 'byob';
const getNumReadIntoRequests = (sr) => sr.reader.readIntoRequests.length;
function readableStreamAddReadIntoRequest(sr, req) {
  ArrayPrototypePush(sr.reader.readIntoRequests, req);
}
function readableStreamFulfillReadIntoRequest(sr, chunk, done) {
  const req = ArrayPrototypeShift(sr.reader.readIntoRequests);
  if (done) req.close(chunk);
  else req.chunk(chunk);
}

// --- ReadableStreamBYOBRequest (§4.8) ---------------------------------------------------------

let BRQ;
class ReadableStreamBYOBRequest {
  #q; // { controller (record or undefined), view (object or null) }
  constructor(key = undefined, record = undefined) {
    webidl.illegalConstructor(key, 'ReadableStreamBYOBRequest');
    this.#q = record;
  }
  static {
    BRQ = (o) => (o !== null && typeof o === 'object' && #q in o ? o.#q : null);
  }
  static #check(o, what) {
    const q = BRQ(o);
    if (q === null) throw webidl.illegalInvocation(`ReadableStreamBYOBRequest.${what}`);
    return q;
  }
  get view() { return ReadableStreamBYOBRequest.#check(this, 'view').view; }

  respond(bytesWritten) {
    const q = ReadableStreamBYOBRequest.#check(this, 'respond');
    const ctx = "Failed to execute 'respond' on 'ReadableStreamBYOBRequest'";
    webidl.argCount(arguments, 1, ctx);
    const n = webidl.unsignedLongLong(bytesWritten, { enforceRange: true }, `${ctx}: bytesWritten`);
    if (q.controller === undefined) throw new TypeError(`${ctx}: this request was already answered`);
    if (isDetached(viewSlots(q.view).buffer)) throw new TypeError(`${ctx}: the view's buffer is detached`);
    rbscRespond(q.controller, n);
  }

  respondWithNewView(view) {
    const q = ReadableStreamBYOBRequest.#check(this, 'respondWithNewView');
    const ctx = "Failed to execute 'respondWithNewView' on 'ReadableStreamBYOBRequest'";
    webidl.argCount(arguments, 1, ctx);
    const slots = toArrayBufferView(view, `${ctx}: parameter 1`);
    if (q.controller === undefined) throw new TypeError(`${ctx}: this request was already answered`);
    if (isDetached(slots.buffer)) throw new TypeError(`${ctx}: the view's buffer is detached`);
    rbscRespondWithNewView(q.controller, slots);
  }
}
webidl.configureInterface(ReadableStreamBYOBRequest);

// --- ReadableByteStreamController (§4.7) ------------------------------------------------------

let BC;
class ReadableByteStreamController {
  #c;
  constructor(key = undefined, record = undefined) {
    webidl.illegalConstructor(key, 'ReadableByteStreamController');
    this.#c = record;
  }
  static {
    BC = (o) => (o !== null && typeof o === 'object' && #c in o ? o.#c : null);
  }
  static #check(o, what) {
    const c = BC(o);
    if (c === null) throw webidl.illegalInvocation(`ReadableByteStreamController.${what}`);
    return c;
  }
  get byobRequest() { return rbscGetBYOBRequest(ReadableByteStreamController.#check(this, 'byobRequest')); }
  get desiredSize() { return rbscGetDesiredSize(ReadableByteStreamController.#check(this, 'desiredSize')); }

  close() {
    const c = ReadableByteStreamController.#check(this, 'close');
    if (c.closeRequested) throw new TypeError('The stream is already closing');
    if (c.stream.state !== 'readable') throw new TypeError('The stream is not readable');
    rbscClose(c);
  }

  enqueue(chunk) {
    const c = ReadableByteStreamController.#check(this, 'enqueue');
    const ctx = "Failed to execute 'enqueue' on 'ReadableByteStreamController'";
    webidl.argCount(arguments, 1, ctx);
    const slots = toArrayBufferView(chunk, `${ctx}: parameter 1`);
    if (slots.byteLength === 0) throw new TypeError(`${ctx}: the chunk is empty`);
    if (bufferByteLength(slots.buffer) === 0) throw new TypeError(`${ctx}: the chunk's buffer is empty or detached`);
    if (c.closeRequested) throw new TypeError(`${ctx}: the stream is closing`);
    if (c.stream.state !== 'readable') throw new TypeError(`${ctx}: the stream is not readable`);
    rbscEnqueue(c, slots);
  }

  error(e = undefined) {
    rbscError(ReadableByteStreamController.#check(this, 'error'), e);
  }
}
webidl.configureInterface(ReadableByteStreamController);

function newByteControllerRecord(sr) {
  const c = {
    isByteController: true, stream: sr, object: null, queue: [], queueHead: 0, queueTotalSize: 0,
    started: false, closeRequested: false, pullAgain: false, pulling: false, strategyHWM: 0,
    pullAlgorithm: null, cancelAlgorithm: null, autoAllocateChunkSize: undefined,
    byobRequest: null, pendingPullIntos: [],
  };
  c.object = new ReadableByteStreamController(webidl.kIllegalConstructor, c);
  // [[CancelSteps]]
  c.cancelSteps = (reason) => {
    rbscClearPendingPullIntos(c);
    resetQueue(c);
    const result = c.cancelAlgorithm(reason);
    rbscClearAlgorithms(c);
    return result;
  };
  // [[PullSteps]]
  c.pullSteps = (req) => {
    const sr = c.stream;
    if (c.queueTotalSize > 0) {
      rbscFillReadRequestFromQueue(c, req);
      return;
    }
    const size = c.autoAllocateChunkSize;
    if (size !== undefined) {
      let buffer;
      try {
        buffer = new ArrayBuffer(size);
      } catch (e) {
        req.error(e);
        return;
      }
      ArrayPrototypePush(c.pendingPullIntos, {
        buffer, bufferByteLength: size, byteOffset: 0, byteLength: size, bytesFilled: 0,
        minimumFill: 1, elementSize: 1, viewConstructor: Uint8Array, readerType: 'default',
      });
    }
    readableStreamAddReadRequest(sr, req);
    rbscCallPullIfNeeded(c);
  };
  // [[ReleaseSteps]]
  c.releaseSteps = () => {
    if (c.pendingPullIntos.length > 0) {
      const first = c.pendingPullIntos[0];
      first.readerType = 'none';
      c.pendingPullIntos = [first];
    }
  };
  return c;
}

// SetUpReadableByteStreamController
function setUpByteController(sr, startAlgorithm, pullAlgorithm, cancelAlgorithm, hwm, autoAllocateChunkSize, c = newByteControllerRecord(sr)) {
  c.stream = sr;
  c.pullAgain = false;
  c.pulling = false;
  c.byobRequest = null;
  resetQueue(c);
  c.closeRequested = false;
  c.started = false;
  c.strategyHWM = hwm;
  c.pullAlgorithm = pullAlgorithm;
  c.cancelAlgorithm = cancelAlgorithm;
  c.autoAllocateChunkSize = autoAllocateChunkSize;
  c.pendingPullIntos = [];
  sr.controller = c;
  const startResult = startAlgorithm();
  uponPromise(resolved(startResult), () => {
    c.started = true;
    rbscCallPullIfNeeded(c);
  }, (e) => rbscError(c, e));
}

// SetUpReadableByteStreamControllerFromUnderlyingSource
function setUpByteControllerFromSource(sr, source, src, hwm) {
  const c = newByteControllerRecord(sr);
  const start = src.start ? () => FunctionPrototypeCall(src.start, source, c.object) : () => undefined;
  const pull = src.pull ? () => promiseCall(src.pull, source, [c.object]) : () => resolved(undefined);
  const cancel = src.cancel ? (reason) => promiseCall(src.cancel, source, [reason]) : () => resolved(undefined);
  const size = src.autoAllocateChunkSize;
  if (size === 0) throw new TypeError("Failed to construct 'ReadableStream': autoAllocateChunkSize must be greater than 0");
  setUpByteController(sr, start, pull, cancel, hwm, size, c);
}

// The queue: entries { buffer, byteOffset, byteLength } from queueHead on.
const queueEmpty = (c) => c.queueHead === c.queue.length;
const queueFirst = (c) => c.queue[c.queueHead];
function queueShift(c) {
  const entry = c.queue[c.queueHead];
  c.queue[c.queueHead++] = undefined;
  if (c.queueHead > 64 && c.queueHead * 2 > c.queue.length) {
    c.queue = c.queue.slice(c.queueHead);
    c.queueHead = 0;
  }
  return entry;
}

function rbscCallPullIfNeeded(c) {
  if (!rbscShouldCallPull(c)) return;
  if (c.pulling) {
    c.pullAgain = true;
    return;
  }
  c.pulling = true;
  uponPromise(c.pullAlgorithm(), () => {
    c.pulling = false;
    if (c.pullAgain) {
      c.pullAgain = false;
      rbscCallPullIfNeeded(c);
    }
  }, (e) => rbscError(c, e));
}

function rbscShouldCallPull(c) {
  const sr = c.stream;
  if (sr.state !== 'readable' || c.closeRequested || !c.started) return false;
  if (hasDefaultReader(sr) && getNumReadRequests(sr) > 0) return true;
  if (hasBYOBReader(sr) && getNumReadIntoRequests(sr) > 0) return true;
  return rbscGetDesiredSize(c) > 0;
}

function rbscClearAlgorithms(c) {
  c.pullAlgorithm = undefined;
  c.cancelAlgorithm = undefined;
}

function rbscClearPendingPullIntos(c) {
  rbscInvalidateBYOBRequest(c);
  c.pendingPullIntos = [];
}

function rbscClose(c) {
  const sr = c.stream;
  if (c.closeRequested || sr.state !== 'readable') return;
  if (c.queueTotalSize > 0) {
    c.closeRequested = true;
    return;
  }
  if (c.pendingPullIntos.length > 0) {
    const first = c.pendingPullIntos[0];
    if (first.bytesFilled % first.elementSize !== 0) {
      const e = new TypeError('The stream closed with a partial element in the BYOB reader\'s view');
      rbscError(c, e);
      throw e;
    }
  }
  rbscClearAlgorithms(c);
  readableStreamClose(sr);
}

function rbscCommitPullIntoDescriptor(sr, d) {
  let done = false;
  if (sr.state === 'closed') done = true;
  const filledView = rbscConvertPullIntoDescriptor(d);
  if (d.readerType === 'default') readableStreamFulfillReadRequest(sr, filledView, done);
  else readableStreamFulfillReadIntoRequest(sr, filledView, done);
}

function rbscConvertPullIntoDescriptor(d) {
  const buffer = transferArrayBuffer(d.buffer);
  return ReflectConstruct(d.viewConstructor, [buffer, d.byteOffset, d.bytesFilled / d.elementSize]);
}

// ReadableByteStreamControllerEnqueue, with the chunk's slots already read.
function rbscEnqueue(c, slots) {
  const sr = c.stream;
  if (c.closeRequested || sr.state !== 'readable') return;
  const { buffer, byteOffset, byteLength } = slots;
  if (isDetached(buffer)) throw new TypeError('The chunk\'s buffer is detached');
  const transferredBuffer = transferArrayBuffer(buffer);
  if (c.pendingPullIntos.length > 0) {
    const first = c.pendingPullIntos[0];
    if (isDetached(first.buffer)) throw new TypeError('The BYOB request\'s buffer is detached');
    rbscInvalidateBYOBRequest(c);
    first.buffer = transferArrayBuffer(first.buffer);
    if (first.readerType === 'none') rbscEnqueueDetachedPullIntoToQueue(c, first);
  }
  if (hasDefaultReader(sr)) {
    rbscProcessReadRequestsUsingQueue(c);
    if (getNumReadRequests(sr) === 0) {
      rbscEnqueueChunkToQueue(c, transferredBuffer, byteOffset, byteLength);
    } else {
      if (c.pendingPullIntos.length > 0) rbscShiftPendingPullInto(c);
      readableStreamFulfillReadRequest(sr, new Uint8Array(transferredBuffer, byteOffset, byteLength), false);
    }
  } else if (hasBYOBReader(sr)) {
    rbscEnqueueChunkToQueue(c, transferredBuffer, byteOffset, byteLength);
    const filled = rbscProcessPullIntoDescriptorsUsingQueue(c);
    for (let i = 0; i < filled.length; i++) {
      const d = filled[i];
      rbscCommitPullIntoDescriptor(sr, d);
    }
  } else {
    rbscEnqueueChunkToQueue(c, transferredBuffer, byteOffset, byteLength);
  }
  rbscCallPullIfNeeded(c);
}

function rbscEnqueueChunkToQueue(c, buffer, byteOffset, byteLength) {
  ArrayPrototypePush(c.queue, { buffer, byteOffset, byteLength });
  c.queueTotalSize += byteLength;
}

function rbscEnqueueClonedChunkToQueue(c, buffer, byteOffset, byteLength) {
  let clone;
  try {
    clone = cloneArrayBuffer(buffer, byteOffset, byteLength);
  } catch (e) {
    rbscError(c, e);
    throw e;
  }
  rbscEnqueueChunkToQueue(c, clone, 0, byteLength);
}

function rbscEnqueueDetachedPullIntoToQueue(c, d) {
  if (d.bytesFilled > 0) rbscEnqueueClonedChunkToQueue(c, d.buffer, d.byteOffset, d.bytesFilled);
  rbscShiftPendingPullInto(c);
}

function rbscFillPullIntoDescriptorFromQueue(c, d) {
  const maxBytesToCopy = MathMin(c.queueTotalSize, d.byteLength - d.bytesFilled);
  const maxBytesFilled = d.bytesFilled + maxBytesToCopy;
  let totalBytesToCopyRemaining = maxBytesToCopy;
  let ready = false;
  const remainderBytes = maxBytesFilled % d.elementSize;
  const maxAlignedBytes = maxBytesFilled - remainderBytes;
  if (maxAlignedBytes >= d.minimumFill) {
    totalBytesToCopyRemaining = maxAlignedBytes - d.bytesFilled;
    ready = true;
  }
  while (totalBytesToCopyRemaining > 0) {
    const head = queueFirst(c);
    const bytesToCopy = MathMin(totalBytesToCopyRemaining, head.byteLength);
    const destStart = d.byteOffset + d.bytesFilled;
    copyBytes(d.buffer, destStart, head.buffer, head.byteOffset, bytesToCopy);
    if (head.byteLength === bytesToCopy) {
      queueShift(c);
    } else {
      head.byteOffset += bytesToCopy;
      head.byteLength -= bytesToCopy;
    }
    c.queueTotalSize -= bytesToCopy;
    rbscFillHeadPullIntoDescriptor(c, bytesToCopy, d);
    totalBytesToCopyRemaining -= bytesToCopy;
  }
  return ready;
}

function rbscFillHeadPullIntoDescriptor(c, size, d) {
  d.bytesFilled += size;
}

function rbscFillReadRequestFromQueue(c, req) {
  const entry = queueShift(c);
  c.queueTotalSize -= entry.byteLength;
  rbscHandleQueueDrain(c);
  req.chunk(new Uint8Array(entry.buffer, entry.byteOffset, entry.byteLength));
}

function rbscGetBYOBRequest(c) {
  if (c.byobRequest === null && c.pendingPullIntos.length > 0) {
    const first = c.pendingPullIntos[0];
    const view = new Uint8Array(first.buffer, first.byteOffset + first.bytesFilled, first.byteLength - first.bytesFilled);
    c.byobRequest = new ReadableStreamBYOBRequest(webidl.kIllegalConstructor, { controller: c, view });
  }
  return c.byobRequest;
}

function rbscGetDesiredSize(c) {
  const state = c.stream.state;
  if (state === 'errored') return null;
  if (state === 'closed') return 0;
  return c.strategyHWM - c.queueTotalSize;
}

function rbscHandleQueueDrain(c) {
  if (c.queueTotalSize === 0 && c.closeRequested) {
    rbscClearAlgorithms(c);
    readableStreamClose(c.stream);
  } else {
    rbscCallPullIfNeeded(c);
  }
}

function rbscInvalidateBYOBRequest(c) {
  if (c.byobRequest === null) return;
  const q = BRQ(c.byobRequest);
  q.controller = undefined;
  q.view = null;
  c.byobRequest = null;
}

function rbscProcessPullIntoDescriptorsUsingQueue(c) {
  const filled = [];
  while (c.pendingPullIntos.length > 0) {
    if (c.queueTotalSize === 0) break;
    const d = c.pendingPullIntos[0];
    if (rbscFillPullIntoDescriptorFromQueue(c, d)) {
      rbscShiftPendingPullInto(c);
      ArrayPrototypePush(filled, d);
    }
  }
  return filled;
}

function rbscProcessReadRequestsUsingQueue(c) {
  const reader = c.stream.reader;
  while (reader.readRequests.length > 0) {
    if (c.queueTotalSize === 0) return;
    const req = ArrayPrototypeShift(reader.readRequests);
    rbscFillReadRequestFromQueue(c, req);
  }
}

// ReadableByteStreamControllerPullInto, with the view's slots already read.
function rbscPullInto(c, slots, min, req) {
  const sr = c.stream;
  const { ctor, elementSize } = slots;
  const minimumFill = min * elementSize;
  let buffer;
  try {
    buffer = transferArrayBuffer(slots.buffer);
  } catch (e) {
    req.error(e);
    return;
  }
  const d = {
    buffer, bufferByteLength: bufferByteLength(buffer), byteOffset: slots.byteOffset,
    byteLength: slots.byteLength, bytesFilled: 0, minimumFill, elementSize, viewConstructor: ctor,
    readerType: 'byob',
  };
  if (c.pendingPullIntos.length > 0) {
    ArrayPrototypePush(c.pendingPullIntos, d);
    readableStreamAddReadIntoRequest(sr, req);
    return;
  }
  if (sr.state === 'closed') {
    req.close(ReflectConstruct(ctor, [d.buffer, d.byteOffset, 0]));
    return;
  }
  if (c.queueTotalSize > 0) {
    if (rbscFillPullIntoDescriptorFromQueue(c, d)) {
      const filledView = rbscConvertPullIntoDescriptor(d);
      rbscHandleQueueDrain(c);
      req.chunk(filledView);
      return;
    }
    if (c.closeRequested) {
      const e = new TypeError('The stream closed with a partial element in the BYOB reader\'s view');
      rbscError(c, e);
      req.error(e);
      return;
    }
  }
  ArrayPrototypePush(c.pendingPullIntos, d);
  readableStreamAddReadIntoRequest(sr, req);
  rbscCallPullIfNeeded(c);
}

function rbscRespond(c, bytesWritten) {
  const first = c.pendingPullIntos[0];
  const state = c.stream.state;
  if (state === 'closed') {
    if (bytesWritten !== 0) throw new TypeError('bytesWritten must be 0 when the stream is closed');
  } else {
    if (bytesWritten === 0) throw new TypeError('bytesWritten must be greater than 0 while the stream is readable');
    if (first.bytesFilled + bytesWritten > first.byteLength) throw new RangeError('bytesWritten is larger than the view');
  }
  first.buffer = transferArrayBuffer(first.buffer);
  rbscRespondInternal(c, bytesWritten);
}

function rbscRespondInClosedState(c, first) {
  if (first.readerType === 'none') rbscShiftPendingPullInto(c);
  const sr = c.stream;
  if (hasBYOBReader(sr)) {
    const filled = [];
    while (filled.length < getNumReadIntoRequests(sr)) ArrayPrototypePush(filled, rbscShiftPendingPullInto(c));
    for (let i = 0; i < filled.length; i++) {
      const d = filled[i];
      rbscCommitPullIntoDescriptor(sr, d);
    }
  }
}

function rbscRespondInReadableState(c, bytesWritten, d) {
  rbscFillHeadPullIntoDescriptor(c, bytesWritten, d);
  if (d.readerType === 'none') {
    rbscEnqueueDetachedPullIntoToQueue(c, d);
    const filled = rbscProcessPullIntoDescriptorsUsingQueue(c);
    for (let i = 0; i < filled.length; i++) {
      const f = filled[i];
      rbscCommitPullIntoDescriptor(c.stream, f);
    }
    return;
  }
  if (d.bytesFilled < d.minimumFill) return;
  rbscShiftPendingPullInto(c);
  const remainderSize = d.bytesFilled % d.elementSize;
  if (remainderSize > 0) {
    const end = d.byteOffset + d.bytesFilled;
    rbscEnqueueClonedChunkToQueue(c, d.buffer, end - remainderSize, remainderSize);
  }
  d.bytesFilled -= remainderSize;
  const filled = rbscProcessPullIntoDescriptorsUsingQueue(c);
  rbscCommitPullIntoDescriptor(c.stream, d);
  for (let i = 0; i < filled.length; i++) {
    const f = filled[i];
    rbscCommitPullIntoDescriptor(c.stream, f);
  }
}

function rbscRespondInternal(c, bytesWritten) {
  const first = c.pendingPullIntos[0];
  rbscInvalidateBYOBRequest(c);
  if (c.stream.state === 'closed') rbscRespondInClosedState(c, first);
  else rbscRespondInReadableState(c, bytesWritten, first);
  rbscCallPullIfNeeded(c);
}

function rbscRespondWithNewView(c, slots) {
  const first = c.pendingPullIntos[0];
  const state = c.stream.state;
  if (state === 'closed') {
    if (slots.byteLength !== 0) throw new TypeError('The view must be empty when the stream is closed');
  } else if (slots.byteLength === 0) {
    throw new TypeError('The view must not be empty while the stream is readable');
  }
  if (first.byteOffset + first.bytesFilled !== slots.byteOffset) {
    throw new RangeError('The view does not start where the BYOB request\'s view did');
  }
  if (first.bufferByteLength !== bufferByteLength(slots.buffer)) {
    throw new RangeError('The view\'s buffer is not the size of the BYOB request\'s buffer');
  }
  if (first.bytesFilled + slots.byteLength > first.byteLength) {
    throw new RangeError('The view is larger than the BYOB request\'s view');
  }
  const viewByteLength = slots.byteLength;
  first.buffer = transferArrayBuffer(slots.buffer);
  rbscRespondInternal(c, viewByteLength);
}

function rbscShiftPendingPullInto(c) {
  return ArrayPrototypeShift(c.pendingPullIntos);
}

function rbscError(c, e) {
  const sr = c.stream;
  if (sr.state !== 'readable') return;
  rbscClearPendingPullIntos(c);
  resetQueue(c);
  rbscClearAlgorithms(c);
  readableStreamError(sr, e);
}

// --- ReadableByteStreamTee (§4.9.1) -------------------------------------------------------------

function readableByteStreamTee(sr) {
  let reader = RDR(new ReadableStreamDefaultReader(sr.object));
  let reading = false, readAgainForBranch1 = false, readAgainForBranch2 = false;
  let canceled1 = false, canceled2 = false, reason1, reason2, branch1, branch2;
  const cancelPromise = newPromise();
  const ctl = (branch) => RS(branch).controller;

  const forwardReaderError = (thisReader) => {
    uponPromise(thisReader.closed.promise, undefined, (r) => {
      if (thisReader !== reader) return;
      rbscError(ctl(branch1), r);
      rbscError(ctl(branch2), r);
      if (!canceled1 || !canceled2) cancelPromise.resolve(undefined);
    });
  };
  const cloneFailed = (byobBranch, otherBranch, e) => {
    rbscError(ctl(byobBranch), e);
    rbscError(ctl(otherBranch), e);
    cancelPromise.resolve(readableStreamCancel(sr, e));
  };
  const readAgain = () => {
    if (readAgainForBranch1) pull1Algorithm();
    else if (readAgainForBranch2) pull2Algorithm();
  };

  const pullWithDefaultReader = () => {
    if (reader.kind === 'byob') {
      byobReaderRelease(reader);
      reader = RDR(new ReadableStreamDefaultReader(sr.object));
      forwardReaderError(reader);
    }
    defaultReaderRead(reader, {
      chunk: (chunk) => queueMicrotask(() => {
        readAgainForBranch1 = false;
        readAgainForBranch2 = false;
        let chunk2 = chunk;
        if (!canceled1 && !canceled2) {
          try {
            chunk2 = cloneAsUint8Array(chunk);
          } catch (e) {
            cloneFailed(branch1, branch2, e);
            return;
          }
        }
        if (!canceled1) rbscEnqueue(ctl(branch1), viewSlots(chunk));
        if (!canceled2) rbscEnqueue(ctl(branch2), viewSlots(chunk2));
        reading = false;
        readAgain();
      }),
      close: () => {
        reading = false;
        if (!canceled1) rbscClose(ctl(branch1));
        if (!canceled2) rbscClose(ctl(branch2));
        if (ctl(branch1).pendingPullIntos.length > 0) rbscRespond(ctl(branch1), 0);
        if (ctl(branch2).pendingPullIntos.length > 0) rbscRespond(ctl(branch2), 0);
        if (!canceled1 || !canceled2) cancelPromise.resolve(undefined);
      },
      error: () => { reading = false; },
    });
  };

  const pullWithBYOBReader = (view, forBranch2) => {
    if (reader.kind === 'default') {
      defaultReaderRelease(reader);
      reader = acquireBYOBReader(sr);
      forwardReaderError(reader);
    }
    const byobBranch = forBranch2 ? branch2 : branch1;
    const otherBranch = forBranch2 ? branch1 : branch2;
    byobReaderRead(reader, view, viewSlots(view), 1, {
      chunk: (chunk) => queueMicrotask(() => {
        readAgainForBranch1 = false;
        readAgainForBranch2 = false;
        const byobCanceled = forBranch2 ? canceled2 : canceled1;
        const otherCanceled = forBranch2 ? canceled1 : canceled2;
        if (!otherCanceled) {
          let cloned;
          try {
            cloned = cloneAsUint8Array(chunk);
          } catch (e) {
            cloneFailed(byobBranch, otherBranch, e);
            return;
          }
          if (!byobCanceled) rbscRespondWithNewView(ctl(byobBranch), viewSlots(chunk));
          rbscEnqueue(ctl(otherBranch), viewSlots(cloned));
        } else if (!byobCanceled) {
          rbscRespondWithNewView(ctl(byobBranch), viewSlots(chunk));
        }
        reading = false;
        readAgain();
      }),
      close: (chunk) => {
        reading = false;
        const byobCanceled = forBranch2 ? canceled2 : canceled1;
        const otherCanceled = forBranch2 ? canceled1 : canceled2;
        if (!byobCanceled) rbscClose(ctl(byobBranch));
        if (!otherCanceled) rbscClose(ctl(otherBranch));
        if (chunk !== undefined) {
          if (!byobCanceled) rbscRespondWithNewView(ctl(byobBranch), viewSlots(chunk));
          if (!otherCanceled && ctl(otherBranch).pendingPullIntos.length > 0) rbscRespond(ctl(otherBranch), 0);
        }
        if (!byobCanceled || !otherCanceled) cancelPromise.resolve(undefined);
      },
      error: () => { reading = false; },
    });
  };

  const pullFor = (branch, forBranch2) => {
    if (reading) {
      if (forBranch2) readAgainForBranch2 = true;
      else readAgainForBranch1 = true;
      return resolved(undefined);
    }
    reading = true;
    const byobRequest = rbscGetBYOBRequest(ctl(branch));
    if (byobRequest === null) pullWithDefaultReader();
    else pullWithBYOBReader(BRQ(byobRequest).view, forBranch2);
    return resolved(undefined);
  };
  const pull1Algorithm = () => pullFor(branch1, false);
  const pull2Algorithm = () => pullFor(branch2, true);
  const cancel1Algorithm = (reason) => {
    canceled1 = true;
    reason1 = reason;
    if (canceled2) cancelPromise.resolve(readableStreamCancel(sr, [reason1, reason2]));
    return cancelPromise.promise;
  };
  const cancel2Algorithm = (reason) => {
    canceled2 = true;
    reason2 = reason;
    if (canceled1) cancelPromise.resolve(readableStreamCancel(sr, [reason1, reason2]));
    return cancelPromise.promise;
  };
  branch1 = createReadableByteStream(() => undefined, pull1Algorithm, cancel1Algorithm);
  branch2 = createReadableByteStream(() => undefined, pull2Algorithm, cancel2Algorithm);
  forwardReaderError(reader);
  return [branch1, branch2];
}

// --- wiring ---------------------------------------------------------------------------------

bytes.ReadableStreamBYOBReader = ReadableStreamBYOBReader;
bytes.setUpController = (sr, start, pull, cancel, hwm, autoAllocateChunkSize) =>
  setUpByteController(sr, start, pull, cancel, hwm, autoAllocateChunkSize);
bytes.setUpControllerFromSource = setUpByteControllerFromSource;
bytes.readableByteStreamTee = readableByteStreamTee;
// For native byte sources (request bodies) and other built-ins.
ObjectFreeze(typedArrays);
S.bytes = {
  BR, BC, acquireBYOBReader, byobReaderRead, byobReaderRelease, rbscEnqueue, rbscClose, rbscError,
  rbscGetBYOBRequest, rbscGetDesiredSize, rbscRespond, viewSlots, toArrayBufferView,
  transferArrayBuffer, isDetached,
};

defineGlobal('ReadableStreamBYOBReader', ReadableStreamBYOBReader);
defineGlobal('ReadableStreamBYOBRequest', ReadableStreamBYOBRequest);
defineGlobal('ReadableByteStreamController', ReadableByteStreamController);
