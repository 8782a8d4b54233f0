// 34_streams_transform.js: piping (ReadableStreamPipeTo, §4.9.x: pipeTo and pipeThrough) and
// TransformStream with its default controller (§6), on the records of 31_streams.js and
// 33_streams_writable.js.
'use strict';

const {
  ArrayPrototypePush, FunctionPrototypeCall, ObjectDefineProperty, Promise, PromisePrototypeThen,
  PromiseReject, ReflectApply, TypeError, RangeError, ObjectAssign,
} = primordials;
const {
  webidl, DOMException, defineGlobal, structuredClone, addAbortAlgorithm, isAbortSignal,
  ReadableStream, isReadableStream, streams: S, streamsConvertStrategy: convertStrategy,
  streamsExtractSize: extractSize, streamsExtractHWM: extractHWM,
  isWritableStream, writableStreams: W, queueMicrotask,
} = internal;

function newPromise() {
  let resolve, reject;
  const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
  return { promise, resolve, reject };
}
const { resolved } = S; // WebIDL "a promise resolved with" (31_streams.js)
const rejected = (e) => PromiseReject(e);
const then = (p, ok, err) => PromisePrototypeThen(p, ok, err);
const markHandled = (p) => { PromisePrototypeThen(p, undefined, () => {}); };
const uponPromise = (p, ok, err) => markHandled(then(p, ok, err));
function promiseCall(fn, thisArg, args) {
  try {
    return resolved(ReflectApply(fn, thisArg, args));
  } catch (e) {
    return rejected(e);
  }
}
// A Promise.all over the runtime's own promises (not the app's patched Promise.all).
function whenAll(promises) {
  const d = newPromise();
  let left = promises.length;
  if (left === 0) d.resolve([]);
  const out = [];
  promises.forEach((p, i) => {
    then(p, (v) => {
      out[i] = v;
      if (--left === 0) d.resolve(out);
    }, d.reject);
  });
  return d.promise;
}

// --- ReadableStreamPipeTo --------------------------------------------------------------------

function readableStreamPipeTo(source, dest, preventClose, preventAbort, preventCancel, signal) {
  const rr = S.RDR(new S.ReadableStreamDefaultReader(source.object));
  const w = W.WW(new W.WritableStreamDefaultWriter(dest.object));
  source.disturbed = true;
  let shuttingDown = false;
  let currentWrite = resolved(undefined);
  const promise = newPromise();
  let removeAbort = () => {};

  const finalize = (isError, error) => {
    W.writerRelease(w);
    S.defaultReaderRelease(rr);
    removeAbort();
    if (isError) promise.reject(error);
    else promise.resolve(undefined);
  };
  const waitForWritesToFinish = () => {
    const old = currentWrite;
    return then(old, () => (old !== currentWrite ? waitForWritesToFinish() : undefined),
      () => (old !== currentWrite ? waitForWritesToFinish() : undefined));
  };
  const shutdownWithAction = (action, originalIsError, originalError) => {
    if (shuttingDown) return;
    shuttingDown = true;
    const doTheRest = () => {
      uponPromise(action(), () => finalize(originalIsError, originalError),
        (newError) => finalize(true, newError));
    };
    if (dest.state === 'writable' && !W.writableStreamCloseQueuedOrInFlight(dest)) {
      uponPromise(waitForWritesToFinish(), doTheRest, doTheRest);
    } else {
      doTheRest();
    }
  };
  const shutdown = (isError, error) => {
    if (shuttingDown) return;
    shuttingDown = true;
    if (dest.state === 'writable' && !W.writableStreamCloseQueuedOrInFlight(dest)) {
      uponPromise(waitForWritesToFinish(), () => finalize(isError, error), () => finalize(isError, error));
    } else {
      finalize(isError, error);
    }
  };

  if (signal !== undefined) {
    const abortAlgorithm = () => {
      const error = signal.reason;
      const actions = [];
      if (!preventAbort) {
        ArrayPrototypePush(actions, () => (dest.state === 'writable' ? W.writableStreamAbort(dest, error) : resolved(undefined)));
      }
      if (!preventCancel) {
        ArrayPrototypePush(actions, () => (source.state === 'readable' ? S.readableStreamCancel(source, error) : resolved(undefined)));
      }
      shutdownWithAction(() => whenAll(actions.map((a) => a())), true, error);
    };
    if (signal.aborted) {
      abortAlgorithm();
      return promise.promise;
    }
    removeAbort = addAbortAlgorithm(signal, abortAlgorithm);
  }

  // Errors and closes, forward and backward, as each side reaches them.
  const onSourceErrored = (storedError) => {
    if (!preventAbort) shutdownWithAction(() => W.writableStreamAbort(dest, storedError), true, storedError);
    else shutdown(true, storedError);
  };
  const onDestErrored = (storedError) => {
    if (!preventCancel) shutdownWithAction(() => S.readableStreamCancel(source, storedError), true, storedError);
    else shutdown(true, storedError);
  };
  const onSourceClosed = () => {
    if (!preventClose) shutdownWithAction(() => W.writerCloseWithErrorPropagation(w));
    else shutdown();
  };
  const onDestClosed = () => {
    const destClosed = new TypeError('The destination stream closed');
    if (!preventCancel) shutdownWithAction(() => S.readableStreamCancel(source, destClosed), true, destClosed);
    else shutdown(true, destClosed);
  };

  if (source.state === 'errored') onSourceErrored(source.storedError);
  else uponPromise(rr.closed.promise, () => {}, onSourceErrored);
  if (dest.state === 'errored') onDestErrored(dest.storedError);
  else uponPromise(w.closed.promise, () => {}, onDestErrored);
  if (source.state === 'closed') onSourceClosed();
  else uponPromise(rr.closed.promise, onSourceClosed, () => {});
  if (W.writableStreamCloseQueuedOrInFlight(dest) || dest.state === 'closed') onDestClosed();

  // The pump: one read at a time, only while the destination wants more (its desiredSize > 0:
  // the spec's backpressure rule, read directly rather than through a turn of writer.ready),
  // each chunk written at the next microtask (a source's enqueue() must not run the sink's
  // write()), and the next read right after that write is queued. Closing and erroring are the
  // closed promises' business (above). No promise or closure per chunk but the write's own.
  let isReading = false;
  let hasPending = false;
  let isWaitingReady = false;
  let pending;
  const writePending = () => {
    const chunk = pending;
    pending = undefined;
    hasPending = false;
    currentWrite = W.writerWrite(w, chunk);
    markHandled(currentWrite);
    pump();
  };
  const readRequest = {
    chunk(chunk) {
      isReading = false;
      pending = chunk;
      hasPending = true;
      queueMicrotask(writePending);
    },
    close() { isReading = false; },
    error() { isReading = false; },
  };
  const onReady = () => {
    isWaitingReady = false;
    pump();
  };
  const pump = () => {
    if (shuttingDown || isReading || hasPending || isWaitingReady) return;
    const size = W.writerGetDesiredSize(w);
    if (size === null) return;
    if (size <= 0) {
      isWaitingReady = true;
      uponPromise(w.ready.promise, onReady, () => { isWaitingReady = false; });
      return;
    }
    isReading = true;
    S.defaultReaderRead(rr, readRequest);
  };
  if (!shuttingDown) pump();
  return promise.promise;
}

function readPipeOptions(options, context) {
  const d = webidl.dictionary(options, context);
  const out = {
    preventAbort: !!d.preventAbort,
    preventCancel: !!d.preventCancel,
    preventClose: !!d.preventClose,
    signal: d.signal,
  };
  if (out.signal !== undefined && !isAbortSignal(out.signal)) {
    throw new TypeError(`${context}: signal is not an AbortSignal`);
  }
  return out;
}

const ReadableStreamProto = ReadableStream.prototype;
ObjectDefineProperty(ReadableStreamProto, 'pipeTo', {
  value: function pipeTo(destination, options = undefined) {
    const r = S.RS(this);
    if (r === null) return rejected(webidl.illegalInvocation('ReadableStream.pipeTo'));
    const context = "Failed to execute 'pipeTo' on 'ReadableStream'";
    const d = W.WS(destination);
    if (d === null) return rejected(new TypeError(`${context}: the destination is not a WritableStream`));
    let opts;
    try {
      opts = readPipeOptions(options, context);
    } catch (e) {
      return rejected(e);
    }
    if (S.isLocked(r)) return rejected(new TypeError(`${context}: the stream is locked`));
    if (W.isWritableStreamLocked(d)) return rejected(new TypeError(`${context}: the destination is locked`));
    return readableStreamPipeTo(r, d, opts.preventClose, opts.preventAbort, opts.preventCancel, opts.signal);
  },
  writable: true, enumerable: true, configurable: true,
});
ObjectDefineProperty(ReadableStreamProto, 'pipeThrough', {
  value: function pipeThrough(transform, options = undefined) {
    const r = S.RS(this);
    if (r === null) throw webidl.illegalInvocation('ReadableStream.pipeThrough');
    const context = "Failed to execute 'pipeThrough' on 'ReadableStream'";
    webidl.argCount(arguments, 1, context);
    if (transform === null || (typeof transform !== 'object' && typeof transform !== 'function')) {
      throw new TypeError(`${context}: the transform must be an object`);
    }
    const readable = transform.readable;
    if (S.RS(readable) === null) throw new TypeError(`${context}: transform.readable is not a ReadableStream`);
    const writable = transform.writable;
    const d = W.WS(writable);
    if (d === null) throw new TypeError(`${context}: transform.writable is not a WritableStream`);
    const opts = readPipeOptions(options, context);
    if (S.isLocked(r)) throw new TypeError(`${context}: the stream is locked`);
    if (W.isWritableStreamLocked(d)) throw new TypeError(`${context}: transform.writable is locked`);
    markHandled(readableStreamPipeTo(r, d, opts.preventClose, opts.preventAbort, opts.preventCancel, opts.signal));
    return readable;
  },
  writable: true, enumerable: true, configurable: true,
});

// --- TransformStream (§6) -----------------------------------------------------------------------

let TS;
class TransformStream {
  #t; // { readable, writable (objects), backpressure, backpressureChangePromise, controller }

  constructor(transformer = undefined, writableStrategy = undefined, readableStrategy = undefined) {
    if (transformer === null) throw new TypeError("Failed to construct 'TransformStream': the transformer cannot be null");
    const tr = transformer === undefined ? null : transformer;
    const ws = convertStrategy(writableStrategy);
    const rs = convertStrategy(readableStrategy);
    const dict = readTransformer(tr);
    if (dict.readableType !== undefined) throw new RangeError("Failed to construct 'TransformStream': readableType must be undefined");
    if (dict.writableType !== undefined) throw new RangeError("Failed to construct 'TransformStream': writableType must be undefined");
    const readableHWM = extractHWM(rs, 0);
    const readableSize = extractSize(rs);
    const writableHWM = extractHWM(ws, 1);
    const writableSize = extractSize(ws);
    const startPromise = newPromise();
    this.#t = { object: this, readable: null, writable: null, backpressure: undefined,
      backpressureChangePromise: undefined, controller: undefined };
    initializeTransformStream(this.#t, startPromise.promise, writableHWM, writableSize, readableHWM, readableSize);
    setUpControllerFromTransformer(this.#t, tr, dict);
    if (dict.start !== undefined) {
      startPromise.resolve(FunctionPrototypeCall(dict.start, tr, this.#t.controller.object));
    } else {
      startPromise.resolve(undefined);
    }
  }
  static {
    TS = (o) => (o !== null && typeof o === 'object' && #t in o ? o.#t : null);
  }
  get readable() {
    const t = TS(this);
    if (t === null) throw webidl.illegalInvocation('TransformStream.readable');
    return t.readable;
  }
  get writable() {
    const t = TS(this);
    if (t === null) throw webidl.illegalInvocation('TransformStream.writable');
    return t.writable;
  }
}
webidl.configureInterface(TransformStream);

function readTransformer(tr) {
  if (tr === null) return { __proto__: null };
  const out = { __proto__: null }; // its own keys only, whatever Object.prototype holds
  for (let i = 0, list = ['cancel', 'flush', 'readableType', 'start', 'transform', 'writableType']; i < list.length; i++) {
    const key = list[i];
    const v = tr[key];
    if (v === undefined) continue;
    if (key === 'readableType' || key === 'writableType') {
      out[key] = v;
      continue;
    }
    if (typeof v !== 'function') throw new TypeError(`Failed to construct 'TransformStream': ${key} must be a function`);
    out[key] = v;
  }
  return out;
}

function initializeTransformStream(t, startPromise, writableHWM, writableSize, readableHWM, readableSize) {
  const start = () => startPromise;
  t.writable = W.createWritableStream(start, (chunk) => sinkWrite(t, chunk), () => sinkClose(t),
    (reason) => sinkAbort(t, reason), writableHWM, writableSize);
  t.readable = S.createReadableStream(start, () => sourcePull(t), (reason) => sourceCancel(t, reason),
    readableHWM, readableSize);
  t.backpressure = undefined;
  t.backpressureChangePromise = undefined;
  setBackpressure(t, true);
  t.controller = undefined;
}

const readableController = (t) => S.RS(t.readable).controller;
const writableRecord = (t) => W.WS(t.writable);

function transformStreamError(t, e) {
  S.rdcError(readableController(t), e);
  errorWritableAndUnblockWrite(t, e);
}

function errorWritableAndUnblockWrite(t, e) {
  clearAlgorithms(t.controller);
  W.wdcErrorIfNeeded(writableRecord(t).controller, e);
  unblockWrite(t);
}

function unblockWrite(t) {
  if (t.backpressure) setBackpressure(t, false);
}

function setBackpressure(t, backpressure) {
  if (t.backpressureChangePromise !== undefined) t.backpressureChangePromise.resolve(undefined);
  t.backpressureChangePromise = newPromise();
  t.backpressure = backpressure;
}

// --- TransformStreamDefaultController (§6.3) --------------------------------------------------

let TDC;
class TransformStreamDefaultController {
  #c;
  constructor(key = undefined, record = undefined) {
    webidl.illegalConstructor(key, 'TransformStreamDefaultController');
    this.#c = record;
  }
  static {
    TDC = (o) => (o !== null && typeof o === 'object' && #c in o ? o.#c : null);
  }
  static #check(o, what) {
    const c = TDC(o);
    if (c === null) throw webidl.illegalInvocation(`TransformStreamDefaultController.${what}`);
    return c;
  }
  get desiredSize() {
    const c = TransformStreamDefaultController.#check(this, 'desiredSize');
    return S.rdcGetDesiredSize(readableController(c.stream));
  }
  enqueue(chunk = undefined) {
    controllerEnqueue(TransformStreamDefaultController.#check(this, 'enqueue'), chunk);
  }
  error(reason = undefined) {
    transformStreamError(TransformStreamDefaultController.#check(this, 'error').stream, reason);
  }
  terminate() {
    controllerTerminate(TransformStreamDefaultController.#check(this, 'terminate'));
  }
}
webidl.configureInterface(TransformStreamDefaultController);

function setUpControllerFromTransformer(t, tr, dict) {
  const c = { stream: t, object: null, transformAlgorithm: null, flushAlgorithm: null,
    cancelAlgorithm: null, finishPromise: undefined };
  c.object = new TransformStreamDefaultController(webidl.kIllegalConstructor, c);
  t.controller = c;
  c.transformAlgorithm = dict.transform !== undefined
    ? (chunk) => {
      // A transform that returns nothing (the usual, synchronous one) gets the one shared
      // settled promise: performTransform then reacts to nothing (no promise per chunk).
      try {
        const r = ReflectApply(dict.transform, tr, [chunk, c.object]);
        return r === undefined ? kTransformed : resolved(r);
      } catch (e) {
        return rejected(e);
      }
    }
    : (chunk) => {
      try {
        controllerEnqueue(c, chunk);
        return resolved(undefined);
      } catch (e) {
        return rejected(e);
      }
    };
  c.flushAlgorithm = dict.flush !== undefined ? () => promiseCall(dict.flush, tr, [c.object]) : () => resolved(undefined);
  c.cancelAlgorithm = dict.cancel !== undefined ? (reason) => promiseCall(dict.cancel, tr, [reason]) : () => resolved(undefined);
}

function clearAlgorithms(c) {
  c.transformAlgorithm = undefined;
  c.flushAlgorithm = undefined;
  c.cancelAlgorithm = undefined;
}

function controllerEnqueue(c, chunk) {
  const t = c.stream;
  const rc = readableController(t);
  if (!S.rdcCanCloseOrEnqueue(rc)) throw new TypeError('The readable side cannot accept chunks now');
  try {
    S.rdcEnqueue(rc, chunk);
  } catch (e) {
    errorWritableAndUnblockWrite(t, e);
    throw S.RS(t.readable).storedError;
  }
  const backpressure = !S.rdcShouldCallPull(rc);
  if (backpressure !== t.backpressure) setBackpressure(t, true);
}

function controllerTerminate(c) {
  const t = c.stream;
  S.rdcClose(readableController(t));
  errorWritableAndUnblockWrite(t, new TypeError('The TransformStream was terminated'));
}

// Never handed to app code (sinkWrite's result goes to the writable's controller only), so one
// object serves every chunk.
const kTransformed = resolved(undefined);

function performTransform(c, chunk) {
  const p = c.transformAlgorithm(chunk);
  if (p === kTransformed) return p;
  return then(p, undefined, (r) => {
    transformStreamError(c.stream, r);
    throw r;
  });
}

function sinkWrite(t, chunk) {
  const c = t.controller;
  if (t.backpressure) {
    return then(t.backpressureChangePromise.promise, () => {
      const w = writableRecord(t);
      if (w.state === 'erroring') throw w.storedError;
      return performTransform(c, chunk);
    });
  }
  return performTransform(c, chunk);
}

// The cancel algorithm, or nothing to do when an error already cleared the algorithms: a
// transform that rejected while an abort waited for it errors the stream first
// (TransformStreamError clears them), and the spec's abort steps would then call an
// undefined algorithm and leave abort() pending forever. Both sides are errored by then;
// the steps below settle the promise with the stored error.
function cancelOnce(c, reason) {
  return c.cancelAlgorithm !== undefined ? c.cancelAlgorithm(reason) : resolved(undefined);
}

function sinkAbort(t, reason) {
  const c = t.controller;
  if (c.finishPromise !== undefined) return c.finishPromise.promise;
  const readable = S.RS(t.readable);
  c.finishPromise = newPromise();
  const cancelPromise = cancelOnce(c, reason);
  clearAlgorithms(c);
  uponPromise(cancelPromise, () => {
    if (readable.state === 'errored') c.finishPromise.reject(readable.storedError);
    else {
      S.rdcError(readable.controller, reason);
      c.finishPromise.resolve(undefined);
    }
  }, (r) => {
    S.rdcError(readable.controller, r);
    c.finishPromise.reject(r);
  });
  return c.finishPromise.promise;
}

function sinkClose(t) {
  const c = t.controller;
  if (c.finishPromise !== undefined) return c.finishPromise.promise;
  const readable = S.RS(t.readable);
  c.finishPromise = newPromise();
  const flushPromise = c.flushAlgorithm();
  clearAlgorithms(c);
  uponPromise(flushPromise, () => {
    if (readable.state === 'errored') c.finishPromise.reject(readable.storedError);
    else {
      S.rdcClose(readable.controller);
      c.finishPromise.resolve(undefined);
    }
  }, (r) => {
    S.rdcError(readable.controller, r);
    c.finishPromise.reject(r);
  });
  return c.finishPromise.promise;
}

function sourcePull(t) {
  setBackpressure(t, false);
  return t.backpressureChangePromise.promise;
}

function sourceCancel(t, reason) {
  const c = t.controller;
  if (c.finishPromise !== undefined) return c.finishPromise.promise;
  const writable = writableRecord(t);
  c.finishPromise = newPromise();
  const cancelPromise = cancelOnce(c, reason);
  clearAlgorithms(c);
  uponPromise(cancelPromise, () => {
    if (writable.state === 'errored') c.finishPromise.reject(writable.storedError);
    else {
      W.wdcErrorIfNeeded(writable.controller, reason);
      unblockWrite(t);
      c.finishPromise.resolve(undefined);
    }
  }, (r) => {
    W.wdcErrorIfNeeded(writable.controller, r);
    unblockWrite(t);
    c.finishPromise.reject(r);
  });
  return c.finishPromise.promise;
}

// TransformStreamDefaultControllerEnqueue for built-in transformers: not through the
// controller's prototype, which app code can patch.
const transformEnqueue = (controller, chunk) => controllerEnqueue(TDC(controller), chunk);
// A TransformStream's two sides, also without the patchable getters.
const transformSides = (ts) => {
  const t = TS(ts);
  return { __proto__: null, readable: t.readable, writable: t.writable };
};
// For built-in transformers that make many chunks out of one (35_compression_streams.js):
// undefined when the readable side wants a chunk now; else a promise that resolves to true
// when it next pulls, to false when the writable side is aborted meanwhile (the transform
// should stop: the abort waits for it, as Streams says, then runs the cancel algorithm), or
// rejects with the writable side's error if the stream was cancelled or errored (as a write
// waiting on backpressure would, §6.4.x "sink write" step 2). The abort is seen through the
// writable controller's signal, which "abort" signals at once, so the write in progress ends
// without waiting for a read that may never come.
const transformWaitForPull = (controller) => {
  const t = TDC(controller).stream;
  if (!t.backpressure) return undefined;
  const w = writableRecord(t);
  // Aborted or cancelled between the last wait and this one (app code ran in between).
  if (w.state !== 'writable') return w.pendingAbortRequest !== null ? resolved(false) : rejected(w.storedError);
  const woken = newPromise();
  let isAborted = false;
  const signal = w.controller.abortSignal;
  const removeAbort = addAbortAlgorithm(signal, () => {
    isAborted = true;
    woken.resolve();
  });
  uponPromise(t.backpressureChangePromise.promise, woken.resolve, woken.resolve);
  return then(woken.promise, () => {
    removeAbort();
    if (isAborted || w.pendingAbortRequest !== null) return false;
    if (w.state === 'erroring' || w.state === 'errored') throw w.storedError;
    return true;
  });
};

// --- transfer (§4.2.x, §5.2.x, §6.2.x "transfer steps") ------------------------------------------
// Within one isolate a transferred stream is a new stream of the same kind over the original,
// which stays locked to it for good; chunks pass through structured clone, as they would
// through the standard's cross-realm message port. structuredClone (23_globals.js) calls this.

const isTransferableStream = (v) => isReadableStream(v) || isWritableStream(v) || TS(v) !== null;

function isTransferLocked(v) {
  if (isReadableStream(v)) return S.isLocked(S.RS(v));
  if (isWritableStream(v)) return W.isWritableStreamLocked(W.WS(v));
  const t = TS(v);
  return S.isLocked(S.RS(t.readable)) || W.isWritableStreamLocked(W.WS(t.writable));
}

function transferReadable(rs) {
  const rr = S.RDR(new S.ReadableStreamDefaultReader(rs));
  let out;
  const pull = () => {
    const d = S.newPromise();
    const c = S.RS(out).controller;
    S.defaultReaderRead(rr, {
      chunk: (chunk) => {
        let copy;
        try {
          copy = structuredClone(chunk);
        } catch (e) {
          S.rdcError(c, e);
          S.readableStreamCancel(rr.stream, e);
          d.resolve(undefined);
          return;
        }
        S.rdcEnqueue(c, copy);
        d.resolve(undefined);
      },
      close: () => {
        S.rdcClose(c);
        d.resolve(undefined);
      },
      error: (e) => {
        S.rdcError(c, e);
        d.resolve(undefined);
      },
    });
    return d.promise;
  };
  const cancel = (reason) => S.readableStreamCancel(rr.stream, reason);
  out = S.createReadableStream(() => undefined, pull, cancel, 0);
  return out;
}

function transferWritable(ws) {
  const w = W.WW(new W.WritableStreamDefaultWriter(ws));
  const write = (chunk) => {
    try {
      return W.writerWrite(w, structuredClone(chunk));
    } catch (e) {
      return PromiseReject(e);
    }
  };
  const close = () => W.writerCloseWithErrorPropagation(w);
  const abort = (reason) => W.writableStreamAbort(w.stream, reason);
  return W.createWritableStream(() => undefined, write, close, abort, 1);
}

// The transfer steps: a DataCloneError if the stream (or a side of it) is locked.
function transferStream(v) {
  if (isTransferLocked(v)) {
    throw new DOMException('A locked stream cannot be transferred', 'DataCloneError');
  }
  if (isReadableStream(v)) return transferReadable(v);
  if (isWritableStream(v)) return transferWritable(v);
  const t = TS(v);
  const readable = transferReadable(t.readable);
  const writable = transferWritable(t.writable);
  const copy = new TransformStream();
  const ct = TS(copy);
  ct.readable = readable;
  ct.writable = writable;
  return copy;
}

defineGlobal('TransformStream', TransformStream);
defineGlobal('TransformStreamDefaultController', TransformStreamDefaultController);

ObjectAssign(internal, {
  TransformStream, transformEnqueue, transformSides, transformWaitForPull,
  isTransformStream: (v) => TS(v) !== null,
  streamTransfer: { isTransferableStream, isTransferLocked, transferStream }, // for structuredClone
});
