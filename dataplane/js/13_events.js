// 13_events.js: Event, EventTarget, CustomEvent, ErrorEvent, PromiseRejectionEvent (DOM §2,
// HTML §8.1.7), event handler attributes (HTML §8.1.8), and the global object as an
// EventTarget with onerror / onunhandledrejection / onrejectionhandled.
//
// There is no node tree here: an event's path is its target alone, so dispatch is the DOM's
// algorithm with a one-element path (capture listeners, then the others, at the target).
'use strict';

const {
  ArrayPrototypePush, ArrayPrototypeSlice, ArrayPrototypeSplice, ArrayPrototypeIndexOf,
  ObjectDefineProperty, ObjectSetPrototypeOf, ReflectApply, Symbol, TypeError, Error,
  FunctionPrototypeCall, ObjectAssign,
} = primordials;
const { webidl, DOMException, defineGlobal, performanceNow, logUncaught } = internal;
// Late (read as internal.x when called; given by a later file): isAbortSignal, addAbortAlgorithm.

const NONE = 0;
const CAPTURING_PHASE = 1;
const AT_TARGET = 2;
const BUBBLING_PHASE = 3;

const kTrusted = Symbol('nano.trustedEvent');

class Event {
  #type;
  #target = null;
  #currentTarget = null;
  #phase = NONE;
  #bubbles;
  #cancelable;
  #composed;
  #canceled = false;
  #stopPropagation = false;
  #stopImmediate = false;
  #inPassiveListener = false;
  #dispatching = false;
  #initialized = true;
  #timeStamp;

  constructor(type, eventInitDict = undefined) {
    if (arguments.length === 0) {
      throw new TypeError("Failed to construct 'Event': 1 argument required, but only 0 present.");
    }
    this.#type = webidl.DOMString(type, "Failed to construct 'Event'");
    const init = webidl.dictionary(eventInitDict, "Failed to construct 'Event'");
    this.#bubbles = !!init.bubbles;
    this.#cancelable = !!init.cancelable;
    this.#composed = !!init.composed;
    this.#timeStamp = performanceNow();
    // [LegacyUnforgeable] isTrusted: an own, non-configurable accessor on every event.
    ObjectDefineProperty(this, 'isTrusted', {
      get: arguments[2] === kTrusted ? trustedGetter : untrustedGetter,
      enumerable: true,
      configurable: false,
    });
  }

  static #check(e, what) {
    if (e === null || typeof e !== 'object' || !(#type in e)) throw webidl.illegalInvocation(`Event.${what}`);
  }

  get type() { Event.#check(this, 'type'); return this.#type; }
  get target() { Event.#check(this, 'target'); return this.#target; }
  get srcElement() { Event.#check(this, 'srcElement'); return this.#target; }
  get currentTarget() { Event.#check(this, 'currentTarget'); return this.#currentTarget; }
  composedPath() {
    Event.#check(this, 'composedPath');
    return this.#currentTarget === null ? [] : [this.#currentTarget];
  }
  get eventPhase() { Event.#check(this, 'eventPhase'); return this.#phase; }
  stopPropagation() { Event.#check(this, 'stopPropagation'); this.#stopPropagation = true; }
  get cancelBubble() { Event.#check(this, 'cancelBubble'); return this.#stopPropagation; }
  set cancelBubble(v) { Event.#check(this, 'cancelBubble'); if (v) this.#stopPropagation = true; }
  stopImmediatePropagation() {
    Event.#check(this, 'stopImmediatePropagation');
    this.#stopPropagation = true;
    this.#stopImmediate = true;
  }
  get bubbles() { Event.#check(this, 'bubbles'); return this.#bubbles; }
  get cancelable() { Event.#check(this, 'cancelable'); return this.#cancelable; }
  get returnValue() { Event.#check(this, 'returnValue'); return !this.#canceled; }
  set returnValue(v) {
    Event.#check(this, 'returnValue');
    if (!v) this.#setCanceled();
  }
  preventDefault() { Event.#check(this, 'preventDefault'); this.#setCanceled(); }
  #setCanceled() {
    if (this.#cancelable && !this.#inPassiveListener) this.#canceled = true;
  }
  get defaultPrevented() { Event.#check(this, 'defaultPrevented'); return this.#canceled; }
  get composed() { Event.#check(this, 'composed'); return this.#composed; }
  get timeStamp() { Event.#check(this, 'timeStamp'); return this.#timeStamp; }

  initEvent(type, bubbles = false, cancelable = false) {
    Event.#check(this, 'initEvent');
    webidl.argCount(arguments, 1, "Failed to execute 'initEvent' on 'Event'");
    if (this.#dispatching) return;
    this.#initialized = true;
    this.#stopPropagation = false;
    this.#stopImmediate = false;
    this.#canceled = false;
    this.#target = null;
    this.#type = webidl.DOMString(type);
    this.#bubbles = !!bubbles;
    this.#cancelable = !!cancelable;
  }

  // DOM §2.9 dispatch, for a path of one (the target).
  static dispatch(event, target, listenersOf, fromTask = false) {
    if (event.#dispatching || !event.#initialized) {
      throw new DOMException('The event is already being dispatched or was not initialized',
        'InvalidStateError');
    }
    event.#dispatching = true;
    event.#target = target;
    event.#currentTarget = target;
    event.#phase = AT_TARGET;
    if (!event.#stopPropagation) {
      const listeners = listenersOf(target, event.#type);
      if (listeners !== undefined) {
        const snapshot = ArrayPrototypeSlice(listeners);
        Event.#invoke(event, target, listeners, snapshot, true, fromTask);
        if (!event.#stopImmediate) Event.#invoke(event, target, listeners, snapshot, false, fromTask);
      }
    }
    event.#phase = NONE;
    event.#currentTarget = null;
    event.#dispatching = false;
    event.#stopPropagation = false;
    event.#stopImmediate = false;
    return !event.#canceled;
  }

  static #invoke(event, target, listeners, snapshot, capturePass, fromTask) {
    for (let i = 0; i < snapshot.length; i++) {
      const l = snapshot[i];
      if (l.removed || l.capture !== capturePass) continue;
      if (l.once) removeListener(listeners, l);
      const cb = l.callback;
      let fn = cb;
      let thisArg = event.#currentTarget;
      if (typeof cb !== 'function') {
        try {
          fn = cb.handleEvent;
        } catch (err) {
          reportUncaught(err);
          continue;
        }
        if (typeof fn !== 'function') {
          reportUncaught(new TypeError("The listener's handleEvent is not a function"));
          continue;
        }
        thisArg = cb;
      }
      if (l.passive) event.#inPassiveListener = true;
      try {
        ReflectApply(fn, thisArg, [event]);
      } catch (err) {
        reportUncaught(err);
      }
      event.#inPassiveListener = false;
      // HTML "clean up after running a callback": an event fired by a task (not from inside
      // script) runs microtasks after each listener, as the script stack is then empty.
      if (fromTask) binding.runMicrotasks();
      if (event.#stopImmediate) break;
    }
  }

  static isEvent(v) { return v !== null && typeof v === 'object' && #type in v; }
  static markUninitialized(e) { e.#initialized = false; }
}

function trustedGetter() { return true; }
function untrustedGetter() { return false; }
ObjectDefineProperty(trustedGetter, 'name', { value: 'get isTrusted' });
ObjectDefineProperty(untrustedGetter, 'name', { value: 'get isTrusted' });

const eventDispatch = Event.dispatch;
const isEvent = Event.isEvent;
delete Event.dispatch;
delete Event.isEvent;
delete Event.markUninitialized;
webidl.configureInterface(Event, 'Event', { NONE, CAPTURING_PHASE, AT_TARGET, BUBBLING_PHASE });

function removeListener(list, l) {
  l.removed = true;
  const i = ArrayPrototypeIndexOf(list, l);
  if (i !== -1) ArrayPrototypeSplice(list, i, 1);
}

function flattenOptions(options) {
  if (typeof options === 'boolean' || options === undefined || options === null ||
      (typeof options !== 'object' && typeof options !== 'function')) {
    return { capture: !!options };
  }
  return { capture: !!options.capture };
}

// EventTarget state lives in a private field; `new EventTargetState(obj)` stamps it onto an
// existing object (the global), via the base-class return-override idiom.
class Stamp { constructor(o) { return o; } }
class EventTargetState extends Stamp {
  #listeners = { __proto__: null };
  constructor(o) { super(o); }
  static has(o) { return o !== null && (typeof o === 'object' || typeof o === 'function') && #listeners in o; }
  static map(o) { return o.#listeners; }
}
const hasTargetState = EventTargetState.has;
const listenerMap = EventTargetState.map;

function targetOf(thisArg, what) {
  // A method called with no receiver on the global scope targets the global (as in workers).
  const t = thisArg ?? globalThis;
  if (!hasTargetState(t)) throw webidl.illegalInvocation(`EventTarget.${what}`);
  return t;
}

class EventTarget {
  constructor() {
    new EventTargetState(this);
  }

  addEventListener(type, callback, options = undefined) {
    const target = targetOf(this, 'addEventListener');
    webidl.argCount(arguments, 2, "Failed to execute 'addEventListener' on 'EventTarget'");
    type = webidl.DOMString(type);
    if (callback !== null && callback !== undefined && typeof callback !== 'function' &&
        typeof callback !== 'object') {
      throw new TypeError("Failed to execute 'addEventListener' on 'EventTarget': the listener " +
        'is not an object or function');
    }
    // "flatten more": dictionary members are read in order (capture, once, passive, signal),
    // before the null-listener check, as the IDL conversion happens first.
    const isDict = options !== null && (typeof options === 'object' || typeof options === 'function');
    const capture = flattenOptions(options).capture;
    const once = isDict ? !!options.once : false;
    const passiveValue = isDict ? options.passive : undefined;
    let passive = passiveValue !== undefined ? !!passiveValue : null;
    const signal = isDict ? options.signal : undefined;
    if (signal !== undefined && !internal.isAbortSignal(signal)) {
      throw new TypeError("Failed to execute 'addEventListener' on 'EventTarget': options.signal " +
        'is not an AbortSignal');
    }
    if (callback === null || callback === undefined) return;
    if (signal !== undefined && signal.aborted) return;
    if (passive === null) passive = false;
    const map = listenerMap(target);
    const list = map[type] ??= [];
    for (let i = 0; i < list.length; i++) {
      if (list[i].callback === callback && list[i].capture === capture) return;
    }
    const l = { callback, capture, once, passive, removed: false };
    ArrayPrototypePush(list, l);
    if (signal !== undefined) {
      internal.addAbortAlgorithm(signal, () => removeListener(list, l));
    }
  }

  removeEventListener(type, callback, options = undefined) {
    const target = targetOf(this, 'removeEventListener');
    webidl.argCount(arguments, 2, "Failed to execute 'removeEventListener' on 'EventTarget'");
    type = webidl.DOMString(type);
    const capture = flattenOptions(options).capture;
    const list = listenerMap(target)[type];
    if (list === undefined) return;
    for (let i = 0; i < list.length; i++) {
      if (list[i].callback === callback && list[i].capture === capture) {
        removeListener(list, list[i]);
        return;
      }
    }
  }

  dispatchEvent(event) {
    const target = targetOf(this, 'dispatchEvent');
    webidl.argCount(arguments, 1, "Failed to execute 'dispatchEvent' on 'EventTarget'");
    if (!isEvent(event)) {
      throw new TypeError("Failed to execute 'dispatchEvent' on 'EventTarget': parameter 1 is " +
        "not of type 'Event'");
    }
    return eventDispatch(event, target, (t, type) => listenerMap(t)[type]);
  }
}
webidl.configureInterface(EventTarget, 'EventTarget');

// Dispatches event at target from the runtime (no argument checks).
const dispatchEvent = (target, event) =>
  eventDispatch(event, target, (t, type) => listenerMap(t)[type]);
// For events a task fires (a message arriving, a file read finishing, a timeout): microtasks
// run after each listener.
const dispatchEventFromTask = (target, event) =>
  eventDispatch(event, target, (t, type) => listenerMap(t)[type], true);
const hasListeners = (target, type) => (listenerMap(target)[type]?.length ?? 0) > 0;
// An event the runtime creates: isTrusted is true.
const trustedEvent = (Ctor, type, init) => new Ctor(type, init, kTrusted);

class CustomEvent extends Event {
  #detail;
  constructor(type, eventInitDict = undefined) {
    if (arguments.length === 0) {
      throw new TypeError("Failed to construct 'CustomEvent': 1 argument required, but only 0 present.");
    }
    const init = webidl.dictionary(eventInitDict, "Failed to construct 'CustomEvent'");
    super(type, init);
    this.#detail = init.detail === undefined ? null : init.detail;
  }
  get detail() {
    if (!(this !== null && typeof this === 'object' && #detail in this)) {
      throw webidl.illegalInvocation('CustomEvent.detail');
    }
    return this.#detail;
  }
  initCustomEvent(type, bubbles = false, cancelable = false, detail = null) {
    webidl.argCount(arguments, 1, "Failed to execute 'initCustomEvent' on 'CustomEvent'");
    this.initEvent(type, bubbles, cancelable);
    this.#detail = detail;
  }
}
webidl.configureInterface(CustomEvent, 'CustomEvent');

class ErrorEvent extends Event {
  #message; #filename; #lineno; #colno; #error;
  constructor(type, eventInitDict = undefined, trusted = undefined) {
    if (arguments.length === 0) {
      throw new TypeError("Failed to construct 'ErrorEvent': 1 argument required, but only 0 present.");
    }
    const init = webidl.dictionary(eventInitDict, "Failed to construct 'ErrorEvent'");
    super(type, init, trusted);
    this.#message = init.message === undefined ? '' : webidl.DOMString(init.message);
    this.#filename = init.filename === undefined ? '' : webidl.USVString(init.filename);
    this.#lineno = init.lineno === undefined ? 0 : webidl.unsignedLong(init.lineno);
    this.#colno = init.colno === undefined ? 0 : webidl.unsignedLong(init.colno);
    this.#error = init.error;
  }
  static #check(e, what) {
    if (e === null || typeof e !== 'object' || !(#message in e)) throw webidl.illegalInvocation(`ErrorEvent.${what}`);
  }
  get message() { ErrorEvent.#check(this, 'message'); return this.#message; }
  get filename() { ErrorEvent.#check(this, 'filename'); return this.#filename; }
  get lineno() { ErrorEvent.#check(this, 'lineno'); return this.#lineno; }
  get colno() { ErrorEvent.#check(this, 'colno'); return this.#colno; }
  get error() { ErrorEvent.#check(this, 'error'); return this.#error; }
}
webidl.configureInterface(ErrorEvent, 'ErrorEvent');

class PromiseRejectionEvent extends Event {
  #promise; #reason;
  constructor(type, eventInitDict, trusted = undefined) {
    webidl.argCount(arguments, 2, "Failed to construct 'PromiseRejectionEvent'");
    const init = webidl.dictionary(eventInitDict, "Failed to construct 'PromiseRejectionEvent'");
    if (!('promise' in init) || init.promise === undefined) {
      throw new TypeError("Failed to construct 'PromiseRejectionEvent': required member promise " +
        'is undefined.');
    }
    if (init.promise === null || (typeof init.promise !== 'object' && typeof init.promise !== 'function')) {
      throw new TypeError("Failed to construct 'PromiseRejectionEvent': member promise is not an object.");
    }
    super(type, init, trusted);
    this.#promise = init.promise;
    this.#reason = init.reason;
  }
  get promise() {
    if (!(this !== null && typeof this === 'object' && #promise in this)) throw webidl.illegalInvocation('PromiseRejectionEvent.promise');
    return this.#promise;
  }
  get reason() {
    if (!(this !== null && typeof this === 'object' && #promise in this)) throw webidl.illegalInvocation('PromiseRejectionEvent.reason');
    return this.#reason;
  }
}
webidl.configureInterface(PromiseRejectionEvent, 'PromiseRejectionEvent');

// HTML §8.1.8.1 event handler IDL attributes: `on<type>` on proto. The first non-null value
// set registers one listener (in that order among the others); the listener calls whatever
// handler is current. `onerror` on the global gets the special argument list and return value.
const handlerState = new WeakMap();
function defineEventHandler(proto, type, isGlobal = false) {
  const name = `on${type}`;
  ObjectDefineProperty(proto, name, {
    get() {
      const t = this ?? globalThis;
      return handlerState.get(t)?.[name]?.value ?? null;
    },
    set(value) {
      const t = this ?? globalThis;
      if (!hasTargetState(t)) throw webidl.illegalInvocation(name);
      let slots = handlerState.get(t);
      if (slots === undefined) handlerState.set(t, slots = { __proto__: null });
      const fn = typeof value === 'function' || (value !== null && typeof value === 'object') ? value : null;
      if (fn === null) {
        const slot = slots[name];
        if (slot !== undefined) {
          slot.value = null;
          t.removeEventListener(type, slot.listener);
          slots[name] = undefined;
        }
        return;
      }
      const slot = slots[name];
      if (slot !== undefined) {
        slot.value = fn;
        return;
      }
      const newSlot = { value: fn, listener: null };
      newSlot.listener = (event) => callHandler(t, newSlot, event, isGlobal && type === 'error');
      slots[name] = newSlot;
      EventTarget.prototype.addEventListener.call(t, type, newSlot.listener);
    },
    enumerable: true,
    configurable: true,
  });
}

function callHandler(target, slot, event, isErrorHandler) {
  const fn = slot.value;
  if (typeof fn !== 'function') return;
  let ret;
  if (isErrorHandler && event instanceof ErrorEvent) {
    ret = FunctionPrototypeCall(fn, target, event.message, event.filename, event.lineno,
      event.colno, event.error);
    if (ret === true) event.preventDefault();
    return;
  }
  ret = FunctionPrototypeCall(fn, target, event);
  if (ret === false) event.preventDefault();
}

// The global scope is an EventTarget (WorkerGlobalScope inherits from it).
new EventTargetState(globalThis);
ObjectSetPrototypeOf(globalThis, EventTarget.prototype);
defineEventHandler(globalThis, 'error', true);
defineEventHandler(globalThis, 'unhandledrejection', true);
defineEventHandler(globalThis, 'rejectionhandled', true);

// HTML §8.1.4.7 report an exception: an ErrorEvent at the global first; unless a listener
// cancels it, the error is logged with the app's name.
function reportUncaught(err) {
  let message = '';
  try {
    message = err instanceof Error ? String(err.message) : String(err);
  } catch {
    message = 'an exception that cannot be printed';
  }
  const event = trustedEvent(ErrorEvent, 'error', {
    message: `Uncaught ${message}`, error: err, cancelable: true,
  });
  let notCanceled = true;
  try {
    notCanceled = dispatchEvent(globalThis, event);
  } catch {
    // dispatch itself failing leaves the error to be logged
  }
  if (notCanceled) logUncaught(err);
}

// Unhandled rejections (from the runtime's rejection tracker): a cancelable
// `unhandledrejection` event; unless canceled, the log line.
// HTML's "outstanding rejected promises weak set": those reported, for `rejectionhandled`.
const reportedRejections = new WeakSet();
function reportUnhandledRejection(promise, reason) {
  reportedRejections.add(promise);
  const event = trustedEvent(PromiseRejectionEvent, 'unhandledrejection', {
    promise, reason, cancelable: true,
  });
  return dispatchEvent(globalThis, event);
}
function reportRejectionHandled(promise, reason) {
  if (!reportedRejections.has(promise)) return;
  reportedRejections.delete(promise);
  const event = trustedEvent(PromiseRejectionEvent, 'rejectionhandled', { promise, reason });
  dispatchEvent(globalThis, event);
}

defineGlobal('Event', Event);
defineGlobal('EventTarget', EventTarget);
defineGlobal('CustomEvent', CustomEvent);
defineGlobal('ErrorEvent', ErrorEvent);
defineGlobal('PromiseRejectionEvent', PromiseRejectionEvent);

ObjectAssign(internal, {
  Event, EventTarget, ErrorEvent, PromiseRejectionEvent, kTrustedEvent: kTrusted, isEvent,
  trustedEvent, dispatchEvent, dispatchEventFromTask, hasListeners, defineEventHandler,
  reportUncaught, reportUnhandledRejection, reportRejectionHandled,
});
