// 95_test.js: the `nano:test` module and the runner behind `nano-dp test` (docs/testing.md).
//
// A test file is an ES module. It registers tests with `test(name, fn)` from `nano:test`
// and/or exports functions whose names start with `test`; each fn may be async. Registered
// tests run first, in registration order, then exported ones in export-name order.
'use strict';

const {
  ArrayIsArray, ArrayPrototypePush, DatePrototypeGetTime, Error, MapPrototypeGet,
  MapPrototypeHas, ObjectGetPrototypeOf, ObjectIs, ObjectKeys, Promise, PromisePrototypeThen,
  ReflectApply, RegExpPrototypeExec, SafeMap, SafeSet, StringPrototypeIncludes,
  StringPrototypeSplit, StringPrototypeStartsWith, TypeError, NumberPrototypeToFixed, ObjectAssign,
} = primordials;
const { inspect, formatError, urlSimpleParse, urlInternals } = internal;
// Late (read as internal.x when called): env (set by the runtime).

const registry = [];

function test(name, fn) {
  if (typeof name === 'function') { fn = name; name = fn.name || '(anonymous)'; }
  if (typeof fn !== 'function') throw new TypeError(`test(${name}): the test must be a function`);
  ArrayPrototypePush(registry, { name: String(name), fn, skip: false });
}
test.skip = function skip(name, fn) {
  ArrayPrototypePush(registry, { name: String(name), fn, skip: true });
};

class AssertionError extends Error {
  constructor(message) {
    super(message);
    this.name = 'AssertionError';
  }
}

const show = (v) => inspect(v);

function isDeepEqual(a, b, seen) {
  if (ObjectIs(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (ObjectGetPrototypeOf(a) !== ObjectGetPrototypeOf(b)) return false;
  if (seen.has(a)) return seen.get(a) === b;
  seen.set(a, b);
  if (a instanceof Date) return ObjectIs(DatePrototypeGetTime(a), DatePrototypeGetTime(b));
  if (a instanceof RegExp) return String(a) === String(b);
  if (a instanceof ArrayBuffer) {
    return isDeepEqual(new Uint8Array(a), new Uint8Array(b), seen);
  }
  if (ArrayBuffer.isView(a)) {
    if (a.byteLength !== b.byteLength || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!ObjectIs(a[i], b[i])) return false;
    return true;
  }
  if (a instanceof Map) {
    if (a.size !== b.size) return false;
    for (const [k, v] of a) {
      if (!MapPrototypeHas(b, k) || !isDeepEqual(v, MapPrototypeGet(b, k), seen)) return false;
    }
    return true;
  }
  if (a instanceof Set) {
    if (a.size !== b.size) return false;
    for (const v of a) if (!b.has(v)) return false;
    return true;
  }
  if (a instanceof Error && (a.message !== b.message || a.name !== b.name)) return false;
  if (ArrayIsArray(a) && a.length !== b.length) return false;
  const ka = ObjectKeys(a);
  const kb = ObjectKeys(b);
  if (ka.length !== kb.length) return false;
  for (const k of ka) {
    if (!Object.prototype.hasOwnProperty.call(b, k) || !isDeepEqual(a[k], b[k], seen)) return false;
  }
  return true;
}

const suffix = (msg) => (msg ? `: ${msg}` : '');

function assert(value, msg) {
  if (!value) throw new AssertionError(msg || `expected a truthy value, got ${show(value)}`);
}
function assertEquals(actual, expected, msg) {
  if (!isDeepEqual(actual, expected, new SafeMap())) {
    throw new AssertionError(`values differ${suffix(msg)}\n    actual:   ${show(actual)}\n` +
      `    expected: ${show(expected)}`);
  }
}
function assertNotEquals(actual, expected, msg) {
  if (isDeepEqual(actual, expected, new SafeMap())) {
    throw new AssertionError(`expected a value other than ${show(expected)}${suffix(msg)}`);
  }
}
function assertStrictEquals(actual, expected, msg) {
  if (!ObjectIs(actual, expected)) {
    throw new AssertionError(`values are not identical${suffix(msg)}\n    actual:   ` +
      `${show(actual)}\n    expected: ${show(expected)}`);
  }
}
function assertMatch(text, re, msg) {
  if (typeof text !== 'string' || RegExpPrototypeExec(re, text) === null) {
    throw new AssertionError(`${show(text)} does not match ${re}${suffix(msg)}`);
  }
}
function checkError(err, ErrorClass, includes, what) {
  if (ErrorClass !== undefined && !(err instanceof ErrorClass)) {
    throw new AssertionError(`${what} ${show(err)}, expected an instance of ${ErrorClass.name}`);
  }
  if (includes !== undefined && !StringPrototypeIncludes(String(err?.message), includes)) {
    throw new AssertionError(`${what} ${show(err)}, expected its message to include ` +
      `${show(includes)}`);
  }
  return err;
}
function assertThrows(fn, ErrorClass, includes) {
  try {
    fn();
  } catch (err) {
    return checkError(err, ErrorClass, includes, 'threw');
  }
  throw new AssertionError('expected the function to throw');
}
async function assertRejects(fnOrPromise, ErrorClass, includes) {
  try {
    await (typeof fnOrPromise === 'function' ? fnOrPromise() : fnOrPromise);
  } catch (err) {
    return checkError(err, ErrorClass, includes, 'rejected with');
  }
  throw new AssertionError('expected the promise to reject');
}
function fail(msg) {
  throw new AssertionError(msg || 'failed');
}

const nanoTest = {
  test, assert, assertEquals, assertNotEquals, assertStrictEquals, assertMatch, assertThrows,
  assertRejects, fail, AssertionError,
  // Read when a test module imports it, after the runtime has set the env.
  get env() { return internal.env; },
  // The URL parser's two ways (records, or null/FAILURE), so tests can compare the fast
  // path with the state machine on the same input.
  urlParsers: { simple: urlSimpleParse, slow: urlInternals.parseSlow,
    FAILURE: urlInternals.FAILURE },
};

const out = (text) => binding.print(1, text);

// Runs fn with a deadline; resolves to undefined or rejects with the test's error.
function runOne(fn, timeoutMs) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new AssertionError(`timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    const settle = (f) => (v) => { clearTimeout(timer); f(v); };
    try {
      PromisePrototypeThen(Promise.resolve(ReflectApply(fn, undefined, [])),
        settle(resolve), settle(reject));
    } catch (err) {
      settle(reject)(err);
    }
  });
}

function describeFailure(err) {
  const text = err instanceof Error ? formatError(err) : `thrown: ${show(err)}`;
  const lines = StringPrototypeSplit(text, '\n');
  let body = '';
  for (const line of lines) {
    // The runner's own frames say nothing about the test.
    if (StringPrototypeIncludes(line, 'nano:internal/') || StringPrototypeIncludes(line, 'new Promise (<anonymous>)')) continue;
    body += `\n       ${line}`;
  }
  return body;
}

async function runTests(ns, path, filter, timeoutMs) {
  const tests = [...registry];
  const seen = new SafeSet(tests.map((t) => t.fn));
  for (const key of ObjectKeys(ns)) {
    const fn = ns[key];
    if (!StringPrototypeStartsWith(key, 'test') || typeof fn !== 'function' || seen.has(fn)) continue;
    if (fn === test) continue;
    ArrayPrototypePush(tests, { name: key, fn, skip: false });
  }
  const counts = { passed: 0, failed: 0, skipped: 0 };
  out(`${path}\n`);
  if (tests.length === 0) {
    out('  (no tests: register them with test() from "nano:test" or export test* functions)\n');
  }
  for (const t of tests) {
    if (filter !== undefined && !StringPrototypeIncludes(t.name, filter)) continue;
    if (t.skip) {
      counts.skipped++;
      out(`  skip ${t.name}\n`);
      continue;
    }
    const start = binding.now();
    try {
      await runOne(t.fn, timeoutMs);
      counts.passed++;
      out(`  ok   ${t.name} (${NumberPrototypeToFixed(binding.now() - start, 1)} ms)\n`);
    } catch (err) {
      counts.failed++;
      out(`  FAIL ${t.name}${describeFailure(err)}\n`);
    }
  }
  return counts;
}

ObjectAssign(internal, {
  builtinModules: { 'nano:test': nanoTest }, // what `import 'nano:...'` finds (modules.cc)
  runTests,
});
