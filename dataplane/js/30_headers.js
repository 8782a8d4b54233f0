// 30_headers.js: Headers (Fetch §5.2) over a header list of [lowercased name, value] pairs.
// Guards: "none", "request", "response", "immutable" (the server does not enforce the
// browser-only forbidden header names, as Workers and Deno do not).
'use strict';

const {
  ArrayIsArray, ArrayPrototypeJoin, ArrayPrototypePush, ArrayPrototypeSort, ArrayPrototypeSplice,
  ObjectKeys, ReflectGetOwnPropertyDescriptor, RegExpPrototypeTest, String,
  StringPrototypeCharCodeAt, StringPrototypeToLowerCase, StringPrototypeReplace, Symbol,
  SymbolIterator, SymbolToStringTag, TypeError, ArrayIteratorPrototype, ObjectGetPrototypeOf,
  ObjectSetPrototypeOf, ReflectOwnKeys, FunctionPrototypeCall,
  SafeSet: PrimordialSafeSet, StringPrototypeTrim, StringPrototypeSplit,
} = primordials;

const tokenRe = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const badValueRe = /[\0\r\n]/;
const trimRe = /^[\t\n\r ]+|[\t\n\r ]+$/g;

// WebIDL ByteString: code units above 0xFF are a TypeError.
function toByteString(v, what) {
  const s = String(v);
  for (let i = 0; i < s.length; i++) {
    if (StringPrototypeCharCodeAt(s, i) > 0xff) {
      throw new TypeError(`${what} "${s}" contains a character outside Latin-1 (index ${i})`);
    }
  }
  return s;
}
internal.toByteString = toByteString;

function checkName(name) {
  name = toByteString(name, 'Header name');
  if (!RegExpPrototypeTest(tokenRe, name)) {
    throw new TypeError(`Invalid header name "${name}": it must be an HTTP token`);
  }
  return StringPrototypeToLowerCase(name);
}

function checkValue(value, name) {
  value = StringPrototypeReplace(toByteString(value, 'Header value'), trimRe, '');
  if (RegExpPrototypeTest(badValueRe, value)) {
    throw new TypeError(`Invalid value for header "${name}": NUL, CR and LF are not allowed`);
  }
  return value;
}

const kGuardNone = 0, kGuardRequest = 1, kGuardResponse = 2, kGuardImmutable = 3,
  kGuardRequestNoCors = 4;

// Fetch §2.2.2: the headers a "no-cors" request may carry, and their value rules.
const noCorsNames = new PrimordialSafeSet(['accept', 'accept-language', 'content-language', 'content-type']);
const corsUnsafeByte = /[\x00-\x08\x0a-\x1f"():<>?@[\\\]{}\x7f]/;
const safelistedContentTypes = new PrimordialSafeSet(['application/x-www-form-urlencoded',
  'multipart/form-data', 'text/plain']);
function isCorsSafelisted(name, value) {
  if (value.length > 128) return false;
  switch (name) {
    case 'accept':
      return RegExpPrototypeTest(corsUnsafeByte, value) === false;
    case 'accept-language':
    case 'content-language':
      return RegExpPrototypeTest(/^[0-9A-Za-z *,\-.;=]*$/, value);
    case 'content-type': {
      if (RegExpPrototypeTest(corsUnsafeByte, value)) return false;
      const essence = StringPrototypeToLowerCase(StringPrototypeTrim(StringPrototypeSplit(value, ';')[0]));
      return safelistedContentTypes.has(essence);
    }
    default:
      return false;
  }
}
let headerList, setGuard, headersFromList;

class Headers {
  #list = [];
  #guard = kGuardNone;
  #sorted = null; // "sort and combine" result, cached until the next change

  constructor(init = undefined) {
    if (init !== undefined) fillHeaders(this, init);
  }

  #mutable() {
    if (this.#guard === kGuardImmutable) throw new TypeError('Headers are immutable');
    this.#sorted = null;
  }

  append(name, value) {
    if (arguments.length < 2) throw new TypeError('Headers.append: 2 arguments required');
    name = checkName(name);
    value = checkValue(value, name);
    this.#mutable();
    if (this.#guard === kGuardRequestNoCors) {
      const existing = this.get(name);
      if (!noCorsNames.has(name) || !isCorsSafelisted(name, existing === null ? value : `${existing}, ${value}`)) return;
    }
    ArrayPrototypePush(this.#list, [name, value]);
  }

  delete(name) {
    name = checkName(name);
    this.#mutable();
    if (this.#guard === kGuardRequestNoCors && !noCorsNames.has(name)) return;
    const list = this.#list;
    for (let i = list.length - 1; i >= 0; i--) {
      if (list[i][0] === name) ArrayPrototypeSplice(list, i, 1);
    }
  }

  get(name) {
    name = checkName(name);
    let out = null;
    for (const [n, v] of new ListIterator(this.#list)) {
      if (n === name) out = out === null ? v : out + ', ' + v;
    }
    return out;
  }

  getSetCookie() {
    const out = [];
    for (const [n, v] of new ListIterator(this.#list)) {
      if (n === 'set-cookie') ArrayPrototypePush(out, v);
    }
    return out;
  }

  has(name) {
    name = checkName(name);
    for (const entry of new ListIterator(this.#list)) if (entry[0] === name) return true;
    return false;
  }

  set(name, value) {
    if (arguments.length < 2) throw new TypeError('Headers.set: 2 arguments required');
    name = checkName(name);
    value = checkValue(value, name);
    this.#mutable();
    if (this.#guard === kGuardRequestNoCors && (!noCorsNames.has(name) || !isCorsSafelisted(name, value))) return;
    const list = this.#list;
    let found = false;
    for (let i = 0; i < list.length; i++) {
      if (list[i][0] !== name) continue;
      if (!found) {
        list[i] = [name, value];
        found = true;
      } else {
        ArrayPrototypeSplice(list, i--, 1);
      }
    }
    if (!found) ArrayPrototypePush(list, [name, value]);
  }

  forEach(callback, thisArg = undefined) {
    if (typeof callback !== 'function') {
      throw new TypeError('Headers.forEach: the callback must be a function');
    }
    // WebIDL iterable: re-read the pairs at each step, so changes made by the callback show.
    for (let i = 0; i < this.#pairs().length; i++) {
      const [name, value] = this.#pairs()[i];
      FunctionPrototypeCall(callback, thisArg, value, name, this);
    }
  }

  // Fetch: "sort and combine", with Set-Cookie values kept apart.
  #pairs() {
    if (this.#sorted !== null) return this.#sorted;
    const names = [];
    const seen = new PrimordialSafeSet();
    for (const [n] of new ListIterator(this.#list)) {
      if (!seen.has(n)) {
        seen.add(n);
        ArrayPrototypePush(names, n);
      }
    }
    ArrayPrototypeSort(names, (a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const out = [];
    for (const name of new ListIterator(names)) {
      if (name === 'set-cookie') {
        for (const [n, v] of new ListIterator(this.#list)) {
          if (n === name) ArrayPrototypePush(out, [name, v]);
        }
      } else {
        ArrayPrototypePush(out, [name, this.get(name)]);
      }
    }
    this.#sorted = out;
    return out;
  }

  entries() { return new HeadersIterator(this, 'entries'); }
  keys() { return new HeadersIterator(this, 'keys'); }
  values() { return new HeadersIterator(this, 'values'); }

  static {
    headerList = (h) => h.#list;
    setGuard = (h, guard) => { h.#guard = guard; };
    headersFromList = (list, guard) => {
      const h = new Headers();
      h.#list = list;
      h.#guard = guard;
      return h;
    };
    internal.headersPairs = (h) => h.#pairs();
    // A default the runtime itself adds (a body's Content-Type): name lowercase, value
    // valid already, so none of append's checks; added only when the name is absent.
    internal.headersAddDefault = (h, name, value) => {
      const list = h.#list;
      for (let i = 0; i < list.length; i++) if (list[i][0] === name) return;
      h.#sorted = null;
      ArrayPrototypePush(list, [name, value]);
    };
    internal.isHeaders = (v) => v !== null && typeof v === 'object' && #list in v;
  }
}

Headers.prototype[SymbolIterator] = Headers.prototype.entries;
Reflect.defineProperty(Headers.prototype, SymbolIterator, { enumerable: false });
Reflect.defineProperty(Headers.prototype, SymbolToStringTag, { value: 'Headers', configurable: true });
Headers.prototype[internal.kInspect] = function (fmt) {
  const parts = [];
  for (const [n, v] of new ListIterator(internal.headersPairs(this))) {
    ArrayPrototypePush(parts, `${fmt(n)}: ${fmt(v)}`);
  }
  return parts.length ? `Headers { ${ArrayPrototypeJoin(parts, ', ')} }` : 'Headers {}';
};
Reflect.defineProperty(Headers.prototype, internal.kInspect, { enumerable: false });

// Iterates an internal array without touching Array.prototype[Symbol.iterator].
class ListIterator {
  #list;
  #i = 0;
  constructor(list) { this.#list = list; }
  [SymbolIterator]() { return this; }
  next() {
    return this.#i < this.#list.length
      ? { value: this.#list[this.#i++], done: false } : { value: undefined, done: true };
  }
}
internal.ListIterator = ListIterator;

const IteratorPrototype = ObjectGetPrototypeOf(ArrayIteratorPrototype);
class HeadersIterator {
  #headers;
  #kind;
  #index = 0;
  constructor(headers, kind) {
    this.#headers = headers;
    this.#kind = kind;
  }
  next() {
    if (this.#headers === undefined || !(#kind in this)) {
      throw new TypeError('next called on an object that is not a Headers iterator');
    }
    const pairs = internal.headersPairs(this.#headers);
    if (this.#index >= pairs.length) return { value: undefined, done: true };
    const [name, value] = pairs[this.#index++];
    const v = this.#kind === 'keys' ? name : this.#kind === 'values' ? value : [name, value];
    return { value: v, done: false };
  }
}
ObjectSetPrototypeOf(HeadersIterator.prototype, IteratorPrototype);
Reflect.defineProperty(HeadersIterator.prototype, 'next', { enumerable: true });
Reflect.defineProperty(HeadersIterator.prototype, SymbolToStringTag,
  { value: 'Headers Iterator', configurable: true });

function fillHeaders(headers, init) {
  if (init === null || (typeof init !== 'object' && typeof init !== 'function')) {
    throw new TypeError('Headers init must be an object, an array of pairs or a Headers');
  }
  const method = init[SymbolIterator];
  if (method !== undefined && method !== null) {
    if (typeof method !== 'function') throw new TypeError('Headers init is not iterable');
    for (const pair of { [SymbolIterator]: () => FunctionPrototypeCall(method, init) }) {
      if (pair === null || typeof pair !== 'object') {
        throw new TypeError('Each header pair must be an iterable [name, value]');
      }
      const items = [];
      for (const item of pair) ArrayPrototypePush(items, item);
      if (items.length !== 2) {
        throw new TypeError(`Each header pair must have exactly 2 items, got ${items.length}`);
      }
      headers.append(items[0], items[1]);
    }
    return;
  }
  // record<ByteString, ByteString>: own enumerable string keys, in order.
  for (const key of ReflectOwnKeys(init)) {
    const desc = ReflectGetOwnPropertyDescriptor(init, key);
    if (desc === undefined || !desc.enumerable) continue;
    if (typeof key === 'symbol') throw new TypeError('Header names cannot be symbols');
    // WebIDL record<ByteString, ByteString>: the key converts (and may throw) before the
    // value is read.
    const name = toByteString(key, 'Header name');
    headers.append(name, init[key]);
  }
}

internal.Headers = Headers;
internal.headerList = headerList;
internal.setHeadersGuard = setGuard;
internal.headersFromList = headersFromList;
internal.fillHeaders = fillHeaders;
internal.kGuardNone = kGuardNone;
internal.kGuardRequest = kGuardRequest;
internal.kGuardResponse = kGuardResponse;
internal.kGuardImmutable = kGuardImmutable;
internal.kGuardRequestNoCors = kGuardRequestNoCors;
internal.webidl.configureInterface(Headers);
Reflect.defineProperty(Headers.prototype, SymbolIterator, { enumerable: false });
internal.defineGlobal('Headers', Headers);
