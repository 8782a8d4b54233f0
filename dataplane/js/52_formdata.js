// 52_formdata.js: FormData (XHR §4.3), the multipart/form-data encoding (HTML §4.10.21.8) and
// parser used by the Body mixin's formData() (Fetch §5.3, RFC 7578).
'use strict';

const {
  ArrayPrototypePush, ArrayPrototypeSplice, NumberPrototypeToString, ObjectDefineProperty,
  ObjectGetPrototypeOf, ObjectSetPrototypeOf, RegExpPrototypeExec, StringPrototypeReplace,
  StringPrototypeSlice, StringPrototypeToLowerCase, StringPrototypeTrim, SymbolIterator,
  SymbolToStringTag, TypeError, Uint8Array, StringPrototypeIndexOf, StringPrototypeSplit,
  DateNow, TypedArrayPrototypeSlice, TypedArrayPrototypeSubarray, StringFromCharCode,
  StringPrototypeCharCodeAt, ObjectAssign,
} = primordials;
const {
  webidl, defineGlobal, isBlob, blobBytes, blobType, makeFile, isFile, fileLastModified,
  normalizeBlobType,
} = internal;

// "create an entry": strings stay strings; a Blob becomes a File (named "blob" unless given).
// The new File shares the Blob's bytes (they never change) and is made without the File
// constructor's parts conversion.
function makeEntry(name, value, filename) {
  name = webidl.USVString(name);
  if (!isBlob(value)) return [name, webidl.USVString(value)];
  if (!isFile(value)) {
    value = makeFile(blobBytes(value), blobType(value),
      filename === undefined ? 'blob' : webidl.USVString(filename), DateNow());
  } else if (filename !== undefined) {
    value = makeFile(blobBytes(value), blobType(value), webidl.USVString(filename),
      fileLastModified(value));
  }
  return [name, value];
}

let formDataAppend; // set in FormData's static block

class FormData {
  #entries = [];

  constructor(form = undefined, submitter = undefined) {
    if (form !== undefined) {
      // The HTMLFormElement overload: there are no forms in this runtime.
      throw new TypeError("Failed to construct 'FormData': parameter 1 is not of type 'HTMLFormElement'");
    }
  }

  static #check(f, what) {
    if (f === null || typeof f !== 'object' || !(#entries in f)) throw webidl.illegalInvocation(`FormData.${what}`);
  }

  append(name, value, filename = undefined) {
    FormData.#check(this, 'append');
    webidl.argCount(arguments, 2, "Failed to execute 'append' on 'FormData'");
    if (arguments.length > 2 && !isBlob(value)) {
      throw new TypeError("Failed to execute 'append' on 'FormData': parameter 2 is not of type 'Blob'");
    }
    ArrayPrototypePush(this.#entries, makeEntry(name, value, filename));
  }

  static {
    // append() for the built-ins' own FormData (parsed bodies): no method lookups.
    formDataAppend = (fd, name, value, filename = undefined) => {
      ArrayPrototypePush(fd.#entries, makeEntry(name, value, filename));
    };
  }

  delete(name) {
    FormData.#check(this, 'delete');
    webidl.argCount(arguments, 1, "Failed to execute 'delete' on 'FormData'");
    name = webidl.USVString(name);
    for (let i = this.#entries.length - 1; i >= 0; i--) {
      if (this.#entries[i][0] === name) ArrayPrototypeSplice(this.#entries, i, 1);
    }
  }

  get(name) {
    FormData.#check(this, 'get');
    webidl.argCount(arguments, 1, "Failed to execute 'get' on 'FormData'");
    name = webidl.USVString(name);
    const entries = this.#entries;
    for (let i = 0; i < entries.length; i++) if (entries[i][0] === name) return entries[i][1];
    return null;
  }

  getAll(name) {
    FormData.#check(this, 'getAll');
    webidl.argCount(arguments, 1, "Failed to execute 'getAll' on 'FormData'");
    name = webidl.USVString(name);
    const out = [];
    const entries = this.#entries;
    for (let i = 0; i < entries.length; i++) if (entries[i][0] === name) ArrayPrototypePush(out, entries[i][1]);
    return out;
  }

  has(name) {
    FormData.#check(this, 'has');
    webidl.argCount(arguments, 1, "Failed to execute 'has' on 'FormData'");
    name = webidl.USVString(name);
    const entries = this.#entries;
    for (let i = 0; i < entries.length; i++) if (entries[i][0] === name) return true;
    return false;
  }

  set(name, value, filename = undefined) {
    FormData.#check(this, 'set');
    webidl.argCount(arguments, 2, "Failed to execute 'set' on 'FormData'");
    if (arguments.length > 2 && !isBlob(value)) {
      throw new TypeError("Failed to execute 'set' on 'FormData': parameter 2 is not of type 'Blob'");
    }
    const entry = makeEntry(name, value, filename);
    const list = this.#entries;
    let found = false;
    for (let i = 0; i < list.length; i++) {
      if (list[i][0] !== entry[0]) continue;
      if (!found) {
        list[i] = entry;
        found = true;
      } else {
        ArrayPrototypeSplice(list, i--, 1);
      }
    }
    if (!found) ArrayPrototypePush(list, entry);
  }

  forEach(callback, thisArg = undefined) {
    FormData.#check(this, 'forEach');
    if (typeof callback !== 'function') throw new TypeError("Failed to execute 'forEach' on 'FormData': the callback is not a function");
    for (let i = 0; i < this.#entries.length; i++) {
      const [n, v] = this.#entries[i];
      callback.call(thisArg, v, n, this);
    }
  }

  entries() { FormData.#check(this, 'entries'); return new FormDataIterator(this, 'entries'); }
  keys() { FormData.#check(this, 'keys'); return new FormDataIterator(this, 'keys'); }
  values() { FormData.#check(this, 'values'); return new FormDataIterator(this, 'values'); }

  static entriesOf(f) { return f.#entries; }
  // A brand check that does not throw (a caught exception costs about 20 us).
  static isFormData(v) { return v !== null && typeof v === 'object' && #entries in v; }
}
const entriesOf = FormData.entriesOf;
const isFormData = FormData.isFormData;
delete FormData.entriesOf;
delete FormData.isFormData;

class FormDataIterator {
  #formData;
  #kind;
  #index = 0;
  constructor(formData, kind) {
    this.#formData = formData;
    this.#kind = kind;
  }
  next() {
    if (this === null || typeof this !== 'object' || !(#kind in this)) {
      throw new TypeError('next called on an object that is not a FormData iterator');
    }
    const list = entriesOf(this.#formData);
    if (this.#index >= list.length) return { value: undefined, done: true };
    const entry = list[this.#index++];
    const name = entry[0];
    const value = entry[1];
    const v = this.#kind === 'keys' ? name : this.#kind === 'values' ? value : [name, value];
    return { value: v, done: false };
  }
}
ObjectSetPrototypeOf(FormDataIterator.prototype, ObjectGetPrototypeOf(primordials.ArrayIteratorPrototype));
ObjectDefineProperty(FormDataIterator.prototype, SymbolToStringTag, { value: 'FormData Iterator', configurable: true });
ObjectDefineProperty(FormDataIterator.prototype, 'next', { enumerable: true });

webidl.configureInterface(FormData);
ObjectDefineProperty(FormData.prototype, SymbolIterator, {
  value: FormData.prototype.entries, writable: true, enumerable: false, configurable: true,
});

// --- multipart/form-data -----------------------------------------------------------------------

const toCRLF = (s) => StringPrototypeReplace(s, /\r\n|\r|\n/g, '\r\n');
const escapeName = (s) => StringPrototypeReplace(StringPrototypeReplace(StringPrototypeReplace(
  s, /\n/g, '%0A'), /\r/g, '%0D'), /"/g, '%22');

function newBoundary() {
  const r = new Uint8Array(16);
  binding.randomFill(r);
  let hex = '';
  for (let i = 0; i < r.length; i++) hex += NumberPrototypeToString(r[i], 16);
  return `----formdata-nano-${hex}`;
}

// Serializes formData: [bytes, content type].
function encodeMultipart(formData) {
  const boundary = newBoundary();
  // No entries, no bytes (what browsers send; WPT checks it).
  if (entriesOf(formData).length === 0) return [new Uint8Array(0), `multipart/form-data; boundary=${boundary}`];
  const chunks = [];
  let total = 0;
  const push = (bytes) => {
    ArrayPrototypePush(chunks, bytes);
    total += bytes.length;
  };
  const entries = entriesOf(formData);
  for (let i = 0; i < entries.length; i++) {
    const name = entries[i][0];
    const value = entries[i][1];
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${escapeName(toCRLF(name))}"`;
    if (typeof value === 'string') {
      push(binding.encodeUtf8(`${head}\r\n\r\n${toCRLF(value)}\r\n`));
    } else {
      head += `; filename="${escapeName(value.name)}"\r\nContent-Type: ${value.type || 'application/octet-stream'}\r\n\r\n`;
      push(binding.encodeUtf8(head));
      push(blobBytes(value));
      push(binding.encodeUtf8('\r\n'));
    }
  }
  push(binding.encodeUtf8(`--${boundary}--\r\n`));
  const out = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return [out, `multipart/form-data; boundary=${boundary}`];
}

// A parameter of a MIME type (e.g. boundary), unquoted; undefined if absent.
function mimeParam(contentType, param) {
  const parts = StringPrototypeSplit(contentType, ';');
  for (let i = 1; i < parts.length; i++) {
    const eq = StringPrototypeIndexOf(parts[i], '=');
    if (eq === -1) continue;
    if (StringPrototypeToLowerCase(StringPrototypeTrim(StringPrototypeSlice(parts[i], 0, eq))) !== param) continue;
    let v = StringPrototypeTrim(StringPrototypeSlice(parts[i], eq + 1));
    if (v[0] === '"' && v[v.length - 1] === '"' && v.length >= 2) v = StringPrototypeSlice(v, 1, -1);
    return v;
  }
  return undefined;
}

function indexOfBytes(hay, needle, from) {
  outer: for (let i = from; i <= hay.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

const latin1 = (bytes) => {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += StringFromCharCode(bytes[i]);
  return s;
};

// RFC 7578 parsing into a new FormData; throws TypeError on malformed input.
function parseMultipart(bytes, contentType) {
  const boundary = mimeParam(contentType, 'boundary');
  const bad = (why) => new TypeError(`Failed to parse the body as multipart/form-data: ${why}`);
  if (!boundary) throw bad('the Content-Type has no boundary');
  const delimiter = binding.encodeUtf8(`--${boundary}`);
  const fd = new FormData();
  if (bytes.length === 0) return fd; // an empty FormData is sent as no bytes at all
  let pos = indexOfBytes(bytes, delimiter, 0);
  if (pos === -1) throw bad('no boundary found');
  for (;;) {
    pos += delimiter.length;
    if (bytes[pos] === 0x2d && bytes[pos + 1] === 0x2d) return fd; // "--": the end
    if (bytes[pos] !== 0x0d || bytes[pos + 1] !== 0x0a) throw bad('a boundary is not followed by CRLF');
    pos += 2;
    const headEnd = indexOfBytes(bytes, [0x0d, 0x0a, 0x0d, 0x0a], pos);
    if (headEnd === -1) throw bad('a part has no end of headers');
    const headers = StringPrototypeSplit(latin1(TypedArrayPrototypeSubarray(bytes, pos, headEnd)), '\r\n');
    let name, filename, type = '';
    for (let i = 0; i < headers.length; i++) {
      const line = headers[i];
      const colon = StringPrototypeIndexOf(line, ':');
      if (colon === -1) continue;
      const hname = StringPrototypeToLowerCase(StringPrototypeTrim(StringPrototypeSlice(line, 0, colon)));
      const hvalue = StringPrototypeTrim(StringPrototypeSlice(line, colon + 1));
      if (hname === 'content-disposition') {
        const nm = RegExpPrototypeExec(/;\s*name="([^"]*)"/i, hvalue) ?? RegExpPrototypeExec(/;\s*name=([^;]*)/i, hvalue);
        const fm = RegExpPrototypeExec(/;\s*filename="([^"]*)"/i, hvalue) ?? RegExpPrototypeExec(/;\s*filename=([^;]*)/i, hvalue);
        if (nm !== null) name = nm[1];
        if (fm !== null) filename = fm[1];
      } else if (hname === 'content-type') {
        type = hvalue;
      }
    }
    if (name === undefined) throw bad('a part has no name');
    const bodyStart = headEnd + 4;
    const next = indexOfBytes(bytes, delimiter, bodyStart);
    if (next === -1 || next < 2 || bytes[next - 2] !== 0x0d || bytes[next - 1] !== 0x0a) {
      throw bad('a part is not terminated by a boundary');
    }
    const body = TypedArrayPrototypeSubarray(bytes, bodyStart, next - 2);
    // Header text is UTF-8 in practice (RFC 7578 §5.1).
    const decode = (s) => binding.utf8Decode(latin1Bytes(s), false, false)[0];
    if (filename !== undefined) {
      // A copy (slice): the File must not keep the whole body's buffer alive through a view.
      formDataAppend(fd, decode(name), makeFile(TypedArrayPrototypeSlice(body),
        normalizeBlobType(type), decode(filename), DateNow()));
    } else {
      formDataAppend(fd, decode(name), binding.utf8Decode(body, false, false)[0]);
    }
    pos = next;
  }
}

function latin1Bytes(s) {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = StringPrototypeCharCodeAt(s, i) & 0xff;
  return b;
}

defineGlobal('FormData', FormData);

ObjectAssign(internal, {
  FormData, formDataAppend, isFormData, encodeMultipart, parseMultipart, mimeParam,
});
