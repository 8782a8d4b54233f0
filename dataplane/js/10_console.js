// 10_console.js: shared helpers (internal.defineGlobal, internal.inspect) and `console`,
// whose output goes to the runtime log tagged with the app's name (binding.log).
'use strict';

const {
  ArrayIsArray, ArrayPrototypeJoin, ArrayPrototypePush, DatePrototypeGetTime,
  DatePrototypeToISOString, ErrorPrototypeToString, FunctionPrototypeToString, JSONStringify,
  MapPrototypeForEach, SetPrototypeForEach, NumberIsNaN, ObjectGetPrototypeOf, ObjectIs, ObjectKeys,
  ObjectPrototypeHasOwnProperty, ReflectGetOwnPropertyDescriptor, ReflectOwnKeys,
  RegExpPrototypeToString, RegExpPrototypeTest, SafeMap, SafeSet, String,
  StringPrototypeIncludes, StringPrototypeReplace, StringPrototypeSlice, SymbolPrototypeToString,
  TypedArrayPrototypeGetSymbolToStringTag, TypedArrayPrototypeGetLength,
  ArrayBufferPrototypeGetByteLength, globalThis, Error, Date, RegExp, ArrayBuffer, Map, Set,
  Promise, DataView, Number, MathTrunc, ArrayBufferIsView, ErrorCaptureStackTrace, Symbol,
  ArrayPrototypeUnshift, StringPrototypeRepeat, NumberPrototypeToFixed, ObjectCreate,
  ObjectAssign, ObjectPrototype, ObjectDefineProperty, SymbolToStringTag, MathMax, MathFloor,
} = primordials;
// Late (read as internal.x when called; given by a later file): webidl.

const defineGlobal = (name, value, enumerable = false) => {
  // WebIDL: interface objects and namespaces are writable, configurable, non-enumerable.
  Reflect.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable });
};

const kInspect = Symbol('nano.inspect');

const kMaxArrayItems = 100;
const kMaxStringInArray = 10000;
const identifierRe = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function quote(s) {
  s = StringPrototypeReplace(s, /[\\']/g, '\\$&');
  s = StringPrototypeReplace(s, /\n/g, '\\n');
  return "'" + s + "'";
}

function constructorName(obj) {
  let proto = obj;
  while (proto !== null) {
    const desc = ReflectGetOwnPropertyDescriptor(proto, 'constructor');
    if (desc !== undefined && typeof desc.value === 'function' && desc.value.name !== '') {
      return desc.value.name;
    }
    proto = ObjectGetPrototypeOf(proto);
  }
  return null;
}

function formatKey(key) {
  if (typeof key === 'symbol') return '[' + SymbolPrototypeToString(key) + ']';
  return RegExpPrototypeTest(identifierRe, key) ? key : quote(key);
}

function join(prefix, parts, open, close, indent) {
  if (parts.length === 0) return prefix + open + close;
  const single = prefix + open + ' ' + ArrayPrototypeJoin(parts, ', ') + ' ' + close;
  if (single.length <= 72 && !StringPrototypeIncludes(single, '\n')) return single;
  const pad = StringPrototypeRepeat('  ', indent + 1);
  return prefix + open + '\n' + pad + ArrayPrototypeJoin(parts, ',\n' + pad) + '\n' +
    StringPrototypeRepeat('  ', indent) + close;
}

function formatValue(value, depth, seen, indent, nested) {
  switch (typeof value) {
    case 'string':
      return nested ? quote(value.length > kMaxStringInArray
        ? StringPrototypeSlice(value, 0, kMaxStringInArray) + '...' : value) : value;
    case 'number':
      return ObjectIs(value, -0) ? '-0' : String(value);
    case 'bigint':
      return String(value) + 'n';
    case 'boolean':
    case 'undefined':
      return String(value);
    case 'symbol':
      return SymbolPrototypeToString(value);
    case 'function': {
      const src = FunctionPrototypeToString(value);
      const kind = StringPrototypeSlice(src, 0, 5) === 'class' ? 'class' : 'Function';
      return value.name ? `[${kind}: ${value.name}]` : `[${kind} (anonymous)]`;
    }
  }
  if (value === null) return 'null';
  if (seen.has(value)) return '[Circular]';
  if (typeof value[kInspect] === 'function') {
    return value[kInspect]((v) => formatValue(v, depth - 1, seen, indent, true));
  }
  if (value instanceof Error) return formatError(value);
  if (value instanceof Date) {
    return NumberIsNaN(DatePrototypeGetTime(value)) ? 'Invalid Date' : DatePrototypeToISOString(value);
  }
  if (value instanceof RegExp) return RegExpPrototypeToString(value);
  if (value instanceof ArrayBuffer) {
    return `ArrayBuffer { byteLength: ${ArrayBufferPrototypeGetByteLength(value)} }`;
  }
  if (depth < 0) return ArrayIsArray(value) ? '[Array]' : `[${constructorName(value) || 'Object'}]`;

  seen.add(value);
  try {
    const parts = [];
    const typedTag = ArrayBufferIsView(value) && !(value instanceof DataView)
      ? TypedArrayPrototypeGetSymbolToStringTag(value) : undefined;
    if (ArrayIsArray(value) || typedTag !== undefined) {
      const length = typedTag !== undefined ? TypedArrayPrototypeGetLength(value) : value.length;
      const shown = length > kMaxArrayItems ? kMaxArrayItems : length;
      for (let i = 0; i < shown; i++) {
        ArrayPrototypePush(parts, ObjectPrototypeHasOwnProperty(value, i)
          ? formatValue(value[i], depth - 1, seen, indent + 1, true) : '<empty>');
      }
      if (length > shown) ArrayPrototypePush(parts, `... ${length - shown} more items`);
      const prefix = typedTag !== undefined ? `${typedTag}(${length}) ` : '';
      return join(prefix, parts, '[', ']', indent);
    }
    // Walked with forEach and index loops, never an iterator an app may have replaced.
    if (value instanceof Map) {
      MapPrototypeForEach(value, (v, k) => {
        ArrayPrototypePush(parts, formatValue(k, depth - 1, seen, indent + 1, true) + ' => ' +
          formatValue(v, depth - 1, seen, indent + 1, true));
      });
      return join(`Map(${parts.length}) `, parts, '{', '}', indent);
    }
    if (value instanceof Set) {
      SetPrototypeForEach(value, (v) => {
        ArrayPrototypePush(parts, formatValue(v, depth - 1, seen, indent + 1, true));
      });
      return join(`Set(${parts.length}) `, parts, '{', '}', indent);
    }
    if (value instanceof Promise) return 'Promise {}';
    const keys = ReflectOwnKeys(value);
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i];
      const desc = ReflectGetOwnPropertyDescriptor(value, key);
      if (!desc.enumerable) continue;
      const shown = 'value' in desc
        ? formatValue(desc.value, depth - 1, seen, indent + 1, true)
        : desc.get ? (desc.set ? '[Getter/Setter]' : '[Getter]') : '[Setter]';
      ArrayPrototypePush(parts, formatKey(key) + ': ' + shown);
    }
    const proto = ObjectGetPrototypeOf(value);
    const name = proto === null ? '[Object: null prototype]' : constructorName(value);
    const prefix = name === 'Object' ? '' : (name || 'Object') + ' ';
    return join(prefix, parts, '{', '}', indent);
  } finally {
    seen.delete(value);
  }
}

function formatError(err) {
  let stack;
  try {
    stack = err.stack;
  } catch {
    stack = undefined;
  }
  if (typeof stack === 'string' && stack !== '') return stack;
  try {
    return ErrorPrototypeToString(err);
  } catch {
    return '[Error]';
  }
}

function inspect(value, depth = 2) {
  return formatValue(value, depth, new SafeSet(), 0, false);
}

// Console §2.2.1 Formatter: %s %d %i %f %o %O %j %c %% in a leading string.
function format(args) {
  let first = args[0];
  let rest = 1;
  let out = '';
  if (typeof first === 'string' && args.length > 1) {
    out = StringPrototypeReplace(first, /%([sdifoOjc%])/g, (m, spec) => {
      if (spec === '%') return '%';
      if (rest >= args.length) return m;
      const arg = args[rest++];
      switch (spec) {
        case 's': return typeof arg === 'string' ? arg : inspect(arg, 1);
        case 'd':
        case 'i':
          if (typeof arg === 'bigint') return String(arg) + 'n';
          if (typeof arg === 'symbol') return 'NaN';
          return String(spec === 'i' ? MathTrunc(Number(arg)) : Number(arg));
        case 'f': return typeof arg === 'symbol' ? 'NaN' : String(Number(arg));
        case 'j':
          try { return JSONStringify(arg); } catch { return '[Circular]'; }
        case 'c': return '';
        default: return inspect(arg, 4);
      }
    });
  } else {
    out = typeof first === 'string' ? first : inspect(first);
  }
  for (let i = rest; i < args.length; i++) {
    const a = args[i];
    out += ' ' + (typeof a === 'string' ? a : inspect(a));
  }
  return out;
}

const LEVEL_DEBUG = 0, LEVEL_INFO = 1, LEVEL_WARN = 2, LEVEL_ERROR = 3;
const log = binding.log;
let groupIndent = '';

function emit(level, method, args) {
  let text = args.length === 0 ? '' : format(args);
  if (groupIndent !== '') text = groupIndent + StringPrototypeReplace(text, /\n/g, '\n' + groupIndent);
  log(level, method, text);
}

const counts = new SafeMap();
const timers = new SafeMap();

// A WebIDL namespace: own enumerable operations, an empty object as [[Prototype]] whose
// [[Prototype]] is Object.prototype, and @@toStringTag "console".
const console = ObjectCreate(ObjectCreate(ObjectPrototype));
ObjectAssign(console, {
  log(...args) { emit(LEVEL_INFO, 'log', args); },
  info(...args) { emit(LEVEL_INFO, 'info', args); },
  debug(...args) { emit(LEVEL_DEBUG, 'debug', args); },
  warn(...args) { emit(LEVEL_WARN, 'warn', args); },
  error(...args) { emit(LEVEL_ERROR, 'error', args); },
  trace(...args) {
    const err = { name: 'Trace', message: args.length ? format(args) : '' };
    ErrorCaptureStackTrace(err, console.trace);
    emit(LEVEL_ERROR, 'trace', [err.stack]);
  },
  assert(condition = false, ...args) {
    if (condition) return;
    if (typeof args[0] === 'string') args[0] = 'Assertion failed: ' + args[0];
    else ArrayPrototypeUnshift(args, 'Assertion failed');
    emit(LEVEL_ERROR, 'assert', args);
  },
  dir(item = undefined, options = undefined) { emit(LEVEL_INFO, 'dir', [inspect(item)]); },
  dirxml(...args) { emit(LEVEL_INFO, 'dirxml', args); },
  table(tabularData = undefined, properties = undefined) {
    // sequence<DOMString>: the app's own iterable is iterated here, as WebIDL says.
    const columns = properties === undefined ? undefined
      : internal.webidl.iterable(properties, (v) => internal.webidl.DOMString(v, 'Column name'),
        'console.table: properties');
    emit(LEVEL_INFO, 'table', [renderTable(tabularData, columns)]);
  },
  clear() {
    // Output is a log stream here, not a terminal: clearing is resetting the group indent.
    groupIndent = '';
  },
  count(label = 'default') {
    label = String(label);
    const n = (counts.get(label) || 0) + 1;
    counts.set(label, n);
    emit(LEVEL_INFO, 'count', [`${label}: ${n}`]);
  },
  countReset(label = 'default') { counts.delete(String(label)); },
  group(...args) {
    if (args.length) emit(LEVEL_INFO, 'group', args);
    groupIndent += '  ';
  },
  groupEnd() { groupIndent = StringPrototypeSlice(groupIndent, 2); },
  time(label = 'default') { timers.set(String(label), binding.now()); },
  timeLog(label = 'default', ...args) {
    label = String(label);
    const start = timers.get(label);
    if (start === undefined) return emit(LEVEL_WARN, 'timeLog', [`No such label '${label}'`]);
    ArrayPrototypeUnshift(args, `${label}: ${NumberPrototypeToFixed(binding.now() - start, 3)}ms`);
    emit(LEVEL_INFO, 'timeLog', args);
  },
  timeEnd(label = 'default') {
    label = String(label);
    const start = timers.get(label);
    if (start === undefined) return emit(LEVEL_WARN, 'timeEnd', [`No such label '${label}'`]);
    timers.delete(label);
    emit(LEVEL_INFO, 'timeEnd', [`${label}: ${NumberPrototypeToFixed(binding.now() - start, 3)}ms`]);
  },
});
console.groupCollapsed = console.group;
ObjectDefineProperty(console, SymbolToStringTag, { value: 'console', configurable: true });

// console.table: rows are the data's own enumerable entries; columns are the union of the
// rows' keys (or `properties`), plus "Values" for rows that are primitives.
function renderTable(data, properties) {
  if (data === null || typeof data !== 'object') return format([data]);
  const short = (v) => (typeof v === 'string' ? v : inspect(v));
  const entries = [];
  if (data instanceof Map) {
    MapPrototypeForEach(data, (v, k) => ArrayPrototypePush(entries, [k, v]));
  } else {
    const dataKeys = ObjectKeys(data);
    for (let i = 0; i < dataKeys.length; i++) ArrayPrototypePush(entries, [dataKeys[i], data[dataKeys[i]]]);
  }
  const rows = [];
  const columns = [];
  const seen = new SafeSet();
  let hasValues = false;
  for (let i = 0; i < entries.length; i++) {
    const row = entries[i][1];
    const cells = new SafeMap();
    if (row !== null && typeof row === 'object') {
      const rowKeys = properties ?? ObjectKeys(row);
      for (let j = 0; j < rowKeys.length; j++) {
        const k = rowKeys[j];
        if (!seen.has(k)) { seen.add(k); ArrayPrototypePush(columns, k); }
        if (k in row) cells.set(k, short(row[k]));
      }
    } else {
      hasValues = true;
      cells.set('\0values', short(row));
    }
    ArrayPrototypePush(rows, [short(entries[i][0]), cells]);
  }
  const header = ['(index)'];
  const keys = [];
  for (let i = 0; i < columns.length; i++) {
    ArrayPrototypePush(header, columns[i]);
    ArrayPrototypePush(keys, columns[i]);
  }
  if (hasValues) {
    ArrayPrototypePush(header, 'Values');
    ArrayPrototypePush(keys, '\0values');
  }
  const table = [];
  for (let i = 0; i < rows.length; i++) {
    const cells = rows[i][1];
    const line = [rows[i][0]];
    for (let j = 0; j < keys.length; j++) ArrayPrototypePush(line, cells.get(keys[j]) ?? '');
    ArrayPrototypePush(table, line);
  }
  const widths = [];
  for (let c = 0; c < header.length; c++) {
    let w = header[c].length;
    for (let r = 0; r < table.length; r++) w = MathMax(w, table[r][c].length);
    ArrayPrototypePush(widths, w + 2);
  }
  const pad = (text, w) => {
    const left = MathFloor((w - text.length) / 2);
    return StringPrototypeRepeat(' ', left) + text + StringPrototypeRepeat(' ', w - text.length - left);
  };
  const rule = (l, m, r) => {
    let out = l;
    for (let c = 0; c < widths.length; c++) out += (c ? m : '') + StringPrototypeRepeat('─', widths[c]);
    return out + r;
  };
  const row = (cells) => {
    let out = '│';
    for (let c = 0; c < cells.length; c++) out += pad(cells[c], widths[c]) + '│';
    return out;
  };
  const lines = [rule('┌', '┬', '┐'), row(header), rule('├', '┼', '┤')];
  for (let r = 0; r < table.length; r++) ArrayPrototypePush(lines, row(table[r]));
  ArrayPrototypePush(lines, rule('└', '┴', '┘'));
  return ArrayPrototypeJoin(lines, '\n');
}
defineGlobal('console', console);

ObjectAssign(internal, { defineGlobal, kInspect, inspect, formatError, format });
