// 20_timers.js: setTimeout/setInterval/clear* (HTML §8.6) on one libuv timer per isolate,
// queueMicrotask, reportError. Timers are kept in a binary heap ordered by deadline, then by
// creation order; binding.timerArm(ms) points the libuv timer at the earliest one and the
// runtime calls internal.runTimers() when it fires.
'use strict';

const {
  ArrayPrototypePop, ArrayPrototypePush, FunctionPrototypeCall, MathMax, Number, NumberIsNaN,
  PromisePrototypeThen, PromiseResolve, ReflectApply, SafeMap, TypeError,
} = primordials;

const indirectEval = globalThis.eval; // global scope, as a timer's script runs
const heap = [];
const active = new SafeMap(); // id -> timer
let nextId = 1;
let nextSeq = 0;
let armedDeadline = Infinity;

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
  const last = ArrayPrototypePop(heap);
  if (heap.length > 0) {
    heap[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < heap.length && before(heap[l], heap[m])) m = l;
      if (r < heap.length && before(heap[r], heap[m])) m = r;
      if (m === i) break;
      swap(i, m);
      i = m;
    }
  }
  return top;
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
  if (repeat && delay < 1) delay = 1; // a zero interval would spin the loop
  const id = nextId++;
  const t = { id, deadline: binding.now() + delay, seq: nextSeq++, callback, args, delay, repeat,
    cancelled: false };
  active.set(id, t);
  push(t);
  arm();
  return id;
}

function clear(id) {
  const t = active.get(Number(id));
  if (t === undefined) return;
  t.cancelled = true;
  active.delete(t.id);
  arm();
}

internal.runTimers = function runTimers() {
  armedDeadline = Infinity;
  const now = binding.now();
  while (heap.length > 0 && (heap[0].cancelled || heap[0].deadline <= now)) {
    const t = pop();
    if (t.cancelled) continue;
    if (t.repeat) {
      t.deadline = MathMax(now, t.deadline + t.delay);
      t.seq = nextSeq++;
      push(t);
    } else {
      active.delete(t.id);
    }
    try {
      ReflectApply(t.callback, globalThis, t.args);
    } catch (err) {
      internal.reportUncaught(err);
    }
    binding.runMicrotasks();
  }
  arm();
};


// For built-ins that queue a task: not the global, which an app may replace.
internal.setTimeout = (callback, delay) => schedule(callback, delay, [], false, 'setTimeout');
internal.defineGlobal('setTimeout', function setTimeout(callback, delay = 0, ...args) {
  return schedule(callback, delay, args, false, 'setTimeout');
});
internal.defineGlobal('setInterval', function setInterval(callback, delay = 0, ...args) {
  return schedule(callback, delay, args, true, 'setInterval');
});
internal.defineGlobal('clearTimeout', function clearTimeout(id) { clear(id); });
internal.defineGlobal('clearInterval', function clearInterval(id) { clear(id); });

const resolved = PromiseResolve(undefined);
internal.defineGlobal('queueMicrotask', function queueMicrotask(callback) {
  if (typeof callback !== 'function') {
    throw new TypeError('queueMicrotask: the callback must be a function');
  }
  PromisePrototypeThen(resolved, () => {
    try {
      FunctionPrototypeCall(callback, undefined);
    } catch (err) {
      internal.reportUncaught(err);
    }
  });
});
internal.defineGlobal('reportError', function reportError(err) {
  if (arguments.length === 0) throw new TypeError('reportError: 1 argument required');
  internal.reportUncaught(err);
});
