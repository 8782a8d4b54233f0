// 51_filereader.js: ProgressEvent (XHR §5) and FileReader (File API §6): reads a Blob as an
// ArrayBuffer, binary string, text or data: URL, reporting through events queued as tasks.
'use strict';

const {
  StringFromCharCode, TypeError, Uint8Array, ObjectAssign,
} = primordials;
const {
  webidl, Event, EventTarget, DOMException, defineGlobal, defineEventHandler,
  dispatchEventFromTask, trustedEvent, isBlob, blobBytes, getEncoding, TextDecoder, btoa,
} = internal;
// Late (read as internal.x when called; given by a later file): mimeParam.

class ProgressEvent extends Event {
  #lengthComputable; #loaded; #total;
  constructor(type, eventInitDict = undefined, trusted = undefined) {
    webidl.argCount(arguments, 1, "Failed to construct 'ProgressEvent'");
    const init = webidl.dictionary(eventInitDict, "Failed to construct 'ProgressEvent'");
    super(type, init, trusted);
    this.#lengthComputable = !!init.lengthComputable;
    this.#loaded = init.loaded === undefined ? 0 : webidl.unsignedLongLong(init.loaded);
    this.#total = init.total === undefined ? 0 : webidl.unsignedLongLong(init.total);
  }
  static #check(e, what) {
    if (e === null || typeof e !== 'object' || !(#loaded in e)) throw webidl.illegalInvocation(`ProgressEvent.${what}`);
  }
  get lengthComputable() { ProgressEvent.#check(this, 'lengthComputable'); return this.#lengthComputable; }
  get loaded() { ProgressEvent.#check(this, 'loaded'); return this.#loaded; }
  get total() { ProgressEvent.#check(this, 'total'); return this.#total; }
}
webidl.configureInterface(ProgressEvent);

const EMPTY = 0, LOADING = 1, DONE = 2;

class FileReader extends EventTarget {
  #state = EMPTY;
  #result = null;
  #error = null;
  #generation = 0; // a new read or abort() orphans the tasks of the previous read

  // Explicit: V8 10.2's default derived constructor spreads its arguments through the array
  // iterator, which an app may have replaced.
  constructor() {
    super();
  }

  static #check(r, what) {
    if (r === null || typeof r !== 'object' || !(#state in r)) throw webidl.illegalInvocation(`FileReader.${what}`);
  }

  get readyState() { FileReader.#check(this, 'readyState'); return this.#state; }
  get result() { FileReader.#check(this, 'result'); return this.#result; }
  get error() { FileReader.#check(this, 'error'); return this.#error; }

  readAsArrayBuffer(blob) { this.#start(blob, 'arrayBuffer', undefined, 'readAsArrayBuffer'); }
  readAsBinaryString(blob) { this.#start(blob, 'binaryString', undefined, 'readAsBinaryString'); }
  readAsText(blob, encoding = undefined) { this.#start(blob, 'text', encoding, 'readAsText'); }
  readAsDataURL(blob) { this.#start(blob, 'dataURL', undefined, 'readAsDataURL'); }

  abort() {
    FileReader.#check(this, 'abort');
    if (this.#state === EMPTY || this.#state === DONE) {
      this.#result = null;
      return;
    }
    this.#state = DONE;
    this.#result = null;
    this.#generation++;
    this.#fire('abort', 0, 0);
    if (this.#state !== LOADING) this.#fire('loadend', 0, 0);
  }

  // File API §6.5 "read operation".
  #start(blob, kind, encoding, method) {
    FileReader.#check(this, method);
    if (!isBlob(blob)) {
      throw new TypeError(`Failed to execute '${method}' on 'FileReader': parameter 1 is not of type 'Blob'`);
    }
    if (encoding !== undefined) encoding = webidl.DOMString(encoding);
    if (this.#state === LOADING) {
      throw new DOMException(`Failed to execute '${method}' on 'FileReader': the object is already busy reading Blobs`,
        'InvalidStateError');
    }
    this.#state = LOADING;
    this.#result = null;
    this.#error = null;
    const generation = ++this.#generation;
    const bytes = blobBytes(blob);
    const type = blob.type;
    const total = bytes.length;
    const task = (fn) => setTimeout(() => { if (this.#generation === generation) fn(); }, 0);
    task(() => {
      this.#fire('loadstart', 0, total);
      task(() => {
        if (total > 0) this.#fire('progress', total, total);
        task(() => {
          this.#state = DONE;
          this.#result = packageData(bytes, kind, type, encoding);
          this.#fire('load', total, total);
          if (this.#state !== LOADING) this.#fire('loadend', total, total);
        });
      });
    });
  }

  #fire(type, loaded, total) {
    dispatchEventFromTask(this, trustedEvent(ProgressEvent, type,
      { lengthComputable: true, loaded, total }));
  }
}

// File API §6.6 "package data".
function packageData(bytes, kind, type, encoding) {
  switch (kind) {
    case 'arrayBuffer': {
      const copy = new Uint8Array(bytes.length);
      copy.set(bytes);
      return copy.buffer;
    }
    case 'binaryString': {
      let s = '';
      for (let i = 0; i < bytes.length; i += 8192) {
        s += StringFromCharCode(...bytes.subarray(i, i + 8192));
      }
      return s;
    }
    case 'text': {
      // The given label, else the blob type's charset, else UTF-8; a BOM wins over both.
      let label = encoding !== undefined && getEncoding(encoding) !== undefined ? encoding : undefined;
      if (label === undefined) {
        const charset = internal.mimeParam(type, 'charset');
        if (charset !== undefined && getEncoding(charset) !== undefined) label = charset;
      }
      if (bytes[0] === 0xfe && bytes[1] === 0xff) label = 'utf-16be';
      else if (bytes[0] === 0xff && bytes[1] === 0xfe) label = 'utf-16le';
      else if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) label = 'utf-8';
      return new TextDecoder(label ?? 'utf-8').decode(bytes);
    }
    case 'dataURL': {
      let binary = '';
      for (let i = 0; i < bytes.length; i += 8192) binary += StringFromCharCode(...bytes.subarray(i, i + 8192));
      return `data:${type === '' ? 'application/octet-stream' : type};base64,${btoa(binary)}`;
    }
  }
  throw new TypeError(`unknown read kind ${kind}`);
}

for (const type of ['loadstart', 'progress', 'load', 'abort', 'error', 'loadend']) {
  defineEventHandler(FileReader.prototype, type);
}
webidl.configureInterface(FileReader, 'FileReader', { EMPTY, LOADING, DONE });

defineGlobal('ProgressEvent', ProgressEvent);
defineGlobal('FileReader', FileReader);

ObjectAssign(internal, { ProgressEvent });
