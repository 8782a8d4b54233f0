// 20_timers.js: setTimeout/setInterval/clear* (HTML §8.6) on one libuv timer per isolate,
// queueMicrotask, reportError. Timers are kept in a binary heap ordered by deadline, then by
// creation order; binding.timerArm(ms) points the libuv timer at the earliest one and the
// runtime calls internal.runTimers() when it fires.
//
// A tenant must not be able to hold its worker thread with timers:
// - A pass runs only the timers that were due when it began and existed then; a timer made or
//   re-armed during the pass waits for the next loop turn, after the loop polled for I/O
//   (the runtime arms libuv with at least 1 ms from inside a pass).
// - Nested timers are clamped to 4 ms beyond nesting level 5 (HTML §8.6 timer
//   initialization steps 5 and 10), intervals' repetitions included.
// - A timer belongs to the request whose JS made it (binding.currentRequest(); -1 outside
//   any request: module code, shutdown events). Its callback and the microtasks it causes are
//   charged to that request's CPU budget (binding.timerEnter), and once that request has ended
//   (its response sent and waitUntil work settled) or was stopped, its timers are dropped
//   when they come due: what a request leaves behind is cancelled with it.
// - Timers of no request share a background budget of cpu_ms per second; past it they wait.
'use strict';

const {
  ArrayPrototypePop, ArrayPrototypePush, FunctionPrototypeCall, MathMax, Number, NumberIsNaN,
  PromisePrototypeThen, PromiseResolve, ReflectApply, TypeError, ObjectAssign,
} = primordials;
const { defineGlobal, reportUncaught } = internal;

const indirectEval = globalThis.eval; // global scope, as a timer's script runs
const heap = [];
let nCancelled = 0; // cancelled timers still in the heap
// Active timers by slot. A timer's id is its slot + 1 plus its slot's reuse count times
// kSlots, so a stale id never reaches a later timer in the same slot. An array rather than an
// id -> timer Map: a long-lived Map's replaced tables stay linked from the old one, which
// keeps every timer (and what its callback reaches) alive through scavenges until a full GC.
const kSlots = 2 ** 24;
const kMaxReuse = 2 ** 28; // ids stay below 2^53
const bySlot = [];
const freeSlots = [];
let nextSeq = 0;
let armedDeadline = Infinity;
let runningNesting = 0; // the nesting level of the timer whose callback runs (0: none)
const NO_REQUEST = -1;

function before(a, b) {
  return a.deadline < b.deadline || (a.deadline === b.deadline && a.seq < b.seq);
}

// Not a destructuring swap: that goes through the array iterator, which an app may replace.
function swap(i, j) {
  const t = heap[i];
  heap[i] = heap[j];
  heap[j] = t;
}

function push(t) {
  ArrayPrototypePush(heap, t);
  let i = heap.length - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (!before(heap[i], heap[parent])) break;
    swap(i, parent);
    i = parent;
  }
}

function pop() {
  const top = heap[0];
  if (top.cancelled) nCancelled--;
  const last = ArrayPrototypePop(heap);
  if (heap.length > 0) {
    heap[0] = last;
    siftDown(0);
  }
  return top;
}

function siftDown(i) {
  for (;;) {
    const l = 2 * i + 1, r = l + 1;
    let m = i;
    if (l < heap.length && before(heap[l], heap[m])) m = l;
    if (r < heap.length && before(heap[r], heap[m])) m = r;
    if (m === i) return;
    swap(i, m);
    i = m;
  }
}

// Drops cancelled timers from the heap once they are most of it: a cancelled timer waits
// there for its deadline otherwise, and an app that clears long timeouts (a fetch deadline per
// request) would pile them up.
function compact() {
  let n = 0;
  for (let i = 0; i < heap.length; i++) {
    if (!heap[i].cancelled) heap[n++] = heap[i];
  }
  heap.length = n;
  nCancelled = 0;
  for (let i = (n >> 1) - 1; i >= 0; i--) siftDown(i);
}

function activate(t) {
  let entry;
  if (freeSlots.length > 0) {
    entry = bySlot[ArrayPrototypePop(freeSlots)];
    entry.reuse++;
  } else {
    entry = { slot: bySlot.length, reuse: 0, timer: null };
    ArrayPrototypePush(bySlot, entry);
  }
  entry.timer = t;
  t.slot = entry.slot;
  t.id = entry.reuse * kSlots + entry.slot + 1;
}

function deactivate(t) {
  const entry = bySlot[t.slot];
  entry.timer = null;
  if (entry.reuse + 1 < kMaxReuse) ArrayPrototypePush(freeSlots, t.slot);
}

function activeTimer(id) {
  if (!(id >= 1 && id < 2 ** 53)) return null;
  const slot = (id - 1) % kSlots;
  const entry = slot < bySlot.length ? bySlot[slot] : undefined;
  return entry !== undefined && entry.timer !== null && entry.timer.id === id ? entry.timer : null;
}

function arm() {
  // Cancelled timers stay in the heap until they reach the top; drop them here.
  while (heap.length > 0 && heap[0].cancelled) pop();
  if (heap.length === 0) {
    if (armedDeadline !== Infinity) binding.timerStop();
    armedDeadline = Infinity;
    return;
  }
  const deadline = heap[0].deadline;
  if (deadline !== armedDeadline) {
    armedDeadline = deadline;
    binding.timerArm(MathMax(0, deadline - binding.now()));
  }
}

function schedule(callback, delay, args, repeat, name) {
  if (typeof callback !== 'function') {
    // HTML's TimerHandler may be a string: compiled as a script when the timer fires.
    const code = String(callback);
    callback = () => indirectEval(code);
  }
  delay = Number(delay);
  if (NumberIsNaN(delay) || delay < 0) delay = 0;
  if (repeat && delay < 1) delay = 1; // as Node and Deno: an interval of 0 runs every 1 ms
  const nesting = runningNesting + 1;
  if (nesting > 5 && delay < 4) delay = 4;
  const t = { id: 0, slot: 0, deadline: binding.now() + delay, seq: nextSeq++, callback, args,
    delay, repeat, cancelled: false, nesting, owner: binding.currentRequest() };
  activate(t);
  push(t);
  arm();
  return t.id;
}

function clear(id) {
  const t = activeTimer(Number(id));
  if (t === null) return;
  t.cancelled = true;
  t.callback = t.args = null; // what it would have run goes now, not at its deadline
  deactivate(t);
  if (++nCancelled > 64 && nCancelled * 2 > heap.length) compact();
  arm();
}

function runTimers() {
  armedDeadline = Infinity;
  const now = binding.now();
  const endSeq = nextSeq; // timers made or re-armed from here on wait for the next pass
  let owner; // the request whose segment runs (undefined: none entered yet)
  while (heap.length > 0 &&
         (heap[0].cancelled || (heap[0].deadline <= now && heap[0].seq < endSeq))) {
    const t = pop();
    if (t.cancelled) continue;
    // Timers of no request are checked one by one against their background budget.
    if (t.owner !== owner || owner === NO_REQUEST) {
      owner = t.owner;
      const entered = binding.timerEnter(owner);
      if (entered !== true) {
        if (entered === false) {
          // Its request has ended or was stopped: the timer goes with it.
          t.cancelled = true;
          deactivate(t);
        } else {
          // No request pays for it and the app's background budget is spent: later.
          t.deadline = now + entered;
          t.seq = nextSeq++;
          push(t);
        }
        owner = NO_REQUEST;
        continue;
      }
    }
    if (t.repeat) {
      t.nesting++;
      if (t.nesting > 5 && t.delay < 4) t.delay = 4;
      t.deadline = MathMax(now, t.deadline + t.delay);
      t.seq = nextSeq++;
      push(t);
    } else {
      deactivate(t);
    }
    runningNesting = t.nesting;
    try {
      ReflectApply(t.callback, globalThis, t.args);
    } catch (err) {
      reportUncaught(err);
    }
    binding.runMicrotasks();
    runningNesting = 0;
  }
  if (owner !== undefined && owner !== NO_REQUEST) binding.timerEnter(NO_REQUEST);
  arm();
}

defineGlobal('setTimeout', function setTimeout(callback, delay = 0, ...args) {
  return schedule(callback, delay, args, false, 'setTimeout');
});
defineGlobal('setInterval', function setInterval(callback, delay = 0, ...args) {
  return schedule(callback, delay, args, true, 'setInterval');
});
defineGlobal('clearTimeout', function clearTimeout(id) { clear(id); });
defineGlobal('clearInterval', function clearInterval(id) { clear(id); });

const resolved = PromiseResolve(undefined);
defineGlobal('queueMicrotask', function queueMicrotask(callback) {
  if (typeof callback !== 'function') {
    throw new TypeError('queueMicrotask: the callback must be a function');
  }
  PromisePrototypeThen(resolved, () => {
    try {
      FunctionPrototypeCall(callback, undefined);
    } catch (err) {
      reportUncaught(err);
    }
  });
});
defineGlobal('reportError', function reportError(err) {
  if (arguments.length === 0) throw new TypeError('reportError: 1 argument required');
  reportUncaught(err);
});

ObjectAssign(internal, {
  runTimers,
  // For built-ins that queue a task or a microtask: not the globals, which an app may
  // replace. The callback must not throw (a throw is an unhandled rejection).
  setTimeout: (callback, delay) => schedule(callback, delay, [], false, 'setTimeout'),
  queueMicrotask: (callback) => { PromisePrototypeThen(resolved, callback); },
});
