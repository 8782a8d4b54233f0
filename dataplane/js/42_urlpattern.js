// 42_urlpattern.js: URLPattern (WHATWG URL Pattern Standard): the tokenizer (§2.1), the pattern
// parser (§2.2), regular expression and pattern string generation (§2.3), the constructor
// string parser (§1.6), URLPatternInit processing and the canonicalization callbacks built on
// the URL parser (internal.urlInternals from 40_url.js).
'use strict';

const {
  ArrayPrototypeJoin, ArrayPrototypePush, ArrayPrototypeSlice, ObjectFreeze, RegExp,
  RegExpPrototypeExec, SafeSet, String, StringPrototypeCharAt, StringPrototypeLastIndexOf,
  StringPrototypeReplace,
  StringPrototypeSlice, StringPrototypeToLowerCase, TypeError, ObjectAssign,
} = primordials;
const { webidl, defineGlobal, URL, urlInternals: U } = internal;
const codePoints = U.codePoints;

// --- tokenizer (§2.1) ---------------------------------------------------------------------------

const OPEN = 'open', CLOSE = 'close', REGEXP = 'regexp', NAME = 'name', CHAR = 'char',
  ESCAPED = 'escaped-char', MODIFIER = 'other-modifier', ASTERISK = 'asterisk', END = 'end',
  INVALID = 'invalid-char';

const idStart = /^[\p{ID_Start}$_]$/u;
const idContinue = /^[\p{ID_Continue}$\u200c\u200d]$/u;
const isValidNameCodePoint = (cp, first) => RegExpPrototypeExec(first ? idStart : idContinue, cp) !== null;
const isAscii = (cp) => cp.codePointAt(0) < 0x80;

function tokenize(input, lenient) {
  const cps = codePoints(input);
  const tokens = [];
  let index = 0;
  let next = 0;
  let cp;
  const take = (at) => { next = at; cp = cps[next]; next++; };
  const getNext = () => { cp = cps[next]; next++; };
  const text = (from, length) => ArrayPrototypeJoin(ArrayPrototypeSlice(cps, from, from + length), '');
  const add = (type, nextPos, valuePos, valueLen) => {
    ArrayPrototypePush(tokens, { type, index, value: text(valuePos, valueLen) });
    index = nextPos;
  };
  const addDefault = (type, nextPos, valuePos) => add(type, nextPos, valuePos, nextPos - valuePos);
  const error = (nextPos, valuePos) => {
    if (!lenient) throw new TypeError(`Invalid URLPattern: bad syntax at position ${valuePos} in "${input}"`);
    addDefault(INVALID, nextPos, valuePos);
  };
  while (index < cps.length) {
    take(index);
    if (cp === '*') { addDefault(ASTERISK, next, index); continue; }
    if (cp === '+' || cp === '?') { addDefault(MODIFIER, next, index); continue; }
    if (cp === '\\') {
      if (index === cps.length - 1) { error(next, index); continue; }
      const escaped = next;
      getNext();
      addDefault(ESCAPED, next, escaped);
      continue;
    }
    if (cp === '{') { addDefault(OPEN, next, index); continue; }
    if (cp === '}') { addDefault(CLOSE, next, index); continue; }
    if (cp === ':') {
      let pos = next;
      const start = pos;
      while (pos < cps.length) {
        take(pos);
        if (!isValidNameCodePoint(cp, pos === start)) break;
        pos = next;
      }
      if (pos <= start) { error(start, index); continue; }
      addDefault(NAME, pos, start);
      continue;
    }
    if (cp === '(') {
      let depth = 1;
      let pos = next;
      const start = pos;
      let failed = false;
      while (pos < cps.length) {
        take(pos);
        if (!isAscii(cp)) { error(start, index); failed = true; break; }
        if (pos === start && cp === '?') { error(start, index); failed = true; break; }
        if (cp === '\\') {
          if (pos === cps.length - 1) { error(start, index); failed = true; break; }
          getNext();
          if (!isAscii(cp)) { error(start, index); failed = true; break; }
          pos = next;
          continue;
        }
        if (cp === ')') {
          depth--;
          if (depth === 0) { pos = next; break; }
        } else if (cp === '(') {
          depth++;
          if (pos === cps.length - 1) { error(start, index); failed = true; break; }
          const temp = next;
          getNext();
          if (cp !== '?') { error(start, index); failed = true; break; }
          next = temp;
        }
        pos = next;
      }
      if (failed) continue;
      if (depth !== 0) { error(start, index); continue; }
      const length = pos - start - 1;
      if (length === 0) { error(start, index); continue; }
      add(REGEXP, pos, start, length);
      continue;
    }
    addDefault(CHAR, next, index);
  }
  addDefault(END, index, index);
  return tokens;
}

// --- pattern parser (§2.2) ----------------------------------------------------------------------

const FIXED = 'fixed-text', PART_REGEXP = 'regexp', SEGMENT = 'segment-wildcard', FULL = 'full-wildcard';
const NONE = '', OPTIONAL = '?', ZERO_OR_MORE = '*', ONE_OR_MORE = '+';
const fullWildcard = '.*';

const escapeRegexp = (s) => StringPrototypeReplace(s, /[.+*?^${}()[\]|/\\]/g, '\\$&');
const escapePattern = (s) => StringPrototypeReplace(s, /[+*?:{}()\\]/g, '\\$&');
const segmentWildcard = (options) => `[^${escapeRegexp(options.delimiter)}]+?`;

function parsePattern(input, options, encode) {
  const tokens = tokenize(input, false);
  const parts = [];
  const wildcard = segmentWildcard(options);
  let pending = '';
  let i = 0;
  let nextNumericName = 0;
  const names = new SafeSet();
  const tryConsume = (type) => {
    const t = tokens[i];
    if (t.type !== type) return null;
    i++;
    return t;
  };
  const tryModifier = () => tryConsume(MODIFIER) ?? tryConsume(ASTERISK);
  // An asterisk is a wildcard only without a name before it (":name*" is a modifier).
  const tryRegexpOrWildcard = (nameToken) => {
    const t = tryConsume(REGEXP);
    return t === null && nameToken === null ? tryConsume(ASTERISK) : t;
  };
  const consumeRequired = (type) => {
    const t = tryConsume(type);
    if (t === null) throw new TypeError(`Invalid URLPattern "${input}": expected ${type} at position ${tokens[i].index}`);
    return t;
  };
  const consumeText = () => {
    let out = '';
    for (;;) {
      const t = tryConsume(CHAR) ?? tryConsume(ESCAPED);
      if (t === null) return out;
      out += t.value;
    }
  };
  const flushPending = () => {
    if (pending === '') return;
    const value = encode(pending);
    pending = '';
    ArrayPrototypePush(parts, { type: FIXED, value, modifier: NONE, name: '', prefix: '', suffix: '' });
  };
  const addPart = (prefix, nameToken, regexpOrWildcard, suffix, modifierToken) => {
    const modifier = modifierToken === null ? NONE : modifierToken.value;
    if (nameToken === null && regexpOrWildcard === null && modifier === NONE) {
      pending += prefix;
      return;
    }
    flushPending();
    if (nameToken === null && regexpOrWildcard === null) {
      if (prefix === '') return;
      ArrayPrototypePush(parts, { type: FIXED, value: encode(prefix), modifier, name: '', prefix: '', suffix: '' });
      return;
    }
    let value;
    if (regexpOrWildcard === null) value = wildcard;
    else if (regexpOrWildcard.type === ASTERISK) value = fullWildcard;
    else value = regexpOrWildcard.value;
    let type = PART_REGEXP;
    if (value === wildcard) { type = SEGMENT; value = ''; }
    else if (value === fullWildcard) { type = FULL; value = ''; }
    let name = '';
    if (nameToken !== null) name = nameToken.value;
    else if (regexpOrWildcard !== null) name = String(nextNumericName++);
    if (names.has(name)) throw new TypeError(`Invalid URLPattern "${input}": duplicate name '${name}'`);
    names.add(name);
    ArrayPrototypePush(parts, { type, value, modifier, name, prefix: encode(prefix), suffix: encode(suffix) });
  };
  while (i < tokens.length) {
    const charToken = tryConsume(CHAR);
    let nameToken = tryConsume(NAME);
    let regexpOrWildcard = tryRegexpOrWildcard(nameToken);
    if (nameToken !== null || regexpOrWildcard !== null) {
      let prefix = charToken === null ? '' : charToken.value;
      if (prefix !== '' && prefix !== options.prefix) {
        pending += prefix;
        prefix = '';
      }
      flushPending();
      addPart(prefix, nameToken, regexpOrWildcard, '', tryModifier());
      continue;
    }
    const fixed = charToken ?? tryConsume(ESCAPED);
    if (fixed !== null) {
      pending += fixed.value;
      continue;
    }
    if (tryConsume(OPEN) !== null) {
      const prefix = consumeText();
      nameToken = tryConsume(NAME);
      regexpOrWildcard = tryRegexpOrWildcard(nameToken);
      const suffix = consumeText();
      consumeRequired(CLOSE);
      addPart(prefix, nameToken, regexpOrWildcard, suffix, tryModifier());
      continue;
    }
    flushPending();
    consumeRequired(END);
  }
  return parts;
}

// §2.3 generate a regular expression and name list.
function generateRegexp(parts, options) {
  let result = '^';
  const names = [];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    if (part.type === FIXED) {
      result += part.modifier === NONE ? escapeRegexp(part.value)
        : `(?:${escapeRegexp(part.value)})${part.modifier}`;
      continue;
    }
    ArrayPrototypePush(names, part.name);
    let value = part.value;
    if (part.type === SEGMENT) value = segmentWildcard(options);
    else if (part.type === FULL) value = fullWildcard;
    const prefix = escapeRegexp(part.prefix);
    const suffix = escapeRegexp(part.suffix);
    if (part.prefix === '' && part.suffix === '') {
      result += part.modifier === NONE || part.modifier === OPTIONAL
        ? `(${value})${part.modifier}` : `((?:${value})${part.modifier})`;
      continue;
    }
    if (part.modifier === NONE || part.modifier === OPTIONAL) {
      result += `(?:${prefix}(${value})${suffix})${part.modifier}`;
      continue;
    }
    result += `(?:${prefix}((?:${value})(?:${suffix}${prefix}(?:${value}))*)${suffix})`;
    if (part.modifier === ZERO_OR_MORE) result += '?';
  }
  return [result + '$', names];
}

// §2.3 generate a pattern string.
function generatePatternString(parts, options) {
  let result = '';
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    const previous = i > 0 ? parts[i - 1] : null;
    const next = i + 1 < parts.length ? parts[i + 1] : null;
    if (part.type === FIXED) {
      result += part.modifier === NONE ? escapePattern(part.value)
        : `{${escapePattern(part.value)}}${part.modifier}`;
      continue;
    }
    const customName = !/^[0-9]/.test(part.name);
    let needsGrouping = part.suffix !== '' || (part.prefix !== '' && part.prefix !== options.prefix);
    if (!needsGrouping && customName && part.type === SEGMENT && part.modifier === NONE &&
        next !== null && next.prefix === '' && next.suffix === '') {
      if (next.type === FIXED) {
        needsGrouping = next.value !== '' && isValidNameCodePoint(codePoints(next.value)[0], false);
      } else {
        needsGrouping = /^[0-9]/.test(next.name);
      }
    }
    if (!needsGrouping && part.prefix === '' && previous !== null && previous.type === FIXED &&
        previous.value !== '' && previous.value[previous.value.length - 1] === options.prefix) {
      needsGrouping = true;
    }
    if (needsGrouping) result += '{';
    result += escapePattern(part.prefix);
    if (customName) result += ':' + part.name;
    if (part.type === PART_REGEXP) {
      result += `(${part.value})`;
    } else if (part.type === SEGMENT && !customName) {
      result += `(${segmentWildcard(options)})`;
    } else if (part.type === FULL) {
      if (!customName && (previous === null || previous.type === FIXED || previous.modifier !== NONE ||
          needsGrouping || part.prefix !== '')) {
        result += '*';
      } else {
        result += `(${fullWildcard})`;
      }
    }
    if (part.type === SEGMENT && customName && part.suffix !== '' &&
        isValidNameCodePoint(codePoints(part.suffix)[0], false)) {
      result += '\\';
    }
    result += escapePattern(part.suffix);
    if (needsGrouping) result += '}';
    result += part.modifier;
  }
  return result;
}

const defaultOptions = ObjectFreeze({ delimiter: '', prefix: '', ignoreCase: false });
const hostnameOptions = ObjectFreeze({ delimiter: '.', prefix: '', ignoreCase: false });

function compileComponent(input, encode, options) {
  const parts = parsePattern(input, options, encode);
  const generated = generateRegexp(parts, options);
  const source = generated[0];
  const names = generated[1];
  let regexp;
  try {
    regexp = new RegExp(source, options.ignoreCase ? 'ui' : 'u');
  } catch (err) {
    throw new TypeError(`Invalid URLPattern "${input}": ${err.message}`);
  }
  return {
    patternString: generatePatternString(parts, options),
    regexp,
    names,
    parts,
    hasRegExpGroups: parts.some((p) => p.type === PART_REGEXP),
    // A lone "*": its regexp (^(.*)$ in effect) matches any value a URL component can have
    // (they hold no line terminators; matchesAll is still checked against them), with the
    // whole value as its one group, so matching needs no regexp.
    matchesAll: parts.length === 1 && names.length === 1 && parts[0].type === FULL &&
      parts[0].modifier === NONE && parts[0].prefix === '' && parts[0].suffix === '',
  };
}
const lineTerminator = /[\n\r\u2028\u2029]/;

// URLPattern.compareComponent (tentative, as Chromium ships it): orders patterns from most to
// least specific, part by part. A part ranks by type (fixed text, regexp, segment wildcard,
// full wildcard), then modifier (none, +, ?, *), then its prefix, value and suffix as
// strings; names do not count. A list that runs out compares as an empty fixed part.
const typeRank = { [FULL]: 0, [SEGMENT]: 1, [PART_REGEXP]: 2, [FIXED]: 3 };
const modifierRank = { [ZERO_OR_MORE]: 0, [OPTIONAL]: 1, [ONE_OR_MORE]: 2, [NONE]: 3 };
const emptyFixedPart = ObjectFreeze({ type: FIXED, value: '', modifier: NONE, prefix: '', suffix: '' });
const compareNumbers = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
const compareStrings = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
function comparePart(a, b) {
  return compareNumbers(typeRank[a.type], typeRank[b.type]) ||
    compareNumbers(modifierRank[a.modifier], modifierRank[b.modifier]) ||
    compareStrings(a.prefix, b.prefix) || compareStrings(a.value, b.value) ||
    compareStrings(a.suffix, b.suffix);
}
function comparePartLists(left, right) {
  const n = left.length > right.length ? left.length : right.length;
  for (let i = 0; i < n; i++) {
    const r = comparePart(left[i] ?? emptyFixedPart, right[i] ?? emptyFixedPart);
    if (r !== 0) return r;
  }
  return 0;
}

const specialSchemes = ['ftp', 'file', 'http', 'https', 'ws', 'wss'];
const matchesSpecialScheme = (component) =>
  specialSchemes.some((s) => RegExpPrototypeExec(component.regexp, s) !== null);

// --- canonicalization (§1.5 "encoding callbacks") -----------------------------------------------

function canonicalizeProtocol(value) {
  if (value === '') return value;
  const url = U.parse(value + '://dummy.test');
  if (url === U.FAILURE) throw new TypeError(`Invalid URLPattern protocol "${value}"`);
  return url.scheme;
}
function canonicalizeUsername(value) {
  return value === '' ? value : U.percentEncodeUserinfo(value);
}
function canonicalizePassword(value) {
  return value === '' ? value : U.percentEncodeUserinfo(value);
}
function canonicalizeHostname(value, protocol = undefined) {
  if (value === '') return value;
  const url = U.newRecord();
  // Special host parsing unless a non-special protocol is known.
  url.scheme = protocol !== undefined && protocol !== '' && !U.isSpecialScheme(protocol) ? protocol : 'https';
  if (U.parseOverride(value, url, 'hostname') === U.FAILURE) {
    throw new TypeError(`Invalid URLPattern hostname "${value}"`);
  }
  return url.host ?? '';
}
function canonicalizeIPv6Hostname(value) {
  let result = '';
  for (let i = 0; i < value.length; i++) {
    const c = StringPrototypeCharAt(value, i); // ASCII only, so a code unit at a time will do
    if (RegExpPrototypeExec(/^[0-9a-fA-F[\]:]$/, c) === null) {
      throw new TypeError(`Invalid URLPattern IPv6 hostname "${value}"`);
    }
    result += StringPrototypeToLowerCase(c);
  }
  return result;
}
function canonicalizePort(value, protocol = undefined) {
  if (value === '') return value;
  const url = U.newRecord();
  if (protocol !== undefined) url.scheme = protocol;
  url.host = 'dummy.test'; // a port needs a host
  if (U.parseOverride(value, url, 'port') === U.FAILURE) {
    throw new TypeError(`Invalid URLPattern port "${value}"`);
  }
  return url.port === null ? '' : String(url.port);
}
function canonicalizePathname(value) {
  if (value === '') return value;
  const leadingSlash = value[0] === '/';
  const modified = leadingSlash ? value : '/-' + value;
  const url = U.newRecord();
  url.scheme = 'https';
  url.host = 'dummy.test';
  U.parseOverride(modified, url, 'path start');
  let result = U.serializePath(url);
  if (!leadingSlash) result = StringPrototypeSlice(result, 2);
  return result;
}
function canonicalizeOpaquePathname(value) {
  if (value === '') return value;
  const url = U.newRecord();
  url.opaque = true;
  url.path = '';
  U.parseOverride(value, url, 'opaque path');
  return url.path;
}
function canonicalizeSearch(value) {
  if (value === '') return value;
  const url = U.newRecord();
  url.scheme = 'https';
  url.query = '';
  U.parseOverride(value, url, 'query');
  return url.query;
}
function canonicalizeHash(value) {
  if (value === '') return value;
  const url = U.newRecord();
  url.fragment = '';
  U.parseOverride(value, url, 'fragment');
  return url.fragment;
}

// --- constructor string parser (§1.6) -----------------------------------------------------------

function parseConstructorString(input) {
  const tokens = tokenize(input, true);
  const result = {};
  let componentStart = 0;
  let tokenIndex = 0;
  let tokenIncrement = 1;
  let groupDepth = 0;
  let bracketDepth = 0;
  let protocolIsSpecial = false;
  let state = 'init';
  const safe = (i) => (i < tokens.length ? tokens[i] : tokens[tokens.length - 1]);
  const nonSpecial = (i, value) => {
    const t = safe(i);
    return t.value === value && (t.type === CHAR || t.type === ESCAPED || t.type === INVALID);
  };
  const componentString = () => {
    const t = tokens[tokenIndex];
    const startToken = safe(componentStart);
    return StringPrototypeSlice(ArrayJoin(input, startToken.index, t.index), 0);
  };
  const rewind = () => { tokenIndex = componentStart; tokenIncrement = 0; };
  const changeState = (newState, skip) => {
    if (state !== 'init' && state !== 'authority' && state !== 'done') result[state] = componentString();
    if (state !== 'init' && newState !== 'done') {
      if (['protocol', 'authority', 'username', 'password'].includes(state) &&
          ['port', 'pathname', 'search', 'hash'].includes(newState) && result.hostname === undefined) {
        result.hostname = '';
      }
      if (['protocol', 'authority', 'username', 'password', 'hostname', 'port'].includes(state) &&
          ['search', 'hash'].includes(newState) && result.pathname === undefined) {
        result.pathname = protocolIsSpecial ? '/' : '';
      }
      if (['protocol', 'authority', 'username', 'password', 'hostname', 'port', 'pathname'].includes(state) &&
          newState === 'hash' && result.search === undefined) {
        result.search = '';
      }
    }
    state = newState;
    tokenIndex += skip;
    componentStart = tokenIndex;
    tokenIncrement = 0;
  };
  const isSearchPrefix = () => {
    if (nonSpecial(tokenIndex, '?')) return true;
    if (tokens[tokenIndex].value !== '?') return false;
    if (tokenIndex - 1 < 0) return true;
    const prev = safe(tokenIndex - 1);
    return !(prev.type === NAME || prev.type === REGEXP || prev.type === CLOSE || prev.type === ASTERISK);
  };
  while (tokenIndex < tokens.length) {
    tokenIncrement = 1;
    const token = tokens[tokenIndex];
    if (token.type === END) {
      if (state === 'init') {
        rewind();
        if (nonSpecial(tokenIndex, '#')) changeState('hash', 1);
        else if (isSearchPrefix()) changeState('search', 1);
        else changeState('pathname', 0);
        tokenIndex += tokenIncrement;
        continue;
      }
      if (state === 'authority') {
        rewind();
        state = 'hostname';
        tokenIndex += tokenIncrement;
        continue;
      }
      changeState('done', 0);
      break;
    }
    if (token.type === OPEN) {
      groupDepth++;
      tokenIndex += tokenIncrement;
      continue;
    }
    if (groupDepth > 0) {
      if (token.type === CLOSE) {
        groupDepth--;
      } else {
        tokenIndex += tokenIncrement;
        continue;
      }
    }
    switch (state) {
      case 'init':
        if (nonSpecial(tokenIndex, ':')) {
          rewind();
          state = 'protocol';
        }
        break;
      case 'protocol':
        if (nonSpecial(tokenIndex, ':')) {
          const protocolComponent = compileComponent(componentString(), canonicalizeProtocol, defaultOptions);
          protocolIsSpecial = matchesSpecialScheme(protocolComponent);
          let nextState = 'pathname';
          let skip = 1;
          if (nonSpecial(tokenIndex + 1, '/') && nonSpecial(tokenIndex + 2, '/')) {
            nextState = 'authority';
            skip = 3;
          } else if (protocolIsSpecial) {
            nextState = 'authority';
          }
          changeState(nextState, skip);
        }
        break;
      case 'authority':
        if (nonSpecial(tokenIndex, '@')) {
          rewind();
          state = 'username';
        } else if (nonSpecial(tokenIndex, '/') || isSearchPrefix() || nonSpecial(tokenIndex, '#')) {
          rewind();
          state = 'hostname';
        }
        break;
      case 'username':
        if (nonSpecial(tokenIndex, ':')) changeState('password', 1);
        else if (nonSpecial(tokenIndex, '@')) changeState('hostname', 1);
        break;
      case 'password':
        if (nonSpecial(tokenIndex, '@')) changeState('hostname', 1);
        break;
      case 'hostname':
        if (nonSpecial(tokenIndex, '[')) bracketDepth++;
        else if (nonSpecial(tokenIndex, ']')) bracketDepth--;
        else if (nonSpecial(tokenIndex, ':') && bracketDepth === 0) changeState('port', 1);
        else if (nonSpecial(tokenIndex, '/')) changeState('pathname', 0);
        else if (isSearchPrefix()) changeState('search', 1);
        else if (nonSpecial(tokenIndex, '#')) changeState('hash', 1);
        break;
      case 'port':
        if (nonSpecial(tokenIndex, '/')) changeState('pathname', 0);
        else if (isSearchPrefix()) changeState('search', 1);
        else if (nonSpecial(tokenIndex, '#')) changeState('hash', 1);
        break;
      case 'pathname':
        if (isSearchPrefix()) changeState('search', 1);
        else if (nonSpecial(tokenIndex, '#')) changeState('hash', 1);
        break;
      case 'search':
        if (nonSpecial(tokenIndex, '#')) changeState('hash', 1);
        break;
      default:
        break;
    }
    tokenIndex += tokenIncrement;
  }
  if (result.hostname !== undefined && result.port === undefined) result.port = '';
  return result;
}

// input's code points [from, to) as a string (token indexes count code points).
function ArrayJoin(input, from, to) {
  return ArrayPrototypeJoin(ArrayPrototypeSlice(codePoints(input), from, to), '');
}

// --- URLPatternInit processing (§1.4) -----------------------------------------------------------

const components = ['protocol', 'username', 'password', 'hostname', 'port', 'pathname', 'search', 'hash'];

function isAbsolutePathname(input, type) {
  if (input === '') return false;
  if (input[0] === '/') return true;
  if (type === 'url') return false;
  if (input.length < 2) return false;
  if (input[0] === '\\' && input[1] === '/') return true;
  if (input[0] === '{' && input[1] === '/') return true;
  return false;
}

// URLPatternInit's members, in the order WebIDL reads a dictionary: sorted by name.
const initKeys = ObjectFreeze(['baseURL', 'hash', 'hostname', 'password', 'pathname', 'port',
  'protocol', 'search', 'username']);

// Reads a URLPatternInit dictionary (members in order), converting each to a USVString.
function readInit(init) {
  const out = {};
  if (init === undefined || init === null) return out;
  if (typeof init !== 'object' && typeof init !== 'function') {
    throw new TypeError('URLPattern: the input must be a string or a URLPatternInit dictionary');
  }
  for (let i = 0; i < initKeys.length; i++) {
    const key = initKeys[i];
    const v = init[key];
    if (v !== undefined) out[key] = webidl.USVString(v);
  }
  return out;
}

function processInit(init, type, defaults) {
  const result = { ...defaults };
  let base = null;
  const has = (k) => init[k] !== undefined;
  const processBase = (s) => (type === 'pattern' ? escapePattern(s) : s);
  if (has('baseURL')) {
    base = U.parse(init.baseURL);
    if (base === U.FAILURE) throw new TypeError(`URLPattern: invalid baseURL "${init.baseURL}"`);
    if (!has('protocol')) result.protocol = processBase(base.scheme);
    if (type !== 'pattern' && !has('protocol') && !has('hostname') && !has('port') && !has('username')) {
      result.username = processBase(base.username);
    }
    if (type !== 'pattern' && !has('protocol') && !has('hostname') && !has('port') && !has('username') &&
        !has('password')) {
      result.password = processBase(base.password);
    }
    if (!has('protocol') && !has('hostname')) result.hostname = processBase(base.host ?? '');
    if (!has('protocol') && !has('hostname') && !has('port')) {
      result.port = base.port === null ? '' : String(base.port);
    }
    if (!has('protocol') && !has('hostname') && !has('port') && !has('pathname')) {
      result.pathname = processBase(U.serializePath(base));
    }
    if (!has('protocol') && !has('hostname') && !has('port') && !has('pathname') && !has('search')) {
      result.search = processBase(base.query ?? '');
    }
    if (!has('protocol') && !has('hostname') && !has('port') && !has('pathname') && !has('search') &&
        !has('hash')) {
      result.hash = processBase(base.fragment ?? '');
    }
  }
  const pattern = type === 'pattern';
  if (has('protocol')) {
    const v = StringPrototypeReplace(init.protocol, /:$/, '');
    result.protocol = pattern ? v : canonicalizeProtocol(v);
  }
  if (has('username')) result.username = pattern ? init.username : canonicalizeUsername(init.username);
  if (has('password')) result.password = pattern ? init.password : canonicalizePassword(init.password);
  if (has('hostname')) result.hostname = pattern ? init.hostname : canonicalizeHostname(init.hostname, result.protocol);
  if (has('port')) result.port = pattern ? init.port : canonicalizePort(init.port, result.protocol);
  if (has('pathname')) {
    let p = init.pathname;
    if (base !== null && !base.opaque && !isAbsolutePathname(p, type)) {
      const basePath = processBase(U.serializePath(base));
      const slash = StringPrototypeLastIndexOf(basePath, '/');
      if (slash !== -1) p = StringPrototypeSlice(basePath, 0, slash + 1) + p;
    }
    if (!pattern) {
      p = result.protocol === '' || U.isSpecialScheme(result.protocol) ? canonicalizePathname(p)
        : canonicalizeOpaquePathname(p);
    }
    result.pathname = p;
  }
  if (has('search')) {
    const v = StringPrototypeReplace(init.search, /^\?/, '');
    result.search = pattern ? v : canonicalizeSearch(v);
  }
  if (has('hash')) {
    const v = StringPrototypeReplace(init.hash, /^#/, '');
    result.hash = pattern ? v : canonicalizeHash(v);
  }
  return result;
}

function isIPv6Pattern(s) {
  if (s.length < 2) return false;
  return s[0] === '[' || (s[0] === '{' && s[1] === '[') || (s[0] === '\\' && s[1] === '[');
}

// --- URLPattern -------------------------------------------------------------------------------

class URLPattern {
  #components;

  constructor(input = undefined, baseURL = undefined, options = undefined) {
    const context = "Failed to construct 'URLPattern'";
    // Overloads: (input, baseURL, options) with a string baseURL, or (input, options).
    if (baseURL !== undefined && typeof baseURL !== 'string' && typeof baseURL === 'object' && baseURL !== null) {
      options = baseURL;
      baseURL = undefined;
    } else if (baseURL !== undefined) {
      baseURL = webidl.USVString(baseURL);
    }
    const opts = webidl.dictionary(options, context);
    const ignoreCase = !!opts.ignoreCase;
    let init;
    if (typeof input === 'string') {
      init = parseConstructorString(input);
      if (baseURL === undefined && init.protocol === undefined) {
        throw new TypeError(`${context}: the relative pattern "${input}" needs a base URL`);
      }
      if (baseURL !== undefined) init.baseURL = baseURL;
    } else {
      if (baseURL !== undefined) throw new TypeError(`${context}: a base URL goes inside a URLPatternInit`);
      init = readInit(input);
    }
    const processed = processInit(init, 'pattern', {});
    for (let i = 0; i < components.length; i++) {
      if (processed[components[i]] === undefined) processed[components[i]] = '*';
    }
    if (U.isSpecialScheme(processed.protocol) && processed.port === String(U.defaultPort(processed.protocol))) {
      processed.port = '';
    }
    const compileOptions = { ...defaultOptions, ignoreCase };
    const comps = {};
    comps.protocol = compileComponent(processed.protocol, canonicalizeProtocol, defaultOptions);
    comps.username = compileComponent(processed.username, canonicalizeUsername, defaultOptions);
    comps.password = compileComponent(processed.password, canonicalizePassword, defaultOptions);
    comps.hostname = compileComponent(processed.hostname,
      isIPv6Pattern(processed.hostname) ? canonicalizeIPv6Hostname : canonicalizeHostname, hostnameOptions);
    comps.port = compileComponent(processed.port, canonicalizePort, defaultOptions);
    comps.pathname = matchesSpecialScheme(comps.protocol)
      ? compileComponent(processed.pathname, canonicalizePathname, { delimiter: '/', prefix: '/', ignoreCase })
      : compileComponent(processed.pathname, canonicalizeOpaquePathname, compileOptions);
    comps.search = compileComponent(processed.search, canonicalizeSearch, compileOptions);
    comps.hash = compileComponent(processed.hash, canonicalizeHash, compileOptions);
    this.#components = comps;
  }

  static #check(p, what) {
    if (p === null || typeof p !== 'object' || !(#components in p)) throw webidl.illegalInvocation(`URLPattern.${what}`);
  }

  test(input = undefined, baseURL = undefined) {
    URLPattern.#check(this, 'test');
    return this.#match(input, baseURL, arguments.length > 1, false) !== null;
  }

  exec(input = undefined, baseURL = undefined) {
    URLPattern.#check(this, 'exec');
    return this.#match(input, baseURL, arguments.length > 1, true);
  }

  // §1.3 match.
  // wantResult false (test()): true or null, without building the groups.
  #match(input, baseURL, hasBase, wantResult) {
    const values = { protocol: '', username: '', password: '', hostname: '', port: '', pathname: '', search: '', hash: '' };
    const inputs = [];
    if (typeof input === 'string' || input instanceof URL) {
      const s = typeof input === 'string' ? input : input.href;
      ArrayPrototypePush(inputs, typeof input === 'string' ? input : input);
      let base = null;
      if (hasBase && baseURL !== undefined) {
        baseURL = webidl.USVString(baseURL);
        ArrayPrototypePush(inputs, baseURL);
        base = U.parse(baseURL);
        if (base === U.FAILURE) return null;
      }
      const url = U.parse(webidl.USVString(s), base);
      if (url === U.FAILURE) return null;
      values.protocol = url.scheme;
      values.username = url.username;
      values.password = url.password;
      values.hostname = url.host ?? '';
      values.port = url.port === null ? '' : String(url.port);
      values.pathname = U.serializePath(url);
      values.search = url.query ?? '';
      values.hash = url.fragment ?? '';
    } else {
      const init = readInit(input);
      ArrayPrototypePush(inputs, input === undefined ? {} : input);
      if (hasBase && baseURL !== undefined) {
        throw new TypeError("Failed to execute 'exec' on 'URLPattern': a base URL goes inside a URLPatternInit");
      }
      let applied;
      try {
        applied = processInit(init, 'url', values);
      } catch {
        return null;
      }
      for (let k = 0; k < components.length; k++) values[components[k]] = applied[components[k]];
    }
    const result = wantResult ? { inputs } : null;
    for (let k = 0; k < components.length; k++) {
      const c = components[k];
      const comp = this.#components[c];
      const value = values[c];
      if (comp.matchesAll && RegExpPrototypeExec(lineTerminator, value) === null) {
        if (wantResult) result[c] = { input: value, groups: { [comp.names[0]]: value } };
        continue;
      }
      const m = RegExpPrototypeExec(comp.regexp, value);
      if (m === null) return null;
      if (!wantResult) continue;
      const groups = {};
      for (let i = 0; i < comp.names.length; i++) groups[comp.names[i]] = m[i + 1];
      result[c] = { input: value, groups };
    }
    return wantResult ? result : true;
  }

  static compareComponent(component, left, right) {
    webidl.argCount(arguments, 3, "Failed to execute 'compareComponent' on 'URLPattern'");
    const name = webidl.enumValue(component, components, "Failed to execute 'compareComponent' on 'URLPattern'");
    URLPattern.#check(left, 'compareComponent');
    URLPattern.#check(right, 'compareComponent');
    return comparePartLists(left.#components[name].parts, right.#components[name].parts);
  }

  get protocol() { URLPattern.#check(this, 'protocol'); return this.#components.protocol.patternString; }
  get username() { URLPattern.#check(this, 'username'); return this.#components.username.patternString; }
  get password() { URLPattern.#check(this, 'password'); return this.#components.password.patternString; }
  get hostname() { URLPattern.#check(this, 'hostname'); return this.#components.hostname.patternString; }
  get port() { URLPattern.#check(this, 'port'); return this.#components.port.patternString; }
  get pathname() { URLPattern.#check(this, 'pathname'); return this.#components.pathname.patternString; }
  get search() { URLPattern.#check(this, 'search'); return this.#components.search.patternString; }
  get hash() { URLPattern.#check(this, 'hash'); return this.#components.hash.patternString; }
  get hasRegExpGroups() {
    URLPattern.#check(this, 'hasRegExpGroups');
    return components.some((c) => this.#components[c].hasRegExpGroups);
  }
}
webidl.configureInterface(URLPattern);

defineGlobal('URLPattern', URLPattern);

ObjectAssign(internal, { URLPattern });
