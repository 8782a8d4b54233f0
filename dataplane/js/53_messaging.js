// 53_messaging.js: MessageEvent, MessageChannel and MessagePort (HTML §9.4), and
// BroadcastChannel (HTML §9.5) within one isolate. Messages are structured clones, delivered
// as tasks; a port's queue is held until start() (or setting onmessage).
'use strict';

const {
  ArrayIsArray, ArrayPrototypePush, ArrayPrototypeShift, ObjectFreeze, SafeMap, SafeSet,
  TypeError, SymbolIterator, ReflectApply, ObjectAssign,
} = primordials;
const {
  webidl, Event, EventTarget, DOMException, defineGlobal, defineEventHandler, dispatchEvent,
  dispatchEventFromTask, trustedEvent, setTimeout, cloneWithTransfer, URL,
} = internal;
// Late (read as internal.x when called): baseURL (set per context).

class MessageEvent extends Event {
  #data; #origin; #lastEventId; #source; #ports;

  constructor(type, eventInitDict = undefined, trusted = undefined) {
    webidl.argCount(arguments, 1, "Failed to construct 'MessageEvent'");
    const init = webidl.dictionary(eventInitDict, "Failed to construct 'MessageEvent'");
    super(type, init, trusted);
    this.#data = init.data === undefined ? null : init.data;
    this.#origin = init.origin === undefined ? '' : webidl.USVString(init.origin);
    this.#lastEventId = init.lastEventId === undefined ? '' : webidl.DOMString(init.lastEventId);
    const source = init.source === undefined ? null : init.source;
    if (source !== null && !isMessagePort(source)) {
      throw new TypeError("Failed to construct 'MessageEvent': source is not a MessagePort");
    }
    this.#source = source;
    this.#ports = ObjectFreeze(toPortList(init.ports, "Failed to construct 'MessageEvent'"));
  }

  static #check(e, what) {
    if (e === null || typeof e !== 'object' || !(#data in e)) throw webidl.illegalInvocation(`MessageEvent.${what}`);
  }

  get data() { MessageEvent.#check(this, 'data'); return this.#data; }
  get origin() { MessageEvent.#check(this, 'origin'); return this.#origin; }
  get lastEventId() { MessageEvent.#check(this, 'lastEventId'); return this.#lastEventId; }
  get source() { MessageEvent.#check(this, 'source'); return this.#source; }
  get ports() { MessageEvent.#check(this, 'ports'); return this.#ports; }

  initMessageEvent(type, bubbles = false, cancelable = false, data = null, origin = '',
    lastEventId = '', source = null, ports = []) {
    MessageEvent.#check(this, 'initMessageEvent');
    webidl.argCount(arguments, 1, "Failed to execute 'initMessageEvent' on 'MessageEvent'");
    this.initEvent(type, bubbles, cancelable);
    this.#data = data;
    this.#origin = webidl.USVString(origin);
    this.#lastEventId = webidl.DOMString(lastEventId);
    this.#source = source;
    this.#ports = ObjectFreeze(toPortList(ports, "Failed to execute 'initMessageEvent'"));
  }
}
webidl.configureInterface(MessageEvent);

function toPortList(ports, context) {
  if (ports === undefined) return [];
  return webidl.iterable(ports, (p) => {
    if (!isMessagePort(p)) throw new TypeError(`${context}: an item of ports is not a MessagePort`);
    return p;
  }, `${context}: ports`);
}

// The transfer list of postMessage(message, transfer) or postMessage(message, { transfer }).
function transferList(arg, context) {
  if (arg === undefined) return [];
  if (arg !== null && typeof arg === 'object' && !ArrayIsArray(arg) &&
      typeof arg[SymbolIterator] !== 'function') {
    if (arg.transfer === undefined) return [];
    return webidl.iterable(arg.transfer, (item) => item, `${context}: transfer`);
  }
  return webidl.iterable(arg, (item) => item, `${context}: transfer`);
}

// Clones message with its transfer list: ArrayBuffers move, MessagePorts are re-created (the
// old object is neutered) and delivered in event.ports.
function cloneMessage(message, transfer, self, context) {
  const buffers = [];
  const ports = [];
  const seen = new SafeSet();
  for (let i = 0; i < transfer.length; i++) {
    const item = transfer[i];
    if (seen.has(item)) throw new DOMException(`${context}: an object is listed twice in the transfer list`, 'DataCloneError');
    seen.add(item);
    if (isMessagePort(item)) {
      if (item === self) throw new DOMException(`${context}: a port cannot transfer itself`, 'DataCloneError');
      ArrayPrototypePush(ports, item);
    } else {
      ArrayPrototypePush(buffers, item);
    }
  }
  const data = cloneWithTransfer(message, buffers);
  const moved = [];
  for (let i = 0; i < ports.length; i++) ArrayPrototypePush(moved, transferOut(ports[i]));
  return [data, moved];
}

class MessagePort extends EventTarget {
  #entangled = null;
  #enabled = false;
  #closed = false;
  #queue = [];
  #scheduled = false;
  #detached = false; // transferred away: this object is dead

  constructor(key = undefined) {
    webidl.illegalConstructor(key, 'MessagePort');
    super();
  }

  static #check(p, what) {
    if (p === null || typeof p !== 'object' || !(#queue in p)) throw webidl.illegalInvocation(`MessagePort.${what}`);
  }

  postMessage(message, transfer = undefined) {
    MessagePort.#check(this, 'postMessage');
    webidl.argCount(arguments, 1, "Failed to execute 'postMessage' on 'MessagePort'");
    const context = "Failed to execute 'postMessage' on 'MessagePort'";
    const list = transferList(transfer, context);
    const target = this.#entangled;
    const cloned = cloneMessage(message, list, this, context);
    const data = cloned[0];
    const ports = cloned[1];
    if (target === null || this.#closed) return; // spec: cloned, then silently dropped
    ArrayPrototypePush(target.#queue, { data, ports });
    target.#schedule();
  }

  start() {
    MessagePort.#check(this, 'start');
    this.#enabled = true;
    this.#schedule();
  }

  close() {
    MessagePort.#check(this, 'close');
    this.#closed = true;
    this.#detached = true; // HTML: close() detaches the port; it can no longer be transferred
    const other = this.#entangled;
    this.#entangled = null;
    if (other !== null) {
      other.#entangled = null;
      // The other side learns it was closed.
      setTimeout(() => dispatchEvent(other, trustedEvent(Event, 'close')), 0);
    }
  }

  #schedule() {
    if (!this.#enabled || this.#scheduled || this.#queue.length === 0) return;
    this.#scheduled = true;
    setTimeout(() => this.#deliver(), 0);
  }

  // One message per task, as the port message queue is a task source.
  #deliver() {
    this.#scheduled = false;
    if (this.#queue.length === 0) return;
    const { data, ports } = ArrayPrototypeShift(this.#queue);
    const event = trustedEvent(MessageEvent, 'message', { data, ports });
    dispatchEventFromTask(this, event);
    this.#schedule();
  }

  static entangle(a, b) {
    a.#entangled = b;
    b.#entangled = a;
  }

  // Transfer: a new port takes over the old one's partner and queue.
  static transferOut(port) {
    if (port.#detached) throw new DOMException('The MessagePort was already transferred', 'DataCloneError');
    const fresh = new MessagePort(webidl.kIllegalConstructor);
    const partner = port.#entangled;
    fresh.#queue = port.#queue;
    port.#queue = [];
    port.#entangled = null;
    port.#closed = true;
    port.#detached = true;
    if (partner !== null) entangle(fresh, partner);
    return fresh;
  }

  static isPort(v) { return v !== null && typeof v === 'object' && #queue in v; }
}
const isMessagePort = MessagePort.isPort;
const entangle = MessagePort.entangle;
delete MessagePort.isPort;
delete MessagePort.entangle;
const transferOut = MessagePort.transferOut;
delete MessagePort.transferOut;

defineEventHandler(MessagePort.prototype, 'message');
defineEventHandler(MessagePort.prototype, 'messageerror');
defineEventHandler(MessagePort.prototype, 'close');
// Setting onmessage starts the port (HTML: the onmessage setter enables the port message queue).
{
  const desc = Reflect.getOwnPropertyDescriptor(MessagePort.prototype, 'onmessage');
  const set = desc.set;
  desc.set = function (value) {
    ReflectApply(set, this, [value]);
    if (value !== null && value !== undefined) this.start();
  };
  Reflect.defineProperty(MessagePort.prototype, 'onmessage', desc);
}
webidl.configureInterface(MessagePort);

class MessageChannel {
  #port1 = new MessagePort(webidl.kIllegalConstructor);
  #port2 = new MessagePort(webidl.kIllegalConstructor);
  constructor() {
    entangle(this.#port1, this.#port2);
  }
  get port1() {
    if (!(this !== null && typeof this === 'object' && #port1 in this)) throw webidl.illegalInvocation('MessageChannel.port1');
    return this.#port1;
  }
  get port2() {
    if (!(this !== null && typeof this === 'object' && #port1 in this)) throw webidl.illegalInvocation('MessageChannel.port2');
    return this.#port2;
  }
}
webidl.configureInterface(MessageChannel);

// BroadcastChannel: every open channel of the same name in this isolate, except the sender.
const channels = new SafeMap(); // name -> Set of BroadcastChannel
class BroadcastChannel extends EventTarget {
  #name;
  #closed = false;

  constructor(name) {
    webidl.argCount(arguments, 1, "Failed to construct 'BroadcastChannel'");
    super();
    this.#name = webidl.DOMString(name);
    let set = channels.get(this.#name);
    if (set === undefined) channels.set(this.#name, set = new SafeSet());
    set.add(this);
  }

  get name() {
    if (!(this !== null && typeof this === 'object' && #name in this)) throw webidl.illegalInvocation('BroadcastChannel.name');
    return this.#name;
  }

  postMessage(message) {
    if (!(this !== null && typeof this === 'object' && #name in this)) throw webidl.illegalInvocation('BroadcastChannel.postMessage');
    webidl.argCount(arguments, 1, "Failed to execute 'postMessage' on 'BroadcastChannel'");
    if (this.#closed) throw new DOMException('The BroadcastChannel is closed', 'InvalidStateError');
    const data = cloneWithTransfer(message, []);
    const members = channels.get(this.#name);
    if (members === undefined) return;
    members.forEach((other) => { // forEach: the set iterator is the app's to replace
      if (other === this) return;
      setTimeout(() => {
        if (other.#closed) return;
        dispatchEventFromTask(other, trustedEvent(MessageEvent, 'message',
          { data: cloneWithTransfer(data, []), origin: internal.baseURL ? new URL(internal.baseURL).origin : '' }));
      }, 0);
    });
  }

  close() {
    if (!(this !== null && typeof this === 'object' && #name in this)) throw webidl.illegalInvocation('BroadcastChannel.close');
    this.#closed = true;
    channels.get(this.#name)?.delete(this);
  }
}
defineEventHandler(BroadcastChannel.prototype, 'message');
defineEventHandler(BroadcastChannel.prototype, 'messageerror');
webidl.configureInterface(BroadcastChannel);

defineGlobal('MessageEvent', MessageEvent);
defineGlobal('MessagePort', MessagePort);
defineGlobal('MessageChannel', MessageChannel);
defineGlobal('BroadcastChannel', BroadcastChannel);

ObjectAssign(internal, { MessageEvent, isMessagePort });
