// 24_performance.js: `performance` (High Resolution Time: now, timeOrigin, toJSON) with User
// Timing Level 3 (mark, measure, getEntries*, clear*) and PerformanceObserver for the
// entry types this runtime produces ("mark", "measure").
'use strict';

const {
  ArrayPrototypeFilter, ArrayPrototypePush, ArrayPrototypeSort, DateNow, ObjectFreeze,
  ReflectApply, SafeSet, TypeError, ArrayPrototypeSlice, ArrayPrototypeSplice,
  ArrayPrototypeIncludes, SetPrototypeForEach,
} = primordials;
const {
  webidl, DOMException, EventTarget, defineGlobal, onContextInit, reportUncaught,
  performanceNow: now,
} = internal;
// The wall-clock time of the isolate's time origin, in ms since the epoch: taken when the
// context starts serving its app, not when the snapshot was made.
let timeOrigin = 0;
onContextInit(() => { timeOrigin = DateNow() - now(); });

class PerformanceEntry {
  #name; #entryType; #startTime; #duration;
  constructor(key, name, entryType, startTime, duration) {
    webidl.illegalConstructor(key, 'PerformanceEntry');
    this.#name = name;
    this.#entryType = entryType;
    this.#startTime = startTime;
    this.#duration = duration;
  }
  static #check(e, what) {
    if (e === null || typeof e !== 'object' || !(#name in e)) throw webidl.illegalInvocation(`PerformanceEntry.${what}`);
  }
  get name() { PerformanceEntry.#check(this, 'name'); return this.#name; }
  get entryType() { PerformanceEntry.#check(this, 'entryType'); return this.#entryType; }
  get startTime() { PerformanceEntry.#check(this, 'startTime'); return this.#startTime; }
  get duration() { PerformanceEntry.#check(this, 'duration'); return this.#duration; }
  toJSON() {
    PerformanceEntry.#check(this, 'toJSON');
    return { name: this.#name, entryType: this.#entryType, startTime: this.#startTime, duration: this.#duration };
  }
}
webidl.configureInterface(PerformanceEntry);

class PerformanceMark extends PerformanceEntry {
  #detail;
  constructor(markName, markOptions = undefined) {
    webidl.argCount(arguments, 1, "Failed to construct 'PerformanceMark'");
    const name = webidl.DOMString(markName);
    const opts = webidl.dictionary(markOptions);
    let startTime;
    if (opts.startTime !== undefined) {
      startTime = webidl.double(opts.startTime, "Failed to construct 'PerformanceMark'");
      if (startTime < 0) {
        throw new TypeError("Failed to construct 'PerformanceMark': startTime cannot be negative");
      }
    } else {
      startTime = now();
    }
    const detail = opts.detail === undefined ? null : structuredClone(opts.detail);
    super(webidl.kIllegalConstructor, name, 'mark', startTime, 0);
    this.#detail = detail;
  }
  get detail() {
    if (!(this !== null && typeof this === 'object' && #detail in this)) throw webidl.illegalInvocation('PerformanceMark.detail');
    return this.#detail;
  }
  toJSON() {
    return { ...super.toJSON(), detail: this.#detail };
  }
}
webidl.configureInterface(PerformanceMark);

class PerformanceMeasure extends PerformanceEntry {
  #detail;
  constructor(key, name, start, duration, detail) {
    super(key, name, 'measure', start, duration);
    this.#detail = detail;
  }
  get detail() {
    if (!(this !== null && typeof this === 'object' && #detail in this)) throw webidl.illegalInvocation('PerformanceMeasure.detail');
    return this.#detail;
  }
  toJSON() {
    return { ...super.toJSON(), detail: this.#detail };
  }
}
webidl.configureInterface(PerformanceMeasure);

const supportedEntryTypes = ObjectFreeze(['mark', 'measure']);
const buffer = []; // the performance entry buffer: marks and measures, in insertion order
const observers = new SafeSet();

function queueEntry(entry) {
  ArrayPrototypePush(buffer, entry);
  SetPrototypeForEach(observers, (o) => enqueue(o, entry)); // no iterator an app may replace
}

function byStartTime(list) {
  return ArrayPrototypeSort(list, (a, b) => a.startTime - b.startTime);
}

class Performance extends EventTarget {
  constructor(key = undefined) {
    webidl.illegalConstructor(key, 'Performance');
    super();
  }
  now() { return now(); }
  get timeOrigin() { return timeOrigin; }
  toJSON() { return { timeOrigin }; }

  mark(markName, markOptions = undefined) {
    webidl.argCount(arguments, 1, "Failed to execute 'mark' on 'Performance'");
    const entry = new PerformanceMark(markName, markOptions);
    queueEntry(entry);
    return entry;
  }

  clearMarks(markName = undefined) {
    clearEntries('mark', markName);
  }

  // User Timing §3.1.3 measure().
  measure(measureName, startOrMeasureOptions = undefined, endMark = undefined) {
    webidl.argCount(arguments, 1, "Failed to execute 'measure' on 'Performance'");
    const name = webidl.DOMString(measureName);
    // (DOMString or PerformanceMeasureOptions): null and objects are the dictionary.
    const isDict = startOrMeasureOptions === null || typeof startOrMeasureOptions === 'object';
    const isOptions = isDict && startOrMeasureOptions !== null && (startOrMeasureOptions.start !== undefined ||
      startOrMeasureOptions.end !== undefined || startOrMeasureOptions.duration !== undefined ||
      startOrMeasureOptions.detail !== undefined);
    const context = "Failed to execute 'measure' on 'Performance'";
    let end, start, detail = null;
    if (isOptions) {
      const o = startOrMeasureOptions;
      if (endMark !== undefined) throw new TypeError(`${context}: options and an end mark cannot both be given`);
      if (o.start === undefined && o.end === undefined) {
        throw new TypeError(`${context}: the options need a start or an end`);
      }
      if (o.start !== undefined && o.duration !== undefined && o.end !== undefined) {
        throw new TypeError(`${context}: start, duration and end cannot all be given`);
      }
      if (o.end !== undefined) end = toTimestamp(o.end, context);
      else if (o.start !== undefined && o.duration !== undefined) {
        end = toTimestamp(o.start, context) + webidl.double(o.duration, context);
      } else end = now();
      if (o.start !== undefined) start = toTimestamp(o.start, context);
      else if (o.duration !== undefined && o.end !== undefined) {
        start = end - webidl.double(o.duration, context);
      } else start = 0;
      if (o.detail !== undefined) detail = structuredClone(o.detail);
    } else {
      end = endMark !== undefined ? toTimestamp(endMark, context) : now();
      start = startOrMeasureOptions !== undefined && !isDict
        ? toTimestamp(webidl.DOMString(startOrMeasureOptions), context) : 0;
    }
    const entry = new PerformanceMeasure(webidl.kIllegalConstructor, name, start, end - start, detail);
    queueEntry(entry);
    return entry;
  }

  clearMeasures(measureName = undefined) {
    clearEntries('measure', measureName);
  }

  getEntries() { return byStartTime(ArrayPrototypeSlice(buffer)); }
  getEntriesByType(type) {
    webidl.argCount(arguments, 1, "Failed to execute 'getEntriesByType' on 'Performance'");
    type = webidl.DOMString(type);
    return byStartTime(ArrayPrototypeFilter(buffer, (e) => e.entryType === type));
  }
  getEntriesByName(name, type = undefined) {
    webidl.argCount(arguments, 1, "Failed to execute 'getEntriesByName' on 'Performance'");
    name = webidl.DOMString(name);
    if (type !== undefined) type = webidl.DOMString(type);
    return byStartTime(ArrayPrototypeFilter(buffer,
      (e) => e.name === name && (type === undefined || e.entryType === type)));
  }
}
webidl.configureInterface(Performance);

// "convert a mark to a timestamp": a mark name (the latest mark of that name) or a time.
function toTimestamp(mark, context) {
  if (typeof mark === 'string') {
    for (let i = buffer.length - 1; i >= 0; i--) {
      if (buffer[i].entryType === 'mark' && buffer[i].name === mark) return buffer[i].startTime;
    }
    throw new DOMException(`${context}: the mark '${mark}' does not exist`, 'SyntaxError');
  }
  const t = webidl.double(mark, context);
  if (t < 0) throw new TypeError(`${context}: ${t} is a negative timestamp`);
  return t;
}

function clearEntries(type, name) {
  if (name !== undefined) name = webidl.DOMString(name);
  for (let i = buffer.length - 1; i >= 0; i--) {
    const e = buffer[i];
    if (e.entryType === type && (name === undefined || e.name === name)) ArrayPrototypeSplice(buffer, i, 1);
  }
}

class PerformanceObserverEntryList {
  #entries;
  constructor(key, entries) {
    webidl.illegalConstructor(key, 'PerformanceObserverEntryList');
    this.#entries = entries;
  }
  getEntries() { return byStartTime(ArrayPrototypeSlice(this.#entries)); }
  getEntriesByType(type) {
    type = webidl.DOMString(type);
    return byStartTime(ArrayPrototypeFilter(this.#entries, (e) => e.entryType === type));
  }
  getEntriesByName(name, type = undefined) {
    name = webidl.DOMString(name);
    return byStartTime(ArrayPrototypeFilter(this.#entries,
      (e) => e.name === name && (type === undefined || e.entryType === String(type))));
  }
}
webidl.configureInterface(PerformanceObserverEntryList);

class PerformanceObserver {
  #callback;
  #types = new SafeSet();
  #mode = null; // 'multiple' (entryTypes) or 'single' (type)
  #records = [];
  #scheduled = false;

  constructor(callback) {
    webidl.argCount(arguments, 1, "Failed to construct 'PerformanceObserver'");
    this.#callback = webidl.callbackFunction(callback, "Failed to construct 'PerformanceObserver'");
  }

  static get supportedEntryTypes() { return supportedEntryTypes; }

  observe(options = undefined) {
    const o = webidl.dictionary(options);
    const context = "Failed to execute 'observe' on 'PerformanceObserver'";
    if (o.entryTypes === undefined && o.type === undefined) throw new TypeError(`${context}: give entryTypes or type`);
    if (o.entryTypes !== undefined && (o.type !== undefined || o.buffered !== undefined)) {
      throw new TypeError(`${context}: entryTypes cannot be combined with type or buffered`);
    }
    const mode = o.entryTypes !== undefined ? 'multiple' : 'single';
    if (this.#mode !== null && this.#mode !== mode) {
      throw new DOMException(`${context}: the observer already uses ${this.#mode === 'multiple' ? 'entryTypes' : 'type'}`,
        'InvalidModificationError');
    }
    this.#mode = mode;
    if (mode === 'multiple') {
      const types = webidl.iterable(o.entryTypes, (v) => webidl.DOMString(v), `${context}: entryTypes`);
      this.#types = new SafeSet();
      for (let i = 0; i < types.length; i++) {
        if (ArrayPrototypeIncludes(supportedEntryTypes, types[i])) this.#types.add(types[i]);
      }
      if (this.#types.size === 0) return;
    } else {
      const t = webidl.DOMString(o.type);
      if (!ArrayPrototypeIncludes(supportedEntryTypes, t)) return;
      this.#types.add(t);
      if (o.buffered) {
        for (let i = 0; i < buffer.length; i++) if (buffer[i].entryType === t) this.#queue(buffer[i]);
      }
    }
    observers.add(this);
  }

  disconnect() {
    observers.delete(this);
    this.#records = [];
    this.#types = new SafeSet();
    this.#mode = null;
  }

  takeRecords() {
    const records = this.#records;
    this.#records = [];
    return records;
  }

  static enqueue(o, entry) { o.#queue(entry); }

  #queue(entry) {
    if (!this.#types.has(entry.entryType)) return;
    ArrayPrototypePush(this.#records, entry);
    if (this.#scheduled) return;
    this.#scheduled = true;
    // "queue the PerformanceObserver task": a task, after the current one.
    setTimeout(() => {
      this.#scheduled = false;
      const records = this.takeRecords();
      if (records.length === 0) return;
      const list = new PerformanceObserverEntryList(webidl.kIllegalConstructor, records);
      try {
        ReflectApply(this.#callback, this, [list, this, { droppedEntriesCount: 0 }]);
      } catch (err) {
        reportUncaught(err);
      }
    }, 0);
  }
}
const enqueue = PerformanceObserver.enqueue;
delete PerformanceObserver.enqueue;
webidl.configureInterface(PerformanceObserver);

const performance = new Performance(webidl.kIllegalConstructor);
defineGlobal('performance', performance, true);
defineGlobal('Performance', Performance);
defineGlobal('PerformanceEntry', PerformanceEntry);
defineGlobal('PerformanceMark', PerformanceMark);
defineGlobal('PerformanceMeasure', PerformanceMeasure);
defineGlobal('PerformanceObserver', PerformanceObserver);
defineGlobal('PerformanceObserverEntryList', PerformanceObserverEntryList);
