// 30_headers.js: Headers (Fetch §5.2) over a header list of [lowercased name, value] pairs.
// Guards: "none", "request", "response", "immutable" (the server does not enforce the
// browser-only forbidden header names, as Workers and Deno do not).
'use strict';

const {
  ArrayPrototypeJoin, ArrayPrototypePush, ArrayPrototypeSort,
  RegExpPrototypeTest, String, StringPrototypeCharCodeAt, StringPrototypeToLowerCase,
  StringPrototypeReplace, Symbol, SymbolIterator, SymbolToStringTag, TypeError,
  ArrayIteratorPrototype, ObjectGetPrototypeOf, ObjectSetPrototypeOf, FunctionPrototypeCall,
  SafeMap, SafeSet: PrimordialSafeSet, StringPrototypeTrim, StringPrototypeSplit, Uint8Array,
  ObjectAssign,
} = primordials;
const { webidl, defineGlobal, kInspect } = internal;

const tokenRe = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const badValueRe = /[\0\r\n]/;
const trimRe = /^[\t\n\r ]+|[\t\n\r ]+$/g;

// WebIDL ByteString: code units above 0xFF are a TypeError.
const toByteString = (v, what) => webidl.ByteString(v, what);

// Header-name code units below 128: 1 = token character, 2 = upper-case letter (a token
// character that lowercases), 0 = not a token character. Above 127 nothing is a token.
const kNameUnit = new Uint8Array(128);
const kTokenChars = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz";
for (let i = 0; i < kTokenChars.length; i++) kNameUnit[StringPrototypeCharCodeAt(kTokenChars, i)] = 1;
for (let c = 0x41; c <= 0x5a; c++) kNameUnit[c] = 2;

// A valid name comes back lowercased. The loop settles the common case (a string of token
// characters) without allocating; anything else takes the full ByteString + token path,
// which also words the error.
function checkName(name) {
  if (typeof name === 'string' && name.length > 0) {
    let upper = false;
    let i = 0;
    for (; i < name.length; i++) {
      const c = StringPrototypeCharCodeAt(name, i);
      const kind = c < 128 ? kNameUnit[c] : 0;
      if (kind === 0) break;
      if (kind === 2) upper = true;
    }
    if (i === name.length) return upper ? StringPrototypeToLowerCase(name) : name;
  }
  return checkNameSlow(name);
}

function checkNameSlow(name) {
  name = toByteString(name, 'Header name');
  if (!RegExpPrototypeTest(tokenRe, name)) {
    throw new TypeError(`Invalid header name "${name}": it must be an HTTP token`);
  }
  return StringPrototypeToLowerCase(name);
}

const isHttpWhitespace = (c) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;

// A value comes back normalized (leading and trailing HTTP whitespace removed). The loop
// settles the common case (Latin-1, no NUL/CR/LF, nothing to trim) without allocating.
function checkValue(value, name) {
  if (typeof value === 'string') {
    const n = value.length;
    if (n === 0) return value;
    if (!isHttpWhitespace(StringPrototypeCharCodeAt(value, 0)) &&
        !isHttpWhitespace(StringPrototypeCharCodeAt(value, n - 1))) {
      let i = 0;
      for (; i < n; i++) {
        const c = StringPrototypeCharCodeAt(value, i);
        if (c > 0xff || c === 0 || c === 0x0a || c === 0x0d) break;
      }
      if (i === n) return value;
    }
  }
  return checkValueSlow(value, name);
}

function checkValueSlow(value, name) {
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
let headerList, setGuard, headersFromList, appendHeader, appendValidHeader, headersPairs;
let headersAddDefault, hasHeader, isHeaders;

// From this many entries on, get() and has() (and set() and delete() of an absent name)
// consult a name index instead of scanning the list. Below it a scan is cheaper than making
// a Map for the few lookups an app does (browsers send 10-25 headers), and n lookups cost at
// most 64n comparisons.
const kIndexFrom = 64;

class Headers {
  #list = [];
  #guard = kGuardNone;
  #sorted = null; // "sort and combine" result, cached until the next change
  // Lowercase name -> its combined value (Fetch "get"), or null until a lookup on a long list
  // or a sort needs it; once built, every change keeps it up to date.
  #index = null;

  constructor(init = undefined) {
    if (init !== undefined) fillHeaders(this, init);
  }

  #mutable() {
    if (this.#guard === kGuardImmutable) throw new TypeError('Headers are immutable');
    this.#sorted = null;
  }

  append(name, value) {
    if (arguments.length < 2) throw new TypeError('Headers.append: 2 arguments required');
    appendHeader(this, name, value);
  }

  #append(name, value) {
    name = checkName(name);
    value = checkValue(value, name);
    this.#mutable();
    if (this.#guard === kGuardRequestNoCors) {
      const existing = this.#combined(name);
      if (!noCorsNames.has(name) || !isCorsSafelisted(name, existing === null ? value : `${existing}, ${value}`)) return;
    }
    this.#push(name, value);
  }

  // Appends a valid pair to the list, and to the index when there is one.
  #push(name, value) {
    ArrayPrototypePush(this.#list, [name, value]);
    const index = this.#index;
    if (index !== null) {
      const old = index.get(name);
      index.set(name, old === undefined ? value : old + ', ' + value);
    }
  }

  delete(name) {
    name = checkName(name);
    this.#mutable();
    if (this.#guard === kGuardRequestNoCors && !noCorsNames.has(name)) return;
    const index = this.#lookup();
    if (index !== null) {
      if (!index.has(name)) return;
      index.delete(name);
    }
    // One pass that keeps the other entries in order.
    const list = this.#list;
    let kept = 0;
    for (let i = 0; i < list.length; i++) {
      if (list[i][0] !== name) list[kept++] = list[i];
    }
    list.length = kept;
  }

  get(name) {
    return this.#combined(checkName(name));
  }

  // The combined value of a (valid, lowercase) name, or null: Fetch's "get".
  #combined(name) {
    const index = this.#lookup();
    if (index !== null) {
      const v = index.get(name);
      return v === undefined ? null : v;
    }
    let out = null;
    const list = this.#list;
    for (let i = 0; i < list.length; i++) {
      if (list[i][0] === name) out = out === null ? list[i][1] : out + ', ' + list[i][1];
    }
    return out;
  }

  // Whether a (valid, lowercase) name is in the list.
  #has(name) {
    const index = this.#lookup();
    if (index !== null) return index.has(name);
    const list = this.#list;
    for (let i = 0; i < list.length; i++) if (list[i][0] === name) return true;
    return false;
  }

  // The name index if there is one, or a new one when the list is long enough; else null.
  #lookup() {
    if (this.#index === null && this.#list.length >= kIndexFrom) this.#buildIndex();
    return this.#index;
  }

  // names, when given, receives each name once, in the order of first appearance.
  #buildIndex(names = undefined) {
    const index = new SafeMap();
    const list = this.#list;
    for (let i = 0; i < list.length; i++) {
      const name = list[i][0];
      const old = index.get(name);
      if (old === undefined) {
        index.set(name, list[i][1]);
        if (names !== undefined) ArrayPrototypePush(names, name);
      } else {
        index.set(name, old + ', ' + list[i][1]);
      }
    }
    this.#index = index;
    return index;
  }

  getSetCookie() {
    const out = [];
    const list = this.#list;
    if (this.#index !== null && !this.#index.has('set-cookie')) return out;
    for (let i = 0; i < list.length; i++) {
      if (list[i][0] === 'set-cookie') ArrayPrototypePush(out, list[i][1]);
    }
    return out;
  }

  has(name) {
    return this.#has(checkName(name));
  }

  set(name, value) {
    if (arguments.length < 2) throw new TypeError('Headers.set: 2 arguments required');
    name = checkName(name);
    value = checkValue(value, name);
    this.#mutable();
    if (this.#guard === kGuardRequestNoCors && (!noCorsNames.has(name) || !isCorsSafelisted(name, value))) return;
    const index = this.#lookup();
    if (index !== null && !index.has(name)) {
      this.#push(name, value);
      return;
    }
    // Fetch "set": the first entry of the name takes the value, the others go; one pass.
    const list = this.#list;
    let found = false;
    let kept = 0;
    for (let i = 0; i < list.length; i++) {
      const entry = list[i];
      if (entry[0] === name) {
        if (found) continue;
        found = true;
        list[kept++] = [name, value];
      } else {
        list[kept++] = entry;
      }
    }
    list.length = kept;
    if (!found) ArrayPrototypePush(list, [name, value]);
    if (index !== null) index.set(name, value);
  }

  forEach(callback, thisArg = undefined) {
    if (typeof callback !== 'function') {
      throw new TypeError('Headers.forEach: the callback must be a function');
    }
    // WebIDL iterable: re-read the pairs at each step, so changes made by the callback show.
    let pairs = this.#pairs();
    for (let i = 0; i < pairs.length; i += 2) {
      FunctionPrototypeCall(callback, thisArg, pairs[i + 1], pairs[i], this);
      pairs = this.#pairs();
    }
  }

  // Fetch: "sort and combine", with Set-Cookie values kept apart, as one flat array (name,
  // value, name, value, ...: no array per pair). O(n log n) from the index (which this builds
  // whatever the list's length), then cached until the next change.
  #pairs() {
    if (this.#sorted !== null) return this.#sorted;
    const list = this.#list;
    const out = [];
    if (list.length === 0) {
      this.#sorted = out;
      return out;
    }
    const names = [];
    let index = this.#index;
    if (index === null) index = this.#buildIndex(names);
    else index.forEach((value, name) => { ArrayPrototypePush(names, name); });
    // Lowercase names are ASCII, so comparing code units is Fetch's byte order.
    ArrayPrototypeSort(names);
    for (let j = 0; j < names.length; j++) {
      const name = names[j];
      if (name === 'set-cookie') {
        for (let i = 0; i < list.length; i++) {
          if (list[i][0] === name) ArrayPrototypePush(out, name, list[i][1]);
        }
      } else {
        ArrayPrototypePush(out, name, index.get(name));
      }
    }
    this.#sorted = out;
    return out;
  }

  entries() { return new HeadersIterator(this, 'entries'); }
  keys() { return new HeadersIterator(this, 'keys'); }
  values() { return new HeadersIterator(this, 'values'); }

  static {
    appendHeader = (h, name, value) => h.#append(name, value);
    appendValidHeader = (h, name, value) => {
      h.#mutable();
      if (h.#guard === kGuardRequestNoCors) h.#append(name, value);
      else h.#push(name, value);
    };
    headerList = (h) => h.#list;
    setGuard = (h, guard) => { h.#guard = guard; };
    headersFromList = (list, guard) => {
      const h = new Headers();
      h.#list = list;
      h.#guard = guard;
      return h;
    };
    headersPairs = (h) => h.#pairs();
    // A default the runtime itself adds (a body's Content-Type): name lowercase, value
    // valid already, so none of append's checks; added only when the name is absent.
    headersAddDefault = (h, name, value) => {
      const index = h.#index;
      const list = h.#list;
      if (index !== null) {
        if (index.has(name)) return;
        index.set(name, value);
      } else {
        for (let i = 0; i < list.length; i++) if (list[i][0] === name) return;
      }
      h.#sorted = null;
      ArrayPrototypePush(list, [name, value]);
    };
    // For the built-ins' own checks (Request's and Response's Content-Type): has() without
    // going through a method an app may replace. name: valid and lowercase.
    hasHeader = (h, name) => h.#has(name);
    isHeaders = (v) => v !== null && typeof v === 'object' && #list in v;
  }
}

Headers.prototype[SymbolIterator] = Headers.prototype.entries;
Reflect.defineProperty(Headers.prototype, SymbolIterator, { enumerable: false });
Reflect.defineProperty(Headers.prototype, SymbolToStringTag, { value: 'Headers', configurable: true });
Headers.prototype[kInspect] = function (fmt) {
  const parts = [];
  const pairs = headersPairs(this);
  for (let i = 0; i < pairs.length; i += 2) ArrayPrototypePush(parts, `${fmt(pairs[i])}: ${fmt(pairs[i + 1])}`);
  return parts.length ? `Headers { ${ArrayPrototypeJoin(parts, ', ')} }` : 'Headers {}';
};
Reflect.defineProperty(Headers.prototype, kInspect, { enumerable: false });


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
    const pairs = headersPairs(this.#headers);
    if (2 * this.#index >= pairs.length) return { value: undefined, done: true };
    const i = 2 * this.#index++;
    const name = pairs[i];
    const value = pairs[i + 1];
    const v = this.#kind === 'keys' ? name : this.#kind === 'values' ? value : [name, value];
    return { value: v, done: false };
  }
}
ObjectSetPrototypeOf(HeadersIterator.prototype, IteratorPrototype);
const HeadersIteratorPrototype = HeadersIterator.prototype;
const headersIteratorNext = HeadersIteratorPrototype.next;
const headersEntries = Headers.prototype.entries;
Reflect.defineProperty(HeadersIterator.prototype, 'next', { enumerable: true });
Reflect.defineProperty(HeadersIterator.prototype, SymbolToStringTag,
  { value: 'Headers Iterator', configurable: true });

// Fetch "fill" from a HeadersInit: (sequence<sequence<ByteString>> or record<ByteString,
// ByteString>). WebIDL converts the whole init first, every pair and string in order, and
// only then are the pairs checked and appended; so every conversion (and its side effects)
// happens before an invalid name or value can throw.
function fillHeaders(headers, init) {
  if (init === null || (typeof init !== 'object' && typeof init !== 'function')) {
    throw new TypeError('Headers init must be an object, an array of pairs or a Headers');
  }
  const method = init[SymbolIterator];
  if (method === headersEntries && isHeaders(init) &&
      HeadersIteratorPrototype.next === headersIteratorNext) {
    // Another Headers, iterated by its own unpatched iterator: no app code would run, so
    // its sorted and combined pairs (valid already) are copied as they are.
    const pairs = headersPairs(init);
    for (let i = 0; i < pairs.length; i += 2) appendValidHeader(headers, pairs[i], pairs[i + 1]);
    return;
  }
  const pairs = method !== undefined && method !== null
    ? webidl.sequence(init, method, toHeaderPair, 'Headers init')
    : webidl.record(init, toHeaderName, toHeaderValue, 'Headers init');
  for (let i = 0; i < pairs.length; i++) {
    const pair = pairs[i];
    if (pair.length !== 2) {
      throw new TypeError(`Each header pair must have exactly 2 items, got ${pair.length}`);
    }
    appendHeader(headers, pair[0], pair[1]);
  }
}

// The ByteString conversions of the init (each may end the conversion before the next
// property is read, which a getter or a Proxy can observe).
const toHeaderName = (v) => webidl.ByteString(v, 'Header name');
const toHeaderValue = (v) => webidl.ByteString(v, 'Header value');
const toPairItem = (v) => webidl.ByteString(v, 'Header pair item');
const toHeaderPair = (pair) => webidl.iterable(pair, toPairItem, 'Header pair');

webidl.configureInterface(Headers);
Reflect.defineProperty(Headers.prototype, SymbolIterator, { enumerable: false });
defineGlobal('Headers', Headers);

ObjectAssign(internal, {
  Headers, headerList, headersFromList, fillHeaders, isHeaders, hasHeader, headersAddDefault,
  // For the built-ins' own appends (Request's and Response's Content-Type): the same steps as
  // append(), without going through a method an app may replace (hasHeader: has()).
  appendHeader,
  setHeadersGuard: setGuard,
  toByteString, kGuardNone, kGuardRequest, kGuardResponse, kGuardImmutable, kGuardRequestNoCors,
});
