// 14_abort.js: AbortController and AbortSignal (DOM §3.1-3.2), with AbortSignal.abort(),
// .timeout() and .any() (dependent signals), abort algorithms for other built-ins, and the
// `abort` event.
'use strict';

const { ArrayPrototypePush, SafeSet, TypeError, WeakRef, ObjectAssign } = primordials;
const {
  webidl, DOMException, EventTarget, Event, defineGlobal, defineEventHandler, dispatchEvent,
  trustedEvent, reportUncaught,
} = internal;

class AbortSignal extends EventTarget {
  #aborted = false;
  #reason = undefined;
  #algorithms = null; // a SafeSet, made when the first algorithm is added
  #dependent = false;
  #sources = null;     // for a dependent signal: WeakRefs to the signals it follows
  #dependents = null;  // WeakRefs to dependent signals that follow this one

  constructor(key = undefined) {
    webidl.illegalConstructor(key, 'AbortSignal');
    super();
  }

  static #check(s, what) {
    if (s === null || typeof s !== 'object' || !(#aborted in s)) throw webidl.illegalInvocation(`AbortSignal.${what}`);
  }

  get aborted() { AbortSignal.#check(this, 'aborted'); return this.#aborted; }
  get reason() { AbortSignal.#check(this, 'reason'); return this.#reason; }

  throwIfAborted() {
    AbortSignal.#check(this, 'throwIfAborted');
    if (this.#aborted) throw this.#reason;
  }

  static abort(reason = undefined) {
    const signal = new AbortSignal(webidl.kIllegalConstructor);
    signal.#aborted = true;
    signal.#reason = reason !== undefined ? reason : defaultReason();
    return signal;
  }

  static timeout(milliseconds) {
    webidl.argCount(arguments, 1, "Failed to execute 'timeout' on 'AbortSignal'");
    const ms = webidl.unsignedLongLong(milliseconds, { enforceRange: true },
      "Failed to execute 'timeout' on 'AbortSignal'");
    const signal = new AbortSignal(webidl.kIllegalConstructor);
    // As in a worker, the pending timeout keeps the event loop alive (a server's listener
    // does anyway).
    setTimeout(() => {
      AbortSignal.#signalAbort(signal, new DOMException('The operation timed out.', 'TimeoutError'));
    }, ms);
    return signal;
  }

  static any(signals) {
    webidl.argCount(arguments, 1, "Failed to execute 'any' on 'AbortSignal'");
    const list = webidl.iterable(signals, toAbortSignal, "Failed to execute 'any' on 'AbortSignal'");
    const result = new AbortSignal(webidl.kIllegalConstructor);
    for (let i = 0; i < list.length; i++) {
      const s = list[i];
      if (s.#aborted) {
        result.#aborted = true;
        result.#reason = s.#reason;
        return result;
      }
    }
    result.#dependent = true;
    result.#sources = [];
    const ref = new WeakRef(result);
    const follow = (source) => {
      ArrayPrototypePush(result.#sources, new WeakRef(source));
      (source.#dependents ??= new SafeSet()).add(ref);
    };
    for (let i = 0; i < list.length; i++) {
      const s = list[i];
      if (!s.#dependent) {
        follow(s);
      } else {
        for (let j = 0; j < s.#sources.length; j++) {
          const src = s.#sources[j].deref();
          if (src !== undefined) follow(src);
        }
      }
    }
    return result;
  }

  // DOM §3.2 "signal abort".
  static #signalAbort(signal, reason) {
    if (signal.#aborted) return;
    signal.#aborted = true;
    signal.#reason = reason !== undefined ? reason : defaultReason();
    const toAbort = [];
    if (signal.#dependents !== null) {
      signal.#dependents.forEach((ref) => {
        const dep = ref.deref();
        if (dep !== undefined && !dep.#aborted) {
          dep.#aborted = true;
          dep.#reason = signal.#reason;
          ArrayPrototypePush(toAbort, dep);
        }
      });
    }
    AbortSignal.#runAbortSteps(signal);
    for (let i = 0; i < toAbort.length; i++) AbortSignal.#runAbortSteps(toAbort[i]);
  }

  static #runAbortSteps(signal) {
    const algorithms = signal.#algorithms;
    signal.#algorithms = null;
    // forEach, not for-of: the set iterator's next is the app's to replace.
    if (algorithms !== null) algorithms.forEach(runAlgorithm);
    dispatchEvent(signal, trustedEvent(Event, 'abort'));
  }

  static isAbortSignal(v) { return v !== null && typeof v === 'object' && #aborted in v; }
  static signalAbort(signal, reason) { AbortSignal.#signalAbort(signal, reason); }
  static addAlgorithm(signal, fn) {
    if (signal.#aborted) return () => {};
    if (signal.#algorithms === null) signal.#algorithms = new SafeSet();
    signal.#algorithms.add(fn);
    return () => {
      if (signal.#algorithms !== null) signal.#algorithms.delete(fn);
    };
  }
}

function toAbortSignal(s) {
  if (!isAbortSignal(s)) {
    throw new TypeError("Failed to execute 'any' on 'AbortSignal': an element is not an AbortSignal");
  }
  return s;
}

function runAlgorithm(algorithm) {
  try {
    algorithm();
  } catch (err) {
    reportUncaught(err);
  }
}

function defaultReason() {
  return new DOMException('signal is aborted without reason', 'AbortError');
}

const isAbortSignal = AbortSignal.isAbortSignal;
const signalAbort = AbortSignal.signalAbort;
const addAlgorithm = AbortSignal.addAlgorithm;
delete AbortSignal.isAbortSignal;
delete AbortSignal.signalAbort;
delete AbortSignal.addAlgorithm;
defineEventHandler(AbortSignal.prototype, 'abort');
webidl.configureInterface(AbortSignal, 'AbortSignal');

class AbortController {
  #signal = new AbortSignal(webidl.kIllegalConstructor);

  get signal() {
    if (!(this !== null && typeof this === 'object' && #signal in this)) throw webidl.illegalInvocation('AbortController.signal');
    return this.#signal;
  }

  abort(reason = undefined) {
    if (!(this !== null && typeof this === 'object' && #signal in this)) throw webidl.illegalInvocation('AbortController.abort');
    signalAbort(this.#signal, reason);
  }
}
webidl.configureInterface(AbortController, 'AbortController');

defineGlobal('AbortSignal', AbortSignal);
defineGlobal('AbortController', AbortController);

ObjectAssign(internal, {
  AbortSignal, isAbortSignal, signalAbort,
  // addAbortAlgorithm(signal, fn): runs fn when signal aborts; returns a function removing it.
  addAbortAlgorithm: addAlgorithm,
  newAbortSignal: () => new AbortSignal(webidl.kIllegalConstructor),
});
