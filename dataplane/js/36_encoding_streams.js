// 36_encoding_streams.js: TextEncoderStream and TextDecoderStream (Encoding §7.4-7.5): a
// TransformStream around a streaming encoder/decoder.
'use strict';

const { StringPrototypeCharCodeAt, StringPrototypeSlice, Uint8Array } = primordials;
const { webidl, defineGlobal, TextDecoder, TransformStream } = internal;

class TextDecoderStream {
  #decoder;
  #transform;

  constructor(label = 'utf-8', options = undefined) {
    const decoder = new TextDecoder(label, options);
    this.#decoder = decoder;
    this.#transform = new TransformStream({
      transform(chunk, controller) {
        const text = decoder.decode(chunk, { stream: true });
        if (text !== '') controller.enqueue(text);
      },
      flush(controller) {
        const text = decoder.decode();
        if (text !== '') controller.enqueue(text);
      },
    });
  }

  static #check(o, what) {
    if (o === null || typeof o !== 'object' || !(#decoder in o)) throw webidl.illegalInvocation(`TextDecoderStream.${what}`);
  }

  get encoding() { TextDecoderStream.#check(this, 'encoding'); return this.#decoder.encoding; }
  get fatal() { TextDecoderStream.#check(this, 'fatal'); return this.#decoder.fatal; }
  get ignoreBOM() { TextDecoderStream.#check(this, 'ignoreBOM'); return this.#decoder.ignoreBOM; }
  get readable() { TextDecoderStream.#check(this, 'readable'); return this.#transform.readable; }
  get writable() { TextDecoderStream.#check(this, 'writable'); return this.#transform.writable; }
}
webidl.configureInterface(TextDecoderStream);

class TextEncoderStream {
  #transform;

  constructor() {
    // A high surrogate that ended the last chunk waits for its pair in the next one.
    let pendingHigh = null;
    this.#transform = new TransformStream({
      transform(chunk, controller) {
        let s = webidl.DOMString(chunk);
        if (pendingHigh !== null) {
          s = pendingHigh + s;
          pendingHigh = null;
        }
        const last = s.length > 0 ? StringPrototypeCharCodeAt(s, s.length - 1) : 0;
        if (last >= 0xD800 && last <= 0xDBFF) {
          pendingHigh = s[s.length - 1];
          s = StringPrototypeSlice(s, 0, -1);
        }
        if (s !== '') controller.enqueue(binding.encodeUtf8(s));
      },
      flush(controller) {
        if (pendingHigh !== null) controller.enqueue(new Uint8Array([0xEF, 0xBF, 0xBD]));
      },
    });
  }

  static #check(o, what) {
    if (o === null || typeof o !== 'object' || !(#transform in o)) throw webidl.illegalInvocation(`TextEncoderStream.${what}`);
  }

  get encoding() { TextEncoderStream.#check(this, 'encoding'); return 'utf-8'; }
  get readable() { TextEncoderStream.#check(this, 'readable'); return this.#transform.readable; }
  get writable() { TextEncoderStream.#check(this, 'writable'); return this.#transform.writable; }
}
webidl.configureInterface(TextEncoderStream);

defineGlobal('TextDecoderStream', TextDecoderStream);
defineGlobal('TextEncoderStream', TextEncoderStream);
