// 11_webidl.js: the WebIDL pieces every Web API here needs (https://webidl.spec.whatwg.org/):
// argument conversions with the spec's TypeErrors, dictionary reading, and the shape of
// interface objects (toStringTag, enumerable members, illegal constructors).
'use strict';

const {
  MathFloor, MathMin, MathMax, MathPow, MathRound, MathTrunc, NumberIsFinite,
  NumberIsNaN, ObjectDefineProperty, ObjectGetOwnPropertyDescriptor, ReflectOwnKeys, String,
  StringPrototypeCharCodeAt, Symbol, SymbolToStringTag, TypeError, ObjectGetOwnPropertyNames,
  ObjectFreeze, RegExpPrototypeExec, StringPrototypeReplace, Error, ObjectGetPrototypeOf, WeakSet,
  BigInt, BigIntAsIntN, BigIntAsUintN, ArrayPrototypePush, ArrayIteratorMethod,
  ArrayIteratorPrototype, FunctionPrototypeCall, ObjectPrototypePropertyIsEnumerable, ObjectGetOwnPropertySymbols,
  SymbolIterator, ObjectAssign,
} = primordials;
const { defineGlobal, formatError, inspect } = internal;

const webidl = {};

webidl.argCount = function argCount(args, required, context) {
  if (args.length < required) {
    throw new TypeError(`${context}: ${required} argument${required === 1 ? '' : 's'} required, ` +
      `but only ${args.length} present.`);
  }
};

webidl.DOMString = function DOMString(v, context = 'Value') {
  if (typeof v === 'symbol') throw new TypeError(`${context}: a Symbol cannot be converted to a string`);
  return String(v);
};

// A lone surrogate: a high one not followed by a low one, or a low one not preceded by a high.
const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const anySurrogate = /[\uD800-\uDFFF]/;
webidl.USVString = function USVString(v, context = 'Value') {
  const s = webidl.DOMString(v, context);
  if (RegExpPrototypeExec(anySurrogate, s) === null) return s; // the common case: no scan
  return StringPrototypeReplace(s, loneSurrogate, '\uFFFD');
};

webidl.ByteString = function ByteString(v, context = 'Value') {
  const s = typeof v === 'string' ? v : webidl.DOMString(v, context);
  for (let i = 0; i < s.length; i++) {
    if (StringPrototypeCharCodeAt(s, i) > 255) {
      throw new TypeError(`${context}: character at index ${i} is above U+00FF, not a ByteString`);
    }
  }
  return s;
};

webidl.boolean = (v) => !!v;

const isObject = (v) => v !== null && (typeof v === 'object' || typeof v === 'function');
const originalArrayIteratorNext = ArrayIteratorPrototype.next;

// ToLength, for reading an array-like's length as %ArrayIteratorPrototype%.next does.
function toLength(v) {
  const n = MathTrunc(+v);
  return n > 0 ? MathMin(n, 2 ** 53 - 1) : 0;
}

// WebIDL "create a sequence from an iterable": method is V's @@iterator (already read, as
// the union conversions that call this need it to choose); each value goes through
// convert(value, index) as it is taken. An array iterated by the original array iterator
// is walked by index instead, which reads "length" before every step and each element once,
// exactly as that iterator would, without creating it or its result objects.
webidl.sequence = function sequence(v, method, convert, context) {
  if (typeof method !== 'function') throw new TypeError(`${context}: the value is not iterable`);
  const out = [];
  if (method === ArrayIteratorMethod && ArrayIteratorPrototype.next === originalArrayIteratorNext) {
    for (let i = 0; i < toLength(v.length); i++) ArrayPrototypePush(out, convert(v[i], i));
    return out;
  }
  const iterator = FunctionPrototypeCall(method, v);
  if (!isObject(iterator)) throw new TypeError(`${context}: the iterator is not an object`);
  const next = iterator.next;
  for (;;) {
    const result = FunctionPrototypeCall(next, iterator);
    if (!isObject(result)) throw new TypeError(`${context}: the iterator result is not an object`);
    if (result.done) return out;
    ArrayPrototypePush(out, convert(result.value, out.length));
  }
};

// A sequence<T> argument or member: v must be an object, and its @@iterator is read here.
webidl.iterable = function iterable(v, convert, context) {
  if (!isObject(v)) throw new TypeError(`${context}: the value is not a sequence (an iterable object)`);
  return webidl.sequence(v, v[SymbolIterator], convert, context);
};

// WebIDL record<K, V> from an object: its own enumerable keys in [[OwnPropertyKeys]]
// order, each key converted by convertKey before its value is read and converted by
// convertValue. Returns [key, value] pairs.
webidl.record = function record(o, convertKey, convertValue, context) {
  if (!isObject(o)) throw new TypeError(`${context}: the value is not an object`);
  const out = [];
  if (binding.isProxy(o)) {
    // Every trap is observable: the spec's steps exactly, one key at a time.
    const keys = ReflectOwnKeys(o);
    for (let i = 0; i < keys.length; i++) recordEntry(o, keys[i], convertKey, convertValue, out);
    return out;
  }
  // An ordinary object's [[OwnPropertyKeys]] are its string keys then its symbols, so the
  // two lists (taken up front, as the spec takes the one) give the same order at a
  // fraction of Reflect.ownKeys's cost.
  const names = ObjectGetOwnPropertyNames(o);
  const symbols = ObjectGetOwnPropertySymbols(o);
  for (let i = 0; i < names.length; i++) recordEntry(o, names[i], convertKey, convertValue, out);
  for (let i = 0; i < symbols.length; i++) recordEntry(o, symbols[i], convertKey, convertValue, out);
  return out;
};

function recordEntry(o, key, convertKey, convertValue, out) {
  // [[GetOwnProperty]] and its [[Enumerable]], without building a descriptor object.
  if (!ObjectPrototypePropertyIsEnumerable(o, key)) return;
  const typedKey = convertKey(key);
  ArrayPrototypePush(out, [typedKey, convertValue(o[key])]);
}

// WebIDL §3.2.4 ConvertToInt for the integer types.
function toInt(v, bits, signed, opts, context) {
  let x = +v;
  const upper = signed ? MathPow(2, bits - 1) - 1 : MathPow(2, bits) - 1;
  const lower = signed ? -MathPow(2, bits - 1) : 0;
  if (opts?.enforceRange) {
    if (NumberIsNaN(x) || !NumberIsFinite(x)) {
      throw new TypeError(`${context}: ${v} is not a finite number`);
    }
    x = MathTrunc(x);
    if (x < lower || x > upper) {
      throw new TypeError(`${context}: ${v} is outside the range ${lower} to ${upper}`);
    }
    return x;
  }
  if (!NumberIsNaN(x) && opts?.clamp) {
    x = MathMin(MathMax(x, lower), upper);
    const f = MathFloor(x);
    return (x - f === 0.5) ? (f % 2 === 0 ? f : f + 1) : MathRound(x) + 0;
  }
  if (NumberIsNaN(x) || x === 0 || !NumberIsFinite(x)) return 0;
  x = MathTrunc(x);
  if (bits === 64) {
    // Doubles cannot do modulo 2^64 exactly: wrap through BigInt.
    const big = BigInt(x);
    return Number(signed ? BigIntAsIntN(64, big) : BigIntAsUintN(64, big));
  }
  const mod = MathPow(2, bits);
  x = ((x % mod) + mod) % mod;
  if (signed && x >= MathPow(2, bits - 1)) x -= mod;
  return x;
}
webidl.long = (v, opts, context = 'Value') => toInt(v, 32, true, opts, context);
webidl.unsignedLong = (v, opts, context = 'Value') => toInt(v, 32, false, opts, context);
webidl.unsignedShort = (v, opts, context = 'Value') => toInt(v, 16, false, opts, context);
webidl.unsignedLongLong = (v, opts, context = 'Value') => toInt(v, 64, false, opts, context);
webidl.longLong = (v, opts, context = 'Value') => toInt(v, 64, true, opts, context);
webidl.octet = (v, opts, context = 'Value') => toInt(v, 8, false, opts, context);

webidl.double = function double(v, context = 'Value') {
  const x = +v;
  if (!NumberIsFinite(x)) throw new TypeError(`${context}: ${v} is not a finite number`);
  return x;
};
webidl.unrestrictedDouble = (v) => +v;

// A dictionary argument: undefined and null are an empty dictionary, other non-objects throw.
webidl.dictionary = function dictionary(v, context = 'Options') {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' && typeof v !== 'function') {
    throw new TypeError(`${context}: expected an object (a dictionary), got ${typeof v}`);
  }
  return v;
};

webidl.callbackFunction = function callbackFunction(v, context) {
  if (typeof v !== 'function') throw new TypeError(`${context}: expected a function`);
  return v;
};

webidl.enumValue = function enumValue(v, values, context) {
  const s = webidl.DOMString(v, context);
  if (!values.includes(s)) {
    throw new TypeError(`${context}: '${s}' is not one of ${values.map((x) => `'${x}'`).join(', ')}`);
  }
  return s;
};

// Brand check failure: a method called on the wrong kind of object.
webidl.illegalInvocation = function illegalInvocation(name) {
  return new TypeError(`Illegal invocation: ${name} called on an object that is not one`);
};

const kIllegal = Symbol('nano.illegalConstructor');
webidl.kIllegalConstructor = kIllegal;
webidl.illegalConstructor = function illegalConstructor(key, name) {
  if (key !== kIllegal) throw new TypeError(`Illegal constructor: ${name} cannot be constructed`);
};

// Gives a class WebIDL's shape: prototype members enumerable (as IDL attributes and
// operations are), Symbol.toStringTag, and constants on both the interface and prototype.
// Prototypes of platform interfaces: structuredClone refuses objects that inherit from one
// (platform objects are not serializable unless their interface says so).
const platformPrototypes = new WeakSet();
webidl.isPlatformObject = function isPlatformObject(v) {
  for (let p = ObjectGetPrototypeOf(v); p !== null; p = ObjectGetPrototypeOf(p)) {
    if (platformPrototypes.has(p)) return true;
  }
  return false;
};

webidl.configureInterface = function configureInterface(cls, name = cls.name, constants) {
  const proto = cls.prototype;
  platformPrototypes.add(proto);
  for (const key of ReflectOwnKeys(proto)) {
    if (key === 'constructor' || typeof key === 'symbol') continue;
    const desc = ObjectGetOwnPropertyDescriptor(proto, key);
    desc.enumerable = true;
    ObjectDefineProperty(proto, key, desc);
  }
  for (const key of ObjectGetOwnPropertyNames(cls)) {
    if (key === 'prototype' || key === 'length' || key === 'name') continue;
    const desc = ObjectGetOwnPropertyDescriptor(cls, key);
    desc.enumerable = true;
    ObjectDefineProperty(cls, key, desc);
  }
  ObjectDefineProperty(proto, SymbolToStringTag, { value: name, configurable: true });
  if (constants) {
    for (const key of ReflectOwnKeys(constants)) {
      const d = { value: constants[key], enumerable: true, writable: false, configurable: false };
      ObjectDefineProperty(cls, key, d);
      ObjectDefineProperty(proto, key, d);
    }
  }
  return cls;
};

ObjectFreeze(webidl);

// The log line for an uncaught error no listener canceled (HTML "report an exception").
function logUncaught(err) {
  let text;
  try {
    text = err instanceof Error ? formatError(err) : inspect(err);
  } catch {
    text = '(an exception that cannot be printed)';
  }
  binding.reportError('Uncaught ' + text);
}

// The global scope of a worker: `self` is the global object.
defineGlobal('self', globalThis);

ObjectAssign(internal, {
  webidl,
  performanceNow: binding.now, // performance.now(): ms since the isolate's time origin (hr-time)
  logUncaught,
});
