// 40_url.js: URL and URLSearchParams, implementing the WHATWG URL Standard: the basic URL
// parser (§4.4) as its state machine, with state overrides for the setters; host parsing
// with IPv4/IPv6 and IDNA (UTS #46 via ICU, binding.domainToASCII); serialization;
// application/x-www-form-urlencoded parsing and serialization (§5).
'use strict';

const {
  ArrayPrototypeJoin, ArrayPrototypePop, ArrayPrototypePush, ArrayPrototypeSlice,
  ArrayPrototypeSplice, MathFloor, NumberParseInt, ObjectFreeze, RegExpPrototypeExec, SafeMap,
  String, StringFromCharCode, StringPrototypeCharCodeAt, StringPrototypeCodePointAt,
  StringPrototypeIncludes, StringPrototypeIndexOf, StringPrototypeReplace, StringPrototypeSlice,
  StringPrototypeSplit, StringPrototypeStartsWith, StringPrototypeToLowerCase, SymbolIterator,
  TypeError, Uint8Array, NumberPrototypeToString, ObjectDefineProperty, ObjectSetPrototypeOf,
  ObjectGetPrototypeOf, SymbolToStringTag, Symbol, ObjectAssign,
} = primordials;
const { webidl, defineGlobal } = internal;

const FAILURE = Symbol('failure');
const specialPorts = new SafeMap([
  ['ftp', 21], ['file', null], ['http', 80], ['https', 443], ['ws', 80], ['wss', 443],
]);
const isSpecialScheme = (s) => specialPorts.has(s);

// --- percent-encoding (§1.3) ----------------------------------------------------------------

const isC0ControlSet = (c) => c < 0x20 || c > 0x7e;
const isFragmentSet = (c) => isC0ControlSet(c) || c === 0x20 || c === 0x22 || c === 0x3c ||
  c === 0x3e || c === 0x60;
const isQuerySet = (c) => isC0ControlSet(c) || c === 0x20 || c === 0x22 || c === 0x23 ||
  c === 0x3c || c === 0x3e;
const isSpecialQuerySet = (c) => isQuerySet(c) || c === 0x27;
const isPathSet = (c) => isQuerySet(c) || c === 0x3f || c === 0x5e || c === 0x60 || c === 0x7b ||
  c === 0x7d;
const isUserinfoSet = (c) => isPathSet(c) || c === 0x2f || c === 0x3a || c === 0x3b ||
  c === 0x3d || c === 0x40 || (c >= 0x5b && c <= 0x5d) || c === 0x7c;
const isComponentSet = (c) => isUserinfoSet(c) || (c >= 0x24 && c <= 0x26) || c === 0x2b ||
  c === 0x2c;
const isFormSet = (c) => isComponentSet(c) || c === 0x21 || (c >= 0x27 && c <= 0x29) ||
  c === 0x7e;

const hex = '0123456789ABCDEF';
const pctByte = (b) => '%' + hex[b >> 4] + hex[b & 15];

// UTF-8 percent-encode the string s with the set inSet (code units; surrogates paired).
function percentEncode(s, inSet, spaceAsPlus = false) {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    let c = StringPrototypeCharCodeAt(s, i);
    if (spaceAsPlus && c === 0x20) {
      out += '+';
      continue;
    }
    if (c < 0x80) {
      out += inSet(c) ? pctByte(c) : s[i];
      continue;
    }
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = StringPrototypeCharCodeAt(s, i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
      } else {
        c = 0xfffd;
      }
    } else if (c >= 0xd800 && c <= 0xdfff) {
      c = 0xfffd; // a lone surrogate encodes as U+FFFD (USVString)
    }
    if (c < 0x800) {
      out += pctByte(0xc0 | (c >> 6)) + pctByte(0x80 | (c & 63));
    } else if (c < 0x10000) {
      out += pctByte(0xe0 | (c >> 12)) + pctByte(0x80 | ((c >> 6) & 63)) + pctByte(0x80 | (c & 63));
    } else {
      out += pctByte(0xf0 | (c >> 18)) + pctByte(0x80 | ((c >> 12) & 63)) +
        pctByte(0x80 | ((c >> 6) & 63)) + pctByte(0x80 | (c & 63));
    }
  }
  return out;
}

const isHexDigit = (c) => (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
const hexValue = (c) => (c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x61 + 10);

// §1.3 percent-decode a string: its UTF-8 bytes, with %XX sequences decoded.
function percentDecodeToBytes(s) {
  const bytes = binding.encodeUtf8(s);
  const out = new Uint8Array(bytes.length);
  let n = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b === 0x25 && i + 2 < bytes.length && isHexDigit(bytes[i + 1]) && isHexDigit(bytes[i + 2])) {
      out[n++] = hexValue(bytes[i + 1]) * 16 + hexValue(bytes[i + 2]);
      i += 2;
    } else {
      out[n++] = b;
    }
  }
  return out.subarray(0, n);
}
const utf8DecodeNoBOM = (bytes) => binding.utf8Decode(bytes, false, false)[0];

// --- hosts (§3) -----------------------------------------------------------------------------

// Forbidden host code points, and forbidden domain code points (the former plus C0, %, DEL).
const forbiddenHost = /[\0\t\n\r #/:<>?@[\\\]^|]/;
const forbiddenDomain = /[\0-\x1f #%/:<>?@[\\\]^|\x7f]/;

function parseIPv4Number(s) {
  if (s === '') return FAILURE;
  let radix = 10;
  if (s.length >= 2 && s[0] === '0' && (s[1] === 'x' || s[1] === 'X')) {
    radix = 16;
    s = StringPrototypeSlice(s, 2);
  } else if (s.length >= 2 && s[0] === '0') {
    radix = 8;
    s = StringPrototypeSlice(s, 1);
  }
  if (s === '') return 0;
  const valid = radix === 10 ? /^[0-9]+$/ : radix === 16 ? /^[0-9A-Fa-f]+$/ : /^[0-7]+$/;
  if (RegExpPrototypeExec(valid, s) === null) return FAILURE;
  return NumberParseInt(s, radix);
}

function endsInANumber(s) {
  const parts = StringPrototypeSplit(s, '.');
  if (parts[parts.length - 1] === '') {
    if (parts.length === 1) return false;
    ArrayPrototypePop(parts);
  }
  const last = parts[parts.length - 1];
  if (last !== '' && RegExpPrototypeExec(/^[0-9]+$/, last) !== null) return true;
  return parseIPv4Number(last) !== FAILURE;
}

function parseIPv4(s) {
  const parts = StringPrototypeSplit(s, '.');
  if (parts[parts.length - 1] === '' && parts.length > 1) ArrayPrototypePop(parts);
  if (parts.length > 4) return FAILURE;
  const numbers = [];
  for (let i = 0; i < parts.length; i++) {
    const n = parseIPv4Number(parts[i]);
    if (n === FAILURE) return FAILURE;
    ArrayPrototypePush(numbers, n);
  }
  for (let i = 0; i < numbers.length - 1; i++) if (numbers[i] > 255) return FAILURE;
  if (numbers[numbers.length - 1] >= 256 ** (5 - numbers.length)) return FAILURE;
  let ipv4 = numbers[numbers.length - 1];
  for (let i = 0; i < numbers.length - 1; i++) ipv4 += numbers[i] * 256 ** (3 - i);
  return { ipv4 };
}

function parseIPv6(input) {
  const address = [0, 0, 0, 0, 0, 0, 0, 0];
  let pieceIndex = 0;
  let compress = null;
  let p = 0;
  const c = (i) => (i < input.length ? StringPrototypeCharCodeAt(input, i) : -1);
  if (c(p) === 0x3a) {
    if (c(p + 1) !== 0x3a) return FAILURE;
    p += 2;
    pieceIndex++;
    compress = pieceIndex;
  }
  while (c(p) !== -1) {
    if (pieceIndex === 8) return FAILURE;
    if (c(p) === 0x3a) {
      if (compress !== null) return FAILURE;
      p++;
      pieceIndex++;
      compress = pieceIndex;
      continue;
    }
    let value = 0;
    let length = 0;
    while (length < 4 && isHexDigit(c(p))) {
      value = value * 16 + hexValue(c(p));
      p++;
      length++;
    }
    if (c(p) === 0x2e) {
      if (length === 0) return FAILURE;
      p -= length;
      if (pieceIndex > 6) return FAILURE;
      let numbersSeen = 0;
      while (c(p) !== -1) {
        let ipv4Piece = null;
        if (numbersSeen > 0) {
          if (c(p) === 0x2e && numbersSeen < 4) p++;
          else return FAILURE;
        }
        if (!(c(p) >= 0x30 && c(p) <= 0x39)) return FAILURE;
        while (c(p) >= 0x30 && c(p) <= 0x39) {
          const number = c(p) - 0x30;
          if (ipv4Piece === null) ipv4Piece = number;
          else if (ipv4Piece === 0) return FAILURE;
          else ipv4Piece = ipv4Piece * 10 + number;
          if (ipv4Piece > 255) return FAILURE;
          p++;
        }
        address[pieceIndex] = address[pieceIndex] * 0x100 + ipv4Piece;
        numbersSeen++;
        if (numbersSeen === 2 || numbersSeen === 4) pieceIndex++;
      }
      if (numbersSeen !== 4) return FAILURE;
      break;
    } else if (c(p) === 0x3a) {
      p++;
      if (c(p) === -1) return FAILURE;
    } else if (c(p) !== -1) {
      return FAILURE;
    }
    address[pieceIndex] = value;
    pieceIndex++;
  }
  if (compress !== null) {
    let swaps = pieceIndex - compress;
    pieceIndex = 7;
    while (pieceIndex !== 0 && swaps > 0) {
      const t = address[compress + swaps - 1];
      address[compress + swaps - 1] = address[pieceIndex];
      address[pieceIndex] = t;
      pieceIndex--;
      swaps--;
    }
  } else if (pieceIndex !== 8) {
    return FAILURE;
  }
  return address;
}

function serializeIPv6(address) {
  // The first longest run of two or more zero pieces is compressed.
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (address[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && address[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  let out = '';
  let ignore0 = false;
  for (let i = 0; i < 8; i++) {
    if (ignore0 && address[i] === 0) continue;
    ignore0 = false;
    if (best === i) {
      out += i === 0 ? '::' : ':';
      ignore0 = true;
      continue;
    }
    out += NumberPrototypeToString(address[i], 16);
    if (i !== 7) out += ':';
  }
  return out;
}

function serializeIPv4(n) {
  const parts = [];
  for (let i = 0; i < 4; i++) {
    parts[3 - i] = String(n % 256);
    n = MathFloor(n / 256);
  }
  return ArrayPrototypeJoin(parts, '.');
}

// §3.5 host parser; returns the serialized host or FAILURE.
function parseHost(input, isOpaque) {
  if (input[0] === '[') {
    if (input[input.length - 1] !== ']') return FAILURE;
    const address = parseIPv6(StringPrototypeSlice(input, 1, -1));
    return address === FAILURE ? FAILURE : `[${serializeIPv6(address)}]`;
  }
  if (isOpaque) {
    if (RegExpPrototypeExec(forbiddenHost, input) !== null) return FAILURE;
    return percentEncode(input, isC0ControlSet);
  }
  const domain = utf8DecodeNoBOM(percentDecodeToBytes(input));
  const asciiDomain = domainToASCII(domain);
  if (asciiDomain === FAILURE) return FAILURE;
  if (RegExpPrototypeExec(forbiddenDomain, asciiDomain) !== null) return FAILURE;
  if (endsInANumber(asciiDomain)) {
    const ipv4 = parseIPv4(asciiDomain);
    return ipv4 === FAILURE ? FAILURE : serializeIPv4(ipv4.ipv4);
  }
  return asciiDomain;
}

// §3.3 domain to ASCII (beStrict false), with the all-ASCII fast path the standard allows.
function domainToASCII(domain) {
  let result;
  if (RegExpPrototypeExec(/^[\x00-\x7f]*$/, domain) !== null &&
      RegExpPrototypeExec(/(^|\.)xn--/i, domain) === null) {
    result = StringPrototypeToLowerCase(domain);
  } else {
    result = binding.domainToASCII(domain);
    if (result === null) return FAILURE;
  }
  return result === '' ? FAILURE : result;
}

// --- the URL record and the basic URL parser (§4.4) -----------------------------------------

// A URL record (§4.1). path is a list of segments, or a string for an opaque path. The
// simple parser gives it as text ("/a/b") and the list is made only when asked for:
// pathname and href need just the text. Handing out the list drops the text, as the
// caller may change the list.
let setPathText, pathText;
class UrlRecord {
  scheme = '';
  username = '';
  password = '';
  host = null;
  port = null;
  opaque = false;
  query = null;
  fragment = null;
  #path = [];
  #pathText = null;

  get path() {
    if (this.#path === null) this.#path = StringPrototypeSplit(StringPrototypeSlice(this.#pathText, 1), '/');
    this.#pathText = null;
    return this.#path;
  }

  set path(value) {
    this.#path = value;
    this.#pathText = null;
  }

  static {
    setPathText = (url, text) => {
      url.#path = null;
      url.#pathText = text;
    };
    pathText = (url) => url.#pathText;
  }
}

function newRecord() {
  return new UrlRecord();
}

const isAsciiAlpha = (c) => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
const isAsciiDigit = (c) => c >= 0x30 && c <= 0x39;
const isWindowsDriveLetter = (s) => s.length === 2 && isAsciiAlpha(StringPrototypeCharCodeAt(s, 0)) &&
  (s[1] === ':' || s[1] === '|');
const isNormalizedWindowsDriveLetter = (s) => isWindowsDriveLetter(s) && s[1] === ':';
function startsWithWindowsDriveLetter(cps, p) {
  if (cps.length - p < 2) return false;
  if (!isWindowsDriveLetter(cps[p] + cps[p + 1])) return false;
  if (cps.length - p === 2) return true;
  const t = cps[p + 2];
  return t === '/' || t === '\\' || t === '?' || t === '#';
}
const isSingleDot = (s) => s === '.' || StringPrototypeToLowerCase(s) === '%2e';
const isDoubleDot = (s) => {
  s = StringPrototypeToLowerCase(s);
  return s === '..' || s === '.%2e' || s === '%2e.' || s === '%2e%2e';
};
const includesCredentials = (u) => u.username !== '' || u.password !== '';
const cannotHaveCredentialsOrPort = (u) => u.host === null || u.host === '' || u.scheme === 'file';

function shortenPath(url) {
  const path = url.path;
  if (url.scheme === 'file' && path.length === 1 && isNormalizedWindowsDriveLetter(path[0])) return;
  ArrayPrototypePop(path);
}

// State names (numbers are cheaper than strings in the loop).
const SCHEME_START = 1, SCHEME = 2, NO_SCHEME = 3, SPECIAL_RELATIVE_OR_AUTHORITY = 4,
  PATH_OR_AUTHORITY = 5, RELATIVE = 6, RELATIVE_SLASH = 7, SPECIAL_AUTHORITY_SLASHES = 8,
  SPECIAL_AUTHORITY_IGNORE_SLASHES = 9, AUTHORITY = 10, HOST = 11, HOSTNAME = 12, PORT = 13,
  FILE = 14, FILE_SLASH = 15, FILE_HOST = 16, PATH_START = 17, PATH = 18, OPAQUE_PATH = 19,
  QUERY = 20, FRAGMENT = 21;

const trimControlAndSpace = /^[\0-\x20]+|[\0-\x20]+$/g;
const tabOrNewline = /[\t\n\r]/g;

// The string as an array of code points (each a string of one or two code units), without
// the string iterator an app could replace.
function codePoints(s) {
  const out = [];
  for (let i = 0; i < s.length; i++) {
    const c = StringPrototypeCharCodeAt(s, i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = StringPrototypeCharCodeAt(s, i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        ArrayPrototypePush(out, StringPrototypeSlice(s, i, i + 2));
        i++;
        continue;
      }
    }
    ArrayPrototypePush(out, s[i]);
  }
  return out;
}

// The URLs a server sees most, read in one pass over their code units: an absolute http(s),
// ws(s) or ftp URL of printable ASCII with a plain domain or dotted-decimal IPv4 host, an
// optional port, and a path, query and fragment holding nothing the parser would
// percent-encode, no dot segments, no backslash and no credentials. For these the state
// machine's steps reduce to lowercasing the scheme and host, reading the port and keeping
// the path as text; anything else (null here) goes to the state machine.
// tests/js/url.test.js compares the two on generated URLs.
const kSchemeUnit = 1, kHostUnit = 2, kPathUnit = 4, kQueryUnit = 8, kFragmentUnit = 16;
const kSimpleUnits = new Uint8Array(128);
for (let c = 0x21; c < 0x7f; c++) {
  const ch = StringFromCharCode(c);
  const alnum = isAsciiAlpha(c) || isAsciiDigit(c);
  let bits = 0;
  if (alnum || ch === '+' || ch === '-' || ch === '.') bits |= kSchemeUnit;
  if (alnum || ch === '_' || ch === '-' || ch === '.') bits |= kHostUnit;
  // Left out everywhere: what some component would percent-encode, and the backslash.
  if (!StringPrototypeIncludes('"<>\\^`{}\'', ch)) {
    bits |= kFragmentUnit;
    if (ch !== '#') bits |= kQueryUnit;
    if (ch !== '#' && ch !== '?') bits |= kPathUnit;
  }
  kSimpleUnits[c] = bits;
}
const dottedDecimal = /^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$/;

// Index of the first code unit at or after i that lacks bit, or the string's length.
function scanUnits(s, i, bit) {
  for (; i < s.length; i++) {
    const c = StringPrototypeCharCodeAt(s, i);
    if (c >= 128 || (kSimpleUnits[c] & bit) === 0) break;
  }
  return i;
}

function hasUpperAscii(s) {
  for (let i = 0; i < s.length; i++) {
    const c = StringPrototypeCharCodeAt(s, i);
    if (c >= 0x41 && c <= 0x5a) return true;
  }
  return false;
}

function simpleParse(input) {
  const n = input.length;
  // scheme "://"
  const schemeEnd = scanUnits(input, 0, kSchemeUnit);
  if (schemeEnd === 0 || !isAsciiAlpha(StringPrototypeCharCodeAt(input, 0)) ||
      StringPrototypeCharCodeAt(input, schemeEnd) !== 0x3a ||
      StringPrototypeCharCodeAt(input, schemeEnd + 1) !== 0x2f ||
      StringPrototypeCharCodeAt(input, schemeEnd + 2) !== 0x2f) {
    return null;
  }
  let scheme = StringPrototypeSlice(input, 0, schemeEnd);
  if (hasUpperAscii(scheme)) scheme = StringPrototypeToLowerCase(scheme);
  const defaultPort = specialPorts.get(scheme);
  if (defaultPort === undefined || defaultPort === null) return null; // not special, or file
  // host: a domain with no "xn--" label, or dotted-decimal IPv4 when it ends in a number
  const hostStart = schemeEnd + 3;
  const hostEnd = scanUnits(input, hostStart, kHostUnit);
  if (hostEnd === hostStart) return null;
  let host = StringPrototypeSlice(input, hostStart, hostEnd);
  if (hasUpperAscii(host)) host = StringPrototypeToLowerCase(host);
  let labelStart = 0;
  for (let i = 0; i <= host.length; i++) {
    if (i < host.length && StringPrototypeCharCodeAt(host, i) !== 0x2e) continue;
    if (i - labelStart >= 4 && StringPrototypeStartsWith(host, 'xn--', labelStart)) return null;
    if (i < host.length) labelStart = i + 1;
  }
  const last = StringPrototypeCharCodeAt(host, host.length - 1);
  if (last === 0x2e || isAsciiDigit(last) ||
      StringPrototypeStartsWith(host, '0x', labelStart)) {
    // It may end in a number (IPv4 rules): only plain dotted decimal stays here.
    if (RegExpPrototypeExec(dottedDecimal, host) === null) return null;
  }
  let i = hostEnd;
  // port
  let port = null;
  if (i < n && StringPrototypeCharCodeAt(input, i) === 0x3a) {
    i++;
    let value = -1;
    for (; i < n; i++) {
      const c = StringPrototypeCharCodeAt(input, i);
      if (!isAsciiDigit(c)) break;
      value = (value < 0 ? 0 : value) * 10 + (c - 0x30);
      if (value > 65535) return null;
    }
    if (value >= 0 && value !== defaultPort) port = value;
  }
  // path, with no "/." (dot segments) and no "%2e"
  let path = '/';
  if (i < n && StringPrototypeCharCodeAt(input, i) === 0x2f) {
    const pathEnd = scanUnits(input, i, kPathUnit);
    path = StringPrototypeSlice(input, i, pathEnd);
    if (StringPrototypeIncludes(path, '/.') || StringPrototypeIncludes(path, '%2') &&
        (StringPrototypeIncludes(path, '%2e') || StringPrototypeIncludes(path, '%2E'))) {
      return null;
    }
    i = pathEnd;
  }
  let query = null;
  if (i < n && StringPrototypeCharCodeAt(input, i) === 0x3f) {
    const queryEnd = scanUnits(input, i + 1, kQueryUnit);
    query = StringPrototypeSlice(input, i + 1, queryEnd);
    i = queryEnd;
  }
  let fragment = null;
  if (i < n && StringPrototypeCharCodeAt(input, i) === 0x23) {
    const fragmentEnd = scanUnits(input, i + 1, kFragmentUnit);
    fragment = StringPrototypeSlice(input, i + 1, fragmentEnd);
    i = fragmentEnd;
  }
  if (i !== n) return null;
  const url = newRecord();
  url.scheme = scheme;
  url.host = host;
  url.port = port;
  setPathText(url, path);
  url.query = query;
  url.fragment = fragment;
  return url;
}

// Returns a URL record, or FAILURE. With url and stateOverride, modifies url in place
// (returning FAILURE or undefined), as the setters need.
function basicParse(input, base = null, url = null, stateOverride = 0, simple = true) {
  if (url === null && simple) {
    const record = simpleParse(input);
    if (record !== null) return record;
  }
  if (url === null) {
    url = newRecord();
    input = StringPrototypeReplace(input, trimControlAndSpace, '');
  }
  input = StringPrototypeReplace(input, tabOrNewline, '');
  let state = stateOverride || SCHEME_START;
  let buffer = '';
  let atSignSeen = false, insideBrackets = false, passwordTokenSeen = false;
  const cps = codePoints(input);
  const len = cps.length;
  const remainingStartsWith = (p, s) => {
    for (let i = 0; i < s.length; i++) if (cps[p + 1 + i] !== s[i]) return false;
    return true;
  };

  for (let p = 0; ; p++) {
    const c = p < len ? cps[p] : undefined; // undefined is EOF
    const cc = c === undefined ? -1 : StringPrototypeCodePointAt(c, 0);
    switch (state) {
      case SCHEME_START:
        if (isAsciiAlpha(cc)) {
          buffer += StringPrototypeToLowerCase(c);
          state = SCHEME;
        } else if (!stateOverride) {
          state = NO_SCHEME;
          p--;
        } else {
          return FAILURE;
        }
        break;

      case SCHEME:
        if (isAsciiAlpha(cc) || isAsciiDigit(cc) || c === '+' || c === '-' || c === '.') {
          buffer += StringPrototypeToLowerCase(c);
        } else if (c === ':') {
          if (stateOverride) {
            if (isSpecialScheme(url.scheme) !== isSpecialScheme(buffer)) return;
            if ((includesCredentials(url) || url.port !== null) && buffer === 'file') return;
            if (url.scheme === 'file' && url.host === '') return;
          }
          url.scheme = buffer;
          if (stateOverride) {
            if (url.port === specialPorts.get(url.scheme)) url.port = null;
            return;
          }
          buffer = '';
          if (url.scheme === 'file') {
            state = FILE;
          } else if (isSpecialScheme(url.scheme) && base !== null && base.scheme === url.scheme) {
            state = SPECIAL_RELATIVE_OR_AUTHORITY;
          } else if (isSpecialScheme(url.scheme)) {
            state = SPECIAL_AUTHORITY_SLASHES;
          } else if (cps[p + 1] === '/') {
            state = PATH_OR_AUTHORITY;
            p++;
          } else {
            url.opaque = true;
            url.path = '';
            state = OPAQUE_PATH;
          }
        } else if (!stateOverride) {
          buffer = '';
          state = NO_SCHEME;
          p = -1;
        } else {
          return FAILURE;
        }
        break;

      case NO_SCHEME:
        if (base === null || (base.opaque && c !== '#')) return FAILURE;
        if (base.opaque && c === '#') {
          url.scheme = base.scheme;
          url.path = base.path;
          url.opaque = true;
          url.query = base.query;
          url.fragment = '';
          state = FRAGMENT;
        } else if (base.scheme !== 'file') {
          state = RELATIVE;
          p--;
        } else {
          state = FILE;
          p--;
        }
        break;

      case SPECIAL_RELATIVE_OR_AUTHORITY:
        if (c === '/' && cps[p + 1] === '/') {
          state = SPECIAL_AUTHORITY_IGNORE_SLASHES;
          p++;
        } else {
          state = RELATIVE;
          p--;
        }
        break;

      case PATH_OR_AUTHORITY:
        if (c === '/') {
          state = AUTHORITY;
        } else {
          state = PATH;
          p--;
        }
        break;

      case RELATIVE:
        url.scheme = base.scheme;
        if (c === '/') {
          state = RELATIVE_SLASH;
        } else if (isSpecialScheme(url.scheme) && c === '\\') {
          state = RELATIVE_SLASH;
        } else {
          url.username = base.username;
          url.password = base.password;
          url.host = base.host;
          url.port = base.port;
          url.path = ArrayPrototypeSlice(base.path);
          url.query = base.query;
          if (c === '?') {
            url.query = '';
            state = QUERY;
          } else if (c === '#') {
            url.fragment = '';
            state = FRAGMENT;
          } else if (c !== undefined) {
            url.query = null;
            shortenPath(url);
            state = PATH;
            p--;
          }
        }
        break;

      case RELATIVE_SLASH:
        if (isSpecialScheme(url.scheme) && (c === '/' || c === '\\')) {
          state = SPECIAL_AUTHORITY_IGNORE_SLASHES;
        } else if (c === '/') {
          state = AUTHORITY;
        } else {
          url.username = base.username;
          url.password = base.password;
          url.host = base.host;
          url.port = base.port;
          state = PATH;
          p--;
        }
        break;

      case SPECIAL_AUTHORITY_SLASHES:
        if (c === '/' && cps[p + 1] === '/') {
          state = SPECIAL_AUTHORITY_IGNORE_SLASHES;
          p++;
        } else {
          state = SPECIAL_AUTHORITY_IGNORE_SLASHES;
          p--;
        }
        break;

      case SPECIAL_AUTHORITY_IGNORE_SLASHES:
        if (c !== '/' && c !== '\\') {
          state = AUTHORITY;
          p--;
        }
        break;

      case AUTHORITY:
        if (c === '@') {
          if (atSignSeen) buffer = '%40' + buffer;
          atSignSeen = true;
          const bufferPoints = codePoints(buffer);
          for (let i = 0; i < bufferPoints.length; i++) {
            const bc = bufferPoints[i];
            if (bc === ':' && !passwordTokenSeen) {
              passwordTokenSeen = true;
              continue;
            }
            const encoded = percentEncode(bc, isUserinfoSet);
            if (passwordTokenSeen) url.password += encoded;
            else url.username += encoded;
          }
          buffer = '';
        } else if (c === undefined || c === '/' || c === '?' || c === '#' ||
                   (isSpecialScheme(url.scheme) && c === '\\')) {
          if (atSignSeen && buffer === '') return FAILURE;
          p -= codePoints(buffer).length + 1;
          buffer = '';
          state = HOST;
        } else {
          buffer += c;
        }
        break;

      case HOST:
      case HOSTNAME:
        if (stateOverride && url.scheme === 'file') {
          p--;
          state = FILE_HOST;
        } else if (c === ':' && !insideBrackets) {
          if (buffer === '') return FAILURE;
          if (stateOverride === HOSTNAME) return FAILURE;
          const host = parseHost(buffer, !isSpecialScheme(url.scheme));
          if (host === FAILURE) return FAILURE;
          url.host = host;
          buffer = '';
          state = PORT;
        } else if (c === undefined || c === '/' || c === '?' || c === '#' ||
                   (isSpecialScheme(url.scheme) && c === '\\')) {
          p--;
          if (isSpecialScheme(url.scheme) && buffer === '') return FAILURE;
          if (stateOverride && buffer === '' && (includesCredentials(url) || url.port !== null)) {
            return FAILURE;
          }
          const host = parseHost(buffer, !isSpecialScheme(url.scheme));
          if (host === FAILURE) return FAILURE;
          url.host = host;
          buffer = '';
          state = PATH_START;
          if (stateOverride) return;
        } else {
          if (c === '[') insideBrackets = true;
          if (c === ']') insideBrackets = false;
          buffer += c;
        }
        break;

      case PORT:
        if (isAsciiDigit(cc)) {
          buffer += c;
        } else if (c === undefined || c === '/' || c === '?' || c === '#' ||
                   (isSpecialScheme(url.scheme) && c === '\\') || stateOverride) {
          if (buffer !== '') {
            const port = NumberParseInt(buffer, 10);
            if (port > 65535) return FAILURE;
            url.port = port === specialPorts.get(url.scheme) ? null : port;
            buffer = '';
            if (stateOverride) return;
          }
          if (stateOverride) return FAILURE;
          state = PATH_START;
          p--;
        } else {
          return FAILURE;
        }
        break;

      case FILE:
        url.scheme = 'file';
        url.host = '';
        if (c === '/' || c === '\\') {
          state = FILE_SLASH;
        } else if (base !== null && base.scheme === 'file') {
          url.host = base.host;
          url.path = ArrayPrototypeSlice(base.path);
          url.query = base.query;
          if (c === '?') {
            url.query = '';
            state = QUERY;
          } else if (c === '#') {
            url.fragment = '';
            state = FRAGMENT;
          } else if (c !== undefined) {
            url.query = null;
            if (!startsWithWindowsDriveLetter(cps, p)) shortenPath(url);
            else url.path = [];
            state = PATH;
            p--;
          }
        } else {
          state = PATH;
          p--;
        }
        break;

      case FILE_SLASH:
        if (c === '/' || c === '\\') {
          state = FILE_HOST;
        } else {
          if (base !== null && base.scheme === 'file') {
            url.host = base.host;
            if (!startsWithWindowsDriveLetter(cps, p) && base.path.length > 0 &&
                isNormalizedWindowsDriveLetter(base.path[0])) {
              ArrayPrototypePush(url.path, base.path[0]);
            }
          }
          state = PATH;
          p--;
        }
        break;

      case FILE_HOST:
        if (c === undefined || c === '/' || c === '\\' || c === '?' || c === '#') {
          p--;
          if (!stateOverride && isWindowsDriveLetter(buffer)) {
            state = PATH; // the buffer is the path's first segment
          } else if (buffer === '') {
            url.host = '';
            if (stateOverride) return;
            state = PATH_START;
          } else {
            let host = parseHost(buffer, !isSpecialScheme(url.scheme));
            if (host === FAILURE) return FAILURE;
            if (host === 'localhost') host = '';
            url.host = host;
            if (stateOverride) return;
            buffer = '';
            state = PATH_START;
          }
        } else {
          buffer += c;
        }
        break;

      case PATH_START:
        if (isSpecialScheme(url.scheme)) {
          state = PATH;
          if (c !== '/' && c !== '\\') p--;
        } else if (!stateOverride && c === '?') {
          url.query = '';
          state = QUERY;
        } else if (!stateOverride && c === '#') {
          url.fragment = '';
          state = FRAGMENT;
        } else if (c !== undefined) {
          state = PATH;
          if (c !== '/') p--;
        } else if (stateOverride && url.host === null) {
          ArrayPrototypePush(url.path, '');
        }
        break;

      case PATH:
        if (c === undefined || c === '/' || (isSpecialScheme(url.scheme) && c === '\\') ||
            (!stateOverride && (c === '?' || c === '#'))) {
          const slash = c === '/' || (isSpecialScheme(url.scheme) && c === '\\');
          if (isDoubleDot(buffer)) {
            shortenPath(url);
            if (!slash) ArrayPrototypePush(url.path, '');
          } else if (isSingleDot(buffer) && !slash) {
            ArrayPrototypePush(url.path, '');
          } else if (!isSingleDot(buffer)) {
            if (url.scheme === 'file' && url.path.length === 0 && isWindowsDriveLetter(buffer)) {
              buffer = buffer[0] + ':';
            }
            ArrayPrototypePush(url.path, buffer);
          }
          buffer = '';
          if (c === '?') {
            url.query = '';
            state = QUERY;
          }
          if (c === '#') {
            url.fragment = '';
            state = FRAGMENT;
          }
        } else {
          buffer += percentEncode(c, isPathSet);
        }
        break;

      case OPAQUE_PATH:
        if (c === '?') {
          url.query = '';
          state = QUERY;
        } else if (c === '#') {
          url.fragment = '';
          state = FRAGMENT;
        } else if (c === ' ') {
          // A space stays a space unless a query or fragment follows, when it is encoded so
          // that stripping trailing spaces cannot change the path.
          const next = cps[p + 1];
          url.path += next === '?' || next === '#' ? '%20' : ' ';
        } else if (c !== undefined) {
          url.path += percentEncode(c, isC0ControlSet);
        }
        break;

      case QUERY:
        if ((!stateOverride && c === '#') || c === undefined) {
          url.query += percentEncode(buffer, isSpecialScheme(url.scheme) ? isSpecialQuerySet : isQuerySet);
          buffer = '';
          if (c === '#') {
            url.fragment = '';
            state = FRAGMENT;
          }
        } else {
          buffer += c;
        }
        break;

      case FRAGMENT:
        if (c !== undefined) url.fragment += percentEncode(c, isFragmentSet);
        break;
    }
    if (p >= len) break; // EOF handled (a state that steps back at EOF sees it again)
  }
  return stateOverride ? undefined : url;
}

// §4.5 URL serializer.
function serializePath(url) {
  if (url.opaque) return url.path;
  const text = pathText(url);
  if (text !== null) return text;
  const path = url.path;
  let out = '';
  for (let i = 0; i < path.length; i++) out += '/' + path[i];
  return out;
}

function serialize(url, excludeFragment = false) {
  let out = url.scheme + ':';
  if (url.host !== null) {
    out += '//';
    if (includesCredentials(url)) {
      out += url.username;
      if (url.password !== '') out += ':' + url.password;
      out += '@';
    }
    out += url.host;
    if (url.port !== null) out += ':' + url.port;
  } else if (!url.opaque && url.path.length > 1 && url.path[0] === '') {
    out += '/.';
  }
  out += serializePath(url);
  if (url.query !== null) out += '?' + url.query;
  if (!excludeFragment && url.fragment !== null) out += '#' + url.fragment;
  return out;
}

// §4.6 origin, serialized.
function serializeOrigin(url) {
  switch (url.scheme) {
    case 'blob': {
      if (url.opaque) {
        const inner = basicParse(url.path);
        if (inner !== FAILURE && (inner.scheme === 'http' || inner.scheme === 'https')) {
          return serializeOrigin(inner);
        }
      }
      return 'null';
    }
    case 'ftp': case 'http': case 'https': case 'ws': case 'wss':
      return url.scheme + '://' + url.host + (url.port !== null ? ':' + url.port : '');
    default:
      return 'null';
  }
}

// "potentially strip trailing spaces from an opaque path"
function stripTrailingSpaces(url) {
  if (!url.opaque || url.fragment !== null || url.query !== null) return;
  url.path = StringPrototypeReplace(url.path, / +$/, '');
}

// --- application/x-www-form-urlencoded (§5) ---------------------------------------------------

// A name or value with no '%', '+' or surrogate decodes to itself.
const needsFormDecoding = /[%+\uD800-\uDFFF]/;
const plusSigns = /\+/g;
function formDecode(s) {
  if (RegExpPrototypeExec(needsFormDecoding, s) === null) return s;
  return utf8DecodeNoBOM(percentDecodeToBytes(StringPrototypeReplace(s, plusSigns, ' ')));
}

function parseUrlencoded(input) {
  const out = [];
  const sequences = StringPrototypeSplit(input, '&');
  for (let i = 0; i < sequences.length; i++) {
    const sequence = sequences[i];
    if (sequence === '') continue;
    const eq = StringPrototypeIndexOf(sequence, '=');
    const name = eq === -1 ? sequence : StringPrototypeSlice(sequence, 0, eq);
    const value = eq === -1 ? '' : StringPrototypeSlice(sequence, eq + 1);
    ArrayPrototypePush(out, [formDecode(name), formDecode(value)]);
  }
  return out;
}

function serializeUrlencoded(list) {
  let out = '';
  for (let i = 0; i < list.length; i++) {
    if (i > 0) out += '&';
    out += percentEncode(list[i][0], isFormSet, true) + '=' + percentEncode(list[i][1], isFormSet, true);
  }
  return out;
}

// --- URLSearchParams -------------------------------------------------------------------------

const kParamsContext = "Failed to construct 'URLSearchParams'";
const toParamString = (v) => webidl.USVString(v, kParamsContext);
const toParamPair = (pair) => webidl.iterable(pair, toParamString, `${kParamsContext}: a pair`);

class URLSearchParams {
  #list = [];
  #url = null; // the URL whose query this is, or null

  constructor(init = '') {
    if (init !== null && typeof init === 'object' || typeof init === 'function') {
      const iter = init[SymbolIterator];
      if (iter !== undefined && iter !== null) {
        // sequence<sequence<USVString>>: every pair converts before any length is checked.
        const pairs = webidl.sequence(init, iter, toParamPair, kParamsContext);
        for (let i = 0; i < pairs.length; i++) {
          if (pairs[i].length !== 2) {
            throw new TypeError(`${kParamsContext}: each pair must have exactly two items`);
          }
          ArrayPrototypePush(this.#list, [pairs[i][0], pairs[i][1]]);
        }
      } else {
        // record<USVString, USVString>: keys that convert to the same USVString (lone
        // surrogates become U+FFFD) keep the first position and the last value.
        const byKey = new SafeMap();
        const entries = webidl.record(init, toParamString, toParamString, kParamsContext);
        for (let i = 0; i < entries.length; i++) {
          const k = entries[i][0];
          const v = entries[i][1];
          const existing = byKey.get(k);
          if (existing !== undefined) {
            existing[1] = v;
          } else {
            const pair = [k, v];
            byKey.set(k, pair);
            ArrayPrototypePush(this.#list, pair);
          }
        }
      }
    } else {
      let s = webidl.USVString(init);
      if (s[0] === '?') s = StringPrototypeSlice(s, 1);
      this.#list = parseUrlencoded(s);
    }
  }

  static #check(o, what) {
    if (o === null || typeof o !== 'object' || !(#list in o)) throw webidl.illegalInvocation(`URLSearchParams.${what}`);
  }

  #update() {
    if (this.#url === null) return;
    const s = serializeUrlencoded(this.#list);
    setUrlQuery(this.#url, s === '' ? null : s);
  }

  get size() { URLSearchParams.#check(this, 'size'); return this.#list.length; }

  append(name, value) {
    URLSearchParams.#check(this, 'append');
    webidl.argCount(arguments, 2, "Failed to execute 'append' on 'URLSearchParams'");
    ArrayPrototypePush(this.#list, [webidl.USVString(name), webidl.USVString(value)]);
    this.#update();
  }

  delete(name, value = undefined) {
    URLSearchParams.#check(this, 'delete');
    webidl.argCount(arguments, 1, "Failed to execute 'delete' on 'URLSearchParams'");
    name = webidl.USVString(name);
    if (value !== undefined) value = webidl.USVString(value);
    const list = this.#list;
    for (let i = list.length - 1; i >= 0; i--) {
      if (list[i][0] === name && (value === undefined || list[i][1] === value)) ArrayPrototypeSplice(list, i, 1);
    }
    this.#update();
  }

  get(name) {
    URLSearchParams.#check(this, 'get');
    webidl.argCount(arguments, 1, "Failed to execute 'get' on 'URLSearchParams'");
    name = webidl.USVString(name);
    const list = this.#list;
    for (let i = 0; i < list.length; i++) if (list[i][0] === name) return list[i][1];
    return null;
  }

  getAll(name) {
    URLSearchParams.#check(this, 'getAll');
    webidl.argCount(arguments, 1, "Failed to execute 'getAll' on 'URLSearchParams'");
    name = webidl.USVString(name);
    const out = [];
    const list = this.#list;
    for (let i = 0; i < list.length; i++) if (list[i][0] === name) ArrayPrototypePush(out, list[i][1]);
    return out;
  }

  has(name, value = undefined) {
    URLSearchParams.#check(this, 'has');
    webidl.argCount(arguments, 1, "Failed to execute 'has' on 'URLSearchParams'");
    name = webidl.USVString(name);
    if (value !== undefined) value = webidl.USVString(value);
    const list = this.#list;
    for (let i = 0; i < list.length; i++) {
      if (list[i][0] === name && (value === undefined || list[i][1] === value)) return true;
    }
    return false;
  }

  set(name, value) {
    URLSearchParams.#check(this, 'set');
    webidl.argCount(arguments, 2, "Failed to execute 'set' on 'URLSearchParams'");
    name = webidl.USVString(name);
    value = webidl.USVString(value);
    const list = this.#list;
    let found = false;
    for (let i = 0; i < list.length; i++) {
      if (list[i][0] !== name) continue;
      if (!found) {
        list[i][1] = value;
        found = true;
      } else {
        ArrayPrototypeSplice(list, i--, 1);
      }
    }
    if (!found) ArrayPrototypePush(list, [name, value]);
    this.#update();
  }

  sort() {
    URLSearchParams.#check(this, 'sort');
    // Stable, by code units of the names.
    const indexed = this.#list.map((pair, i) => [pair, i]);
    indexed.sort((a, b) => (a[0][0] < b[0][0] ? -1 : a[0][0] > b[0][0] ? 1 : a[1] - b[1]));
    this.#list = indexed.map((x) => x[0]);
    this.#update();
  }

  toString() {
    URLSearchParams.#check(this, 'toString');
    return serializeUrlencoded(this.#list);
  }

  forEach(callback, thisArg = undefined) {
    URLSearchParams.#check(this, 'forEach');
    webidl.argCount(arguments, 1, "Failed to execute 'forEach' on 'URLSearchParams'");
    if (typeof callback !== 'function') throw new TypeError("Failed to execute 'forEach' on 'URLSearchParams': the callback is not a function");
    for (let i = 0; i < this.#list.length; i++) {
      const [n, v] = this.#list[i];
      callback.call(thisArg, v, n, this);
    }
  }

  entries() { URLSearchParams.#check(this, 'entries'); return new ParamsIterator(this, 'entries'); }
  keys() { URLSearchParams.#check(this, 'keys'); return new ParamsIterator(this, 'keys'); }
  values() { URLSearchParams.#check(this, 'values'); return new ParamsIterator(this, 'values'); }
  static listOf(params) { return params.#list; }

  static attach(params, url) { params.#url = url; }
  static replaceList(params, list) { params.#list = list; }
}
const attachParams = URLSearchParams.attach;
const replaceParamsList = URLSearchParams.replaceList;
const paramsList = URLSearchParams.listOf;
delete URLSearchParams.attach;
delete URLSearchParams.replaceList;
delete URLSearchParams.listOf;

// WebIDL pair iterator: reads the (live) list at each step.
class ParamsIterator {
  #params;
  #kind;
  #index = 0;
  constructor(params, kind) {
    this.#params = params;
    this.#kind = kind;
  }
  next() {
    if (this === null || typeof this !== 'object' || !(#kind in this)) {
      throw new TypeError('next called on an object that is not a URLSearchParams iterator');
    }
    const list = paramsList(this.#params);
    if (this.#index >= list.length) return { value: undefined, done: true };
    const [name, value] = list[this.#index++];
    const v = this.#kind === 'keys' ? name : this.#kind === 'values' ? value : [name, value];
    return { value: v, done: false };
  }
}
ObjectSetPrototypeOf(ParamsIterator.prototype, ObjectGetPrototypeOf(primordials.ArrayIteratorPrototype));
ObjectDefineProperty(ParamsIterator.prototype, SymbolToStringTag,
  { value: 'URLSearchParams Iterator', configurable: true });
ObjectDefineProperty(ParamsIterator.prototype, 'next', { enumerable: true });
webidl.configureInterface(URLSearchParams);
ObjectDefineProperty(URLSearchParams.prototype, SymbolIterator, {
  value: URLSearchParams.prototype.entries, writable: true, enumerable: false, configurable: true,
});

// --- URL -------------------------------------------------------------------------------------

let setUrlQuery;
const kFromRecord = Symbol('nano.urlFromRecord');

class URL {
  #url;
  #searchParams = null;
  #href = null; // the serialization, until a setter (or searchParams) changes the record

  constructor(url, base = undefined) {
    if (url === kFromRecord) { // URL.parse: the record is already parsed
      this.#url = base;
      return;
    }
    webidl.argCount(arguments, 1, "Failed to construct 'URL'");
    const record = parseWithBase(webidl.USVString(url), base === undefined ? undefined : webidl.USVString(base));
    if (record === FAILURE) {
      throw new TypeError(`Failed to construct 'URL': Invalid URL${base === undefined ? '' : ' or base'}: ${url}`);
    }
    this.#url = record;
  }

  static parse(url, base = undefined) {
    webidl.argCount(arguments, 1, "Failed to execute 'parse' on 'URL'");
    const record = parseWithBase(webidl.USVString(url), base === undefined ? undefined : webidl.USVString(base));
    return record === FAILURE ? null : new URL(kFromRecord, record);
  }

  static canParse(url, base = undefined) {
    webidl.argCount(arguments, 1, "Failed to execute 'canParse' on 'URL'");
    return parseWithBase(webidl.USVString(url), base === undefined ? undefined : webidl.USVString(base)) !== FAILURE;
  }

  static #check(u, what) {
    if (u === null || typeof u !== 'object' || !(#url in u)) throw webidl.illegalInvocation(`URL.${what}`);
  }

  // URLSearchParams's update steps: a new query for the URL's record.
  static setQuery(u, query) {
    u.#url.query = query;
    if (query === null) stripTrailingSpaces(u.#url);
    u.#href = null;
  }

  #params() {
    if (this.#searchParams === null) {
      const params = new URLSearchParams();
      replaceParamsList(params, parseUrlencoded(this.#url.query ?? ''));
      attachParams(params, this);
      this.#searchParams = params;
    }
    return this.#searchParams;
  }

  #syncParams() {
    if (this.#searchParams !== null) replaceParamsList(this.#searchParams, parseUrlencoded(this.#url.query ?? ''));
  }

  get href() { URL.#check(this, 'href'); return (this.#href ??= serialize(this.#url)); }
  set href(value) {
    URL.#check(this, 'href');
    this.#href = null;
    const record = basicParse(webidl.USVString(value));
    if (record === FAILURE) throw new TypeError(`Failed to set the 'href' property on 'URL': Invalid URL: ${value}`);
    this.#url = record;
    this.#syncParams();
  }

  get origin() { URL.#check(this, 'origin'); return serializeOrigin(this.#url); }

  get protocol() { URL.#check(this, 'protocol'); return this.#url.scheme + ':'; }
  set protocol(value) {
    URL.#check(this, 'protocol');
    this.#href = null;
    basicParse(webidl.USVString(value) + ':', null, this.#url, SCHEME_START);
  }

  get username() { URL.#check(this, 'username'); return this.#url.username; }
  set username(value) {
    URL.#check(this, 'username');
    this.#href = null;
    if (cannotHaveCredentialsOrPort(this.#url)) return;
    this.#url.username = percentEncode(webidl.USVString(value), isUserinfoSet);
  }

  get password() { URL.#check(this, 'password'); return this.#url.password; }
  set password(value) {
    URL.#check(this, 'password');
    this.#href = null;
    if (cannotHaveCredentialsOrPort(this.#url)) return;
    this.#url.password = percentEncode(webidl.USVString(value), isUserinfoSet);
  }

  get host() {
    URL.#check(this, 'host');
    const u = this.#url;
    if (u.host === null) return '';
    return u.port === null ? u.host : u.host + ':' + u.port;
  }
  set host(value) {
    URL.#check(this, 'host');
    this.#href = null;
    if (this.#url.opaque) return;
    basicParse(webidl.USVString(value), null, this.#url, HOST);
  }

  get hostname() { URL.#check(this, 'hostname'); return this.#url.host ?? ''; }
  set hostname(value) {
    URL.#check(this, 'hostname');
    this.#href = null;
    if (this.#url.opaque) return;
    basicParse(webidl.USVString(value), null, this.#url, HOSTNAME);
  }

  get port() { URL.#check(this, 'port'); return this.#url.port === null ? '' : String(this.#url.port); }
  set port(value) {
    URL.#check(this, 'port');
    this.#href = null;
    if (cannotHaveCredentialsOrPort(this.#url)) return;
    value = webidl.USVString(value);
    if (value === '') this.#url.port = null;
    else basicParse(value, null, this.#url, PORT);
  }

  get pathname() { URL.#check(this, 'pathname'); return serializePath(this.#url); }
  set pathname(value) {
    URL.#check(this, 'pathname');
    this.#href = null;
    if (this.#url.opaque) return;
    this.#url.path = [];
    basicParse(webidl.USVString(value), null, this.#url, PATH_START);
  }

  get search() {
    URL.#check(this, 'search');
    const q = this.#url.query;
    return q === null || q === '' ? '' : '?' + q;
  }
  set search(value) {
    URL.#check(this, 'search');
    this.#href = null;
    value = webidl.USVString(value);
    const u = this.#url;
    if (value === '') {
      u.query = null;
      if (this.#searchParams !== null) replaceParamsList(this.#searchParams, []);
      stripTrailingSpaces(u);
      return;
    }
    const input = value[0] === '?' ? StringPrototypeSlice(value, 1) : value;
    u.query = '';
    basicParse(input, null, u, QUERY);
    if (this.#searchParams !== null) replaceParamsList(this.#searchParams, parseUrlencoded(input));
  }

  get searchParams() { URL.#check(this, 'searchParams'); return this.#params(); }

  get hash() {
    URL.#check(this, 'hash');
    const f = this.#url.fragment;
    return f === null || f === '' ? '' : '#' + f;
  }
  set hash(value) {
    URL.#check(this, 'hash');
    this.#href = null;
    value = webidl.USVString(value);
    const u = this.#url;
    if (value === '') {
      u.fragment = null;
      stripTrailingSpaces(u);
      return;
    }
    const input = value[0] === '#' ? StringPrototypeSlice(value, 1) : value;
    u.fragment = '';
    basicParse(input, null, u, FRAGMENT);
  }

  toString() { URL.#check(this, 'toString'); return (this.#href ??= serialize(this.#url)); }
  toJSON() { URL.#check(this, 'toJSON'); return (this.#href ??= serialize(this.#url)); }
}

setUrlQuery = URL.setQuery;
delete URL.setQuery;

function parseWithBase(url, base) {
  let baseRecord = null;
  if (base !== undefined) {
    baseRecord = basicParse(base);
    if (baseRecord === FAILURE) return FAILURE;
  }
  return basicParse(url, baseRecord);
}

webidl.configureInterface(URL);

// For URLPattern's canonicalization callbacks (42_urlpattern.js).
const overrideStates = { __proto__: null, 'hostname': HOSTNAME, 'port': PORT, 'path start': PATH_START,
  'opaque path': OPAQUE_PATH, 'query': QUERY, 'fragment': FRAGMENT };
const urlInternals = ObjectFreeze({
  FAILURE,
  parse: (input, base = null) => basicParse(input, base),
  // The state machine alone (no simpleParse), for tests that compare the two.
  parseSlow: (input) => basicParse(input, null, null, 0, false),
  parseOverride: (input, url, state) => basicParse(input, null, url, overrideStates[state]),
  newRecord,
  isSpecialScheme,
  defaultPort: (scheme) => specialPorts.get(scheme),
  percentEncodeUserinfo: (s) => percentEncode(s, isUserinfoSet),
  serializePath,
  codePoints, // a string's code points, without the string iterator an app may replace
});

defineGlobal('URL', URL);
defineGlobal('URLSearchParams', URLSearchParams);

ObjectAssign(internal, {
  URL, URLSearchParams, urlInternals, parseUrlencoded, serializeUrlencoded,
  urlSimpleParse: simpleParse,
  parseURL: (input, base) => parseWithBase(input, base),
  serializeURL: serialize,
  percentEncodeComponent: (s) => percentEncode(s, isComponentSet),
});
