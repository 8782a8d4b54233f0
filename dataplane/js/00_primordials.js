// 00_primordials.js: captures the intrinsics the built-ins use, before any app code runs, so
// an app that patches Array.prototype or Promise.prototype.then cannot break them
// (the idea of deno_core's 00_primordials.js). Each built-in file is a function of
// (binding, primordials, internal); this one fills `primordials`.
'use strict';

const uncurryThis = (fn) => Function.prototype.call.bind(fn);

function copyStatics(prefix, source) {
  for (const key of Reflect.ownKeys(source)) {
    if (typeof key !== 'string') continue;
    const desc = Reflect.getOwnPropertyDescriptor(source, key);
    if ('value' in desc) primordials[prefix + key[0].toUpperCase() + key.slice(1)] = desc.value;
  }
}

function copyPrototype(prefix, proto) {
  for (const key of Reflect.ownKeys(proto)) {
    if (typeof key !== 'string' || key === 'constructor') continue;
    const desc = Reflect.getOwnPropertyDescriptor(proto, key);
    const name = prefix + 'Prototype' + key[0].toUpperCase() + key.slice(1);
    if (typeof desc.value === 'function') primordials[name] = uncurryThis(desc.value);
    else if (desc.get) primordials[prefix + 'PrototypeGet' + key[0].toUpperCase() + key.slice(1)] = uncurryThis(desc.get);
  }
}

const globals = {
  Array, ArrayBuffer, BigInt, Boolean, DataView, Date, Error, EvalError, Function, JSON, Map,
  Math, Number, Object, Promise, RangeError, ReferenceError, Reflect, RegExp, Set, String,
  Symbol, SyntaxError, TypeError, URIError, Uint8Array, Int8Array, Uint16Array, Int16Array,
  Uint32Array, Int32Array, Float32Array, Float64Array, BigInt64Array, BigUint64Array,
  Uint8ClampedArray, WeakMap, WeakSet, WeakRef, FinalizationRegistry, AggregateError,
};
for (const name of Object.keys(globals)) {
  const ctor = globals[name];
  primordials[name] = ctor;
  copyStatics(name, ctor);
  if (ctor.prototype) copyPrototype(name, ctor.prototype);
}

// TypedArray's shared prototype (%TypedArray%.prototype) and its constructor.
const TypedArray = Reflect.getPrototypeOf(Uint8Array);
primordials.TypedArray = TypedArray;
copyPrototype('TypedArray', TypedArray.prototype);
primordials.TypedArrayPrototypeGetSymbolToStringTag = uncurryThis(
  Reflect.getOwnPropertyDescriptor(TypedArray.prototype, Symbol.toStringTag).get);

primordials.uncurryThis = uncurryThis;
primordials.ArrayIteratorPrototype = Reflect.getPrototypeOf([][Symbol.iterator]());
// %Array.prototype.values% itself (not uncurried): what an array's @@iterator is until patched.
primordials.ArrayIteratorMethod = Array.prototype[Symbol.iterator];
primordials.AsyncIteratorPrototype = Reflect.getPrototypeOf(
  Reflect.getPrototypeOf(async function* () {}).prototype);
primordials.globalThis = globalThis;

// Promise helpers that never look up `then` on a possibly patched prototype.
const promiseThen = uncurryThis(Promise.prototype.then);
primordials.PromisePrototypeThen = promiseThen;
primordials.PromiseResolve = (v) => Reflect.apply(Promise.resolve, Promise, [v]);
primordials.PromiseReject = (e) => Reflect.apply(Promise.reject, Promise, [e]);
primordials.SafePromiseThen = (p, onFulfilled, onRejected) => promiseThen(p, onFulfilled, onRejected);

// Map and Set whose methods are own copies, so patching Map.prototype cannot reach them.
function makeSafe(unsafe, safe) {
  for (const key of Reflect.ownKeys(unsafe.prototype)) {
    if (key === 'constructor') continue;
    Reflect.defineProperty(safe.prototype, key,
      Reflect.getOwnPropertyDescriptor(unsafe.prototype, key));
  }
  Object.freeze(safe.prototype);
  return safe;
}
// Explicit constructors: a derived class's default one spreads its arguments, which goes
// through the array iterator an app may have replaced.
primordials.SafeMap = makeSafe(Map, class SafeMap extends Map {
  constructor(entries) { super(entries); }
});
primordials.SafeSet = makeSafe(Set, class SafeSet extends Set {
  constructor(values) { super(values); }
});

Object.freeze(primordials);

// The built-ins after this one receive this view instead (the loader, snapshot.cc, reads it
// from internal): a misspelt primordial fails the runtime's start with its name, rather than
// being undefined where it is first called.
const checkedPrimordials = new Proxy(primordials, {
  get(target, key) {
    if (typeof key === 'string' && !Reflect.has(target, key)) {
      throw new ReferenceError(`primordials.${key} does not exist`);
    }
    return Reflect.get(target, key);
  },
});

const { ObjectAssign } = primordials;
ObjectAssign(internal, { checkedPrimordials });
