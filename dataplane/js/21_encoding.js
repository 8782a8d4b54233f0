// 21_encoding.js: TextEncoder and TextDecoder (WHATWG Encoding §7-§8).
//
// UTF-8 decoding is native (utf8Decode); UTF-16 and x-user-defined are decoded here; the
// legacy single-byte encodings use a 128-entry table read once from ICU's converter; the
// legacy multi-byte ones use a streaming ICU converter per decoder.
'use strict';

const {
  ArrayBufferIsView, ArrayPrototypePush, DataViewPrototypeGetBuffer, DataViewPrototypeGetByteLength,
  DataViewPrototypeGetByteOffset, FinalizationRegistry, ObjectFreeze, RangeError, SafeMap,
  StringFromCharCode, StringPrototypeToLowerCase, StringPrototypeReplace, TypeError, Uint8Array,
  Uint16Array, ArrayBuffer, TypedArrayPrototypeGetBuffer, TypedArrayPrototypeGetByteLength,
  TypedArrayPrototypeGetByteOffset, TypedArrayPrototypeGetSymbolToStringTag, FunctionPrototypeApply, TypedArrayPrototypeSet,
  ObjectAssign,
} = primordials;
const { webidl, defineGlobal } = internal;

// Encoding §4.2: name -> labels. The names are what `encoding` returns.
const encodings = {
  'utf-8': ['unicode-1-1-utf-8', 'unicode11utf8', 'unicode20utf8', 'utf-8', 'utf8', 'x-unicode20utf8'],
  'ibm866': ['866', 'cp866', 'csibm866', 'ibm866'],
  'iso-8859-2': ['csisolatin2', 'iso-8859-2', 'iso-ir-101', 'iso8859-2', 'iso88592', 'iso_8859-2',
    'iso_8859-2:1987', 'l2', 'latin2'],
  'iso-8859-3': ['csisolatin3', 'iso-8859-3', 'iso-ir-109', 'iso8859-3', 'iso88593', 'iso_8859-3',
    'iso_8859-3:1988', 'l3', 'latin3'],
  'iso-8859-4': ['csisolatin4', 'iso-8859-4', 'iso-ir-110', 'iso8859-4', 'iso88594', 'iso_8859-4',
    'iso_8859-4:1988', 'l4', 'latin4'],
  'iso-8859-5': ['csisolatincyrillic', 'cyrillic', 'iso-8859-5', 'iso-ir-144', 'iso8859-5',
    'iso88595', 'iso_8859-5', 'iso_8859-5:1988'],
  'iso-8859-6': ['arabic', 'asmo-708', 'csiso88596e', 'csiso88596i', 'csisolatinarabic', 'ecma-114',
    'iso-8859-6', 'iso-8859-6-e', 'iso-8859-6-i', 'iso-ir-127', 'iso8859-6', 'iso88596',
    'iso_8859-6', 'iso_8859-6:1987'],
  'iso-8859-7': ['csisolatingreek', 'ecma-118', 'elot_928', 'greek', 'greek8', 'iso-8859-7',
    'iso-ir-126', 'iso8859-7', 'iso88597', 'iso_8859-7', 'iso_8859-7:1987', 'sun_eu_greek'],
  'iso-8859-8': ['csiso88598e', 'csisolatinhebrew', 'hebrew', 'iso-8859-8', 'iso-8859-8-e',
    'iso-ir-138', 'iso8859-8', 'iso88598', 'iso_8859-8', 'iso_8859-8:1988', 'visual'],
  'iso-8859-8-i': ['csiso88598i', 'iso-8859-8-i', 'logical'],
  'iso-8859-10': ['csisolatin6', 'iso-8859-10', 'iso-ir-157', 'iso8859-10', 'iso885910', 'l6',
    'latin6'],
  'iso-8859-13': ['iso-8859-13', 'iso8859-13', 'iso885913'],
  'iso-8859-14': ['iso-8859-14', 'iso8859-14', 'iso885914'],
  'iso-8859-15': ['csisolatin9', 'iso-8859-15', 'iso8859-15', 'iso885915', 'iso_8859-15', 'l9'],
  'iso-8859-16': ['iso-8859-16'],
  'koi8-r': ['cskoi8r', 'koi', 'koi8', 'koi8-r', 'koi8_r'],
  'koi8-u': ['koi8-ru', 'koi8-u'],
  'macintosh': ['csmacintosh', 'mac', 'macintosh', 'x-mac-roman'],
  'windows-874': ['dos-874', 'iso-8859-11', 'iso8859-11', 'iso885911', 'tis-620', 'windows-874'],
  'windows-1250': ['cp1250', 'windows-1250', 'x-cp1250'],
  'windows-1251': ['cp1251', 'windows-1251', 'x-cp1251'],
  'windows-1252': ['ansi_x3.4-1968', 'ascii', 'cp1252', 'cp819', 'csisolatin1', 'ibm819',
    'iso-8859-1', 'iso-ir-100', 'iso8859-1', 'iso88591', 'iso_8859-1', 'iso_8859-1:1987', 'l1',
    'latin1', 'us-ascii', 'windows-1252', 'x-cp1252'],
  'windows-1253': ['cp1253', 'windows-1253', 'x-cp1253'],
  'windows-1254': ['cp1254', 'csisolatin5', 'iso-8859-9', 'iso-ir-148', 'iso8859-9', 'iso88599',
    'iso_8859-9', 'iso_8859-9:1989', 'l5', 'latin5', 'windows-1254', 'x-cp1254'],
  'windows-1255': ['cp1255', 'windows-1255', 'x-cp1255'],
  'windows-1256': ['cp1256', 'windows-1256', 'x-cp1256'],
  'windows-1257': ['cp1257', 'windows-1257', 'x-cp1257'],
  'windows-1258': ['cp1258', 'windows-1258', 'x-cp1258'],
  'x-mac-cyrillic': ['x-mac-cyrillic', 'x-mac-ukrainian'],
  'gbk': ['chinese', 'csgb2312', 'csiso58gb231280', 'gb2312', 'gb_2312', 'gb_2312-80', 'gbk',
    'iso-ir-58', 'x-gbk'],
  'gb18030': ['gb18030'],
  'big5': ['big5', 'big5-hkscs', 'cn-big5', 'csbig5', 'x-x-big5'],
  'euc-jp': ['cseucpkdfmtjapanese', 'euc-jp', 'x-euc-jp'],
  'iso-2022-jp': ['csiso2022jp', 'iso-2022-jp'],
  'shift_jis': ['csshiftjis', 'ms932', 'ms_kanji', 'shift-jis', 'shift_jis', 'sjis', 'windows-31j',
    'x-sjis'],
  'euc-kr': ['cseuckr', 'csksc56011987', 'euc-kr', 'iso-ir-149', 'korean', 'ks_c_5601-1987',
    'ks_c_5601-1989', 'ksc5601', 'ksc_5601', 'windows-949'],
  'replacement': ['csiso2022kr', 'hz-gb-2312', 'iso-2022-cn', 'iso-2022-cn-ext', 'iso-2022-kr'],
  'utf-16be': ['unicodefffe', 'utf-16be'],
  'utf-16le': ['csunicode', 'iso-10646-ucs-2', 'ucs-2', 'unicode', 'unicodefeff', 'utf-16',
    'utf-16le'],
  'x-user-defined': ['x-user-defined'],
};
const byLabel = new SafeMap();
for (const name in encodings) for (const label of encodings[name]) byLabel.set(label, name);

// The ICU converter behind each legacy encoding (names ICU knows).
const icuNames = {
  'ibm866': 'IBM866', 'iso-8859-2': 'ISO-8859-2', 'iso-8859-3': 'ISO-8859-3',
  'iso-8859-4': 'ISO-8859-4', 'iso-8859-5': 'ISO-8859-5', 'iso-8859-6': 'ISO-8859-6',
  'iso-8859-7': 'ISO-8859-7', 'iso-8859-8': 'ISO-8859-8', 'iso-8859-8-i': 'ISO-8859-8',
  'iso-8859-10': 'ISO-8859-10', 'iso-8859-13': 'ISO-8859-13', 'iso-8859-14': 'ISO-8859-14',
  'iso-8859-15': 'ISO-8859-15', 'iso-8859-16': 'ISO-8859-16', 'koi8-r': 'KOI8-R',
  'koi8-u': 'KOI8-U', 'macintosh': 'macintosh', 'windows-874': 'windows-874',
  'windows-1250': 'windows-1250', 'windows-1251': 'windows-1251', 'windows-1252': 'windows-1252',
  'windows-1253': 'windows-1253', 'windows-1254': 'windows-1254', 'windows-1255': 'windows-1255',
  'windows-1256': 'windows-1256', 'windows-1257': 'windows-1257', 'windows-1258': 'windows-1258',
  'x-mac-cyrillic': 'x-mac-cyrillic',
  // Encoding §10: gbk decodes with the gb18030 decoder.
  'gbk': 'GB18030', 'gb18030': 'GB18030', 'big5': 'Big5-HKSCS', 'euc-jp': 'EUC-JP',
  'iso-2022-jp': 'ISO-2022-JP', 'shift_jis': 'windows-31j', 'euc-kr': 'windows-949',
};
const multiByte = ['gbk', 'gb18030', 'big5', 'euc-jp', 'iso-2022-jp', 'shift_jis', 'euc-kr'];

// Encoding §4.2 "get an encoding": ASCII whitespace trimmed, ASCII case-insensitive.
function getEncoding(label) {
  const key = StringPrototypeToLowerCase(
    StringPrototypeReplace(label, /^[\t\n\f\r ]+|[\t\n\f\r ]+$/g, ''));
  return byLabel.get(key);
}

// ISO-8859-16 (Latin-10), bytes 0xA0..0xFF: Debian's ICU has no converter for it. Bytes
// 0x80..0x9F are the C1 controls, as in every ISO-8859 part.
const iso885916High = [
  0x00A0, 0x0104, 0x0105, 0x0141, 0x20AC, 0x201E, 0x0160, 0x00A7, 0x0161, 0x00A9, 0x0218, 0x00AB,
  0x0179, 0x00AD, 0x017A, 0x017B, 0x00B0, 0x00B1, 0x010C, 0x0142, 0x017D, 0x201D, 0x00B6, 0x00B7,
  0x017E, 0x010D, 0x0219, 0x00BB, 0x0152, 0x0153, 0x0178, 0x017C, 0x00C0, 0x00C1, 0x00C2, 0x0102,
  0x00C4, 0x0106, 0x00C6, 0x00C7, 0x00C8, 0x00C9, 0x00CA, 0x00CB, 0x00CC, 0x00CD, 0x00CE, 0x00CF,
  0x0110, 0x0143, 0x00D2, 0x00D3, 0x00D4, 0x0150, 0x00D6, 0x015A, 0x0170, 0x00D9, 0x00DA, 0x00DB,
  0x00DC, 0x0118, 0x021A, 0x00DF, 0x00E0, 0x00E1, 0x00E2, 0x0103, 0x00E4, 0x0107, 0x00E6, 0x00E7,
  0x00E8, 0x00E9, 0x00EA, 0x00EB, 0x00EC, 0x00ED, 0x00EE, 0x00EF, 0x0111, 0x0144, 0x00F2, 0x00F3,
  0x00F4, 0x0151, 0x00F6, 0x015B, 0x0171, 0x00F9, 0x00FA, 0x00FB, 0x00FC, 0x0119, 0x021B, 0x00FF,
];
function iso885916Table() {
  const t = new Uint16Array(128);
  for (let i = 0; i < 32; i++) t[i] = 0x80 + i;
  for (let i = 0; i < 96; i++) t[32 + i] = iso885916High[i];
  return t;
}

// Where ICU's tables differ from the Encoding Standard's indexes: byte -> code point, 0xFFFF
// for a byte the standard leaves unmapped.
const icuCorrections = {
  // ICU maps these to Private Use Area code points (vendor round-trip entries).
  'windows-874': [[0xDB, 0xFFFF], [0xDC, 0xFFFF], [0xDD, 0xFFFF], [0xDE, 0xFFFF],
    [0xFC, 0xFFFF], [0xFD, 0xFFFF], [0xFE, 0xFFFF], [0xFF, 0xFFFF]],
  'windows-1253': [[0xAA, 0xFFFF]],
  'windows-1255': [[0xCA, 0x05BA]],
};

const tables = new SafeMap(); // single-byte encoding -> Uint16Array(128) from ICU
function singleByteTable(name) {
  let t = tables.get(name);
  if (t === undefined) {
    t = binding.icuTable(icuNames[name]) ?? (name === 'iso-8859-16' ? iso885916Table() : null);
    if (t !== null) for (const [byte, cp] of icuCorrections[name] ?? []) t[byte - 0x80] = cp;
    tables.set(name, t);
  }
  return t;
}

function isSupported(name) {
  if (name === 'utf-8' || name === 'utf-16le' || name === 'utf-16be' || name === 'x-user-defined') return true;
  if (multiByte.includes(name)) return true;
  return singleByteTable(name) !== null;
}

const converters = new FinalizationRegistry((id) => binding.icuClose(id));

// The options of a call made without them (what webidl.dictionary makes of undefined).
const kNoOptions = ObjectFreeze({});

// BufferSource -> its bytes as a Uint8Array (a Uint8Array itself, or a view over the same
// bytes: no copy).
function bytesOf(input, context) {
  if (ArrayBufferIsView(input)) {
    const tag = TypedArrayPrototypeGetSymbolToStringTag(input);
    if (tag === 'Uint8Array') return input; // already the bytes: no view to make
    if (tag !== undefined) {
      return new Uint8Array(TypedArrayPrototypeGetBuffer(input), TypedArrayPrototypeGetByteOffset(input),
        TypedArrayPrototypeGetByteLength(input));
    }
    return new Uint8Array(DataViewPrototypeGetBuffer(input), DataViewPrototypeGetByteOffset(input),
      DataViewPrototypeGetByteLength(input));
  }
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  if (typeof SharedArrayBuffer === 'function' && input instanceof SharedArrayBuffer) {
    return new Uint8Array(input);
  }
  throw new TypeError(`${context}: the input is not an ArrayBuffer or ArrayBufferView`);
}

function fromCodeUnits(units) {
  let out = '';
  for (let i = 0; i < units.length; i += 8192) {
    out += FunctionPrototypeApply(StringFromCharCode, null, units.slice(i, i + 8192));
  }
  return out;
}

class TextDecoder {
  #encoding;
  #fatal;
  #ignoreBOM;
  #bomSeen = false;
  #doNotFlush = false;
  #pending = null;       // utf-8: bytes of an incomplete sequence
  #leadByte = null;      // utf-16: an odd byte
  #leadSurrogate = null; // utf-16: a high surrogate waiting for its pair
  #converter = -1;       // multi-byte: the ICU converter id

  constructor(label = 'utf-8', options = undefined) {
    const context = "Failed to construct 'TextDecoder'";
    label = webidl.DOMString(label, context);
    const opts = options === undefined ? kNoOptions : webidl.dictionary(options, context);
    const name = getEncoding(label);
    if (name === undefined || name === 'replacement') {
      throw new RangeError(`${context}: the encoding label '${label}' is not supported`);
    }
    if (!isSupported(name)) {
      throw new RangeError(`${context}: the encoding '${name}' is not available in this build ` +
        "(ICU has no converter for it)");
    }
    this.#encoding = name;
    this.#fatal = !!opts.fatal;
    this.#ignoreBOM = !!opts.ignoreBOM;
  }

  static #check(d, what) {
    if (d === null || typeof d !== 'object' || !(#encoding in d)) throw webidl.illegalInvocation(`TextDecoder.${what}`);
  }

  get encoding() { TextDecoder.#check(this, 'encoding'); return this.#encoding; }
  get fatal() { TextDecoder.#check(this, 'fatal'); return this.#fatal; }
  get ignoreBOM() { TextDecoder.#check(this, 'ignoreBOM'); return this.#ignoreBOM; }

  decode(input = undefined, options = undefined) {
    TextDecoder.#check(this, 'decode');
    const context = "Failed to execute 'decode' on 'TextDecoder'";
    let bytes = input === undefined ? new Uint8Array(0) : bytesOf(input, context);
    const opts = options === undefined ? kNoOptions : webidl.dictionary(options, context);
    if (!this.#doNotFlush) {
      this.#bomSeen = false;
      this.#pending = null;
      this.#leadByte = null;
      this.#leadSurrogate = null;
      if (this.#converter !== -1) binding.icuDecode(this.#converter, new Uint8Array(0), true, false);
    }
    const stream = !!opts.stream;
    this.#doNotFlush = stream;
    let text;
    switch (this.#encoding) {
      case 'utf-8': text = this.#utf8(bytes, stream); break;
      case 'utf-16le': text = this.#utf16(bytes, stream, false); break;
      case 'utf-16be': text = this.#utf16(bytes, stream, true); break;
      case 'x-user-defined': text = this.#userDefined(bytes); break;
      default:
        text = multiByte.includes(this.#encoding) ? this.#icu(bytes, stream)
          : this.#singleByte(bytes);
    }
    return this.#stripBOM(text);
  }

  // Encoding §7.1 "serialize I/O queue": a leading BOM goes once, for UTF-8 and UTF-16.
  #stripBOM(text) {
    if (this.#ignoreBOM || this.#bomSeen || text.length === 0) return text;
    const e = this.#encoding;
    if (e !== 'utf-8' && e !== 'utf-16le' && e !== 'utf-16be') return text;
    this.#bomSeen = true;
    return text.charCodeAt(0) === 0xFEFF ? text.slice(1) : text;
  }

  #utf8(bytes, stream) {
    if (this.#pending !== null) {
      const joined = new Uint8Array(this.#pending.length + bytes.length);
      TypedArrayPrototypeSet(joined, this.#pending, 0);
      TypedArrayPrototypeSet(joined, bytes, this.#pending.length);
      bytes = joined;
      this.#pending = null;
    }
    const result = binding.utf8Decode(bytes, this.#fatal, stream);
    if (result === null) throw new TypeError("Failed to execute 'decode' on 'TextDecoder': the encoded data was not valid utf-8");
    const consumed = result[1];
    if (consumed < bytes.length) {
      // At most the 3 bytes of an unfinished sequence; copied, as bytes may be the caller's.
      const rest = new Uint8Array(bytes.length - consumed);
      for (let i = 0; i < rest.length; i++) rest[i] = bytes[consumed + i];
      this.#pending = rest;
    }
    return result[0];
  }

  #utf16(bytes, stream, bigEndian) {
    const units = [];
    const error = () => {
      if (this.#fatal) {
        this.#leadByte = null;
        this.#leadSurrogate = null;
        throw new TypeError("Failed to execute 'decode' on 'TextDecoder': the encoded data was " +
          `not valid ${this.#encoding}`);
      }
      ArrayPrototypePush(units, 0xFFFD);
    };
    for (let i = 0; i < bytes.length; i++) {
      if (this.#leadByte === null) {
        this.#leadByte = bytes[i];
        continue;
      }
      const cu = bigEndian ? (this.#leadByte << 8) | bytes[i] : (bytes[i] << 8) | this.#leadByte;
      this.#leadByte = null;
      if (this.#leadSurrogate !== null) {
        const lead = this.#leadSurrogate;
        this.#leadSurrogate = null;
        if (cu >= 0xDC00 && cu <= 0xDFFF) {
          ArrayPrototypePush(units, lead, cu);
          continue;
        }
        error(); // the lone lead; the code unit is looked at on its own below
      }
      if (cu >= 0xD800 && cu <= 0xDBFF) {
        this.#leadSurrogate = cu;
        continue;
      }
      if (cu >= 0xDC00 && cu <= 0xDFFF) {
        error();
        continue;
      }
      ArrayPrototypePush(units, cu);
    }
    if (!stream && (this.#leadByte !== null || this.#leadSurrogate !== null)) {
      this.#leadByte = null;
      this.#leadSurrogate = null;
      error();
    }
    return fromCodeUnits(units);
  }

  #userDefined(bytes) {
    const units = new Uint16Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) units[i] = bytes[i] < 0x80 ? bytes[i] : 0xF780 + bytes[i] - 0x80;
    return fromCodeUnits(units);
  }

  #singleByte(bytes) {
    const table = singleByteTable(this.#encoding);
    const units = new Uint16Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i];
      if (b < 0x80) {
        units[i] = b;
        continue;
      }
      const cu = table[b - 0x80];
      if (cu === 0xFFFF) {
        if (this.#fatal) {
          throw new TypeError("Failed to execute 'decode' on 'TextDecoder': the encoded data " +
            `was not valid ${this.#encoding}`);
        }
        units[i] = 0xFFFD;
      } else {
        units[i] = cu;
      }
    }
    return fromCodeUnits(units);
  }

  #icu(bytes, stream) {
    if (this.#converter === -1) {
      this.#converter = binding.icuOpen(icuNames[this.#encoding]);
      converters.register(this, this.#converter);
    }
    const text = binding.icuDecode(this.#converter, bytes, !stream, this.#fatal);
    if (text === null) {
      throw new TypeError("Failed to execute 'decode' on 'TextDecoder': the encoded data was " +
        `not valid ${this.#encoding}`);
    }
    return text;
  }
}
webidl.configureInterface(TextDecoder);

// UTF-8 of a string as a new Uint8Array. Up to kScratchUnits code units it is encoded
// into a scratch buffer and copied into a Uint8Array made here (V8 makes small ones in its
// heap); longer strings get an ArrayBuffer from the binding.
const kScratchUnits = 4096;
let scratch = null;
let scratchBuffer = null;
function encodeUtf8(s) {
  if (s.length > kScratchUnits) return binding.encodeUtf8(s);
  if (scratch === null) {
    scratch = new Uint8Array(3 * kScratchUnits);
    scratchBuffer = TypedArrayPrototypeGetBuffer(scratch);
  }
  const n = binding.encodeUtf8Into(s, scratch);
  const out = new Uint8Array(n);
  if (n <= 64) {
    for (let i = 0; i < n; i++) out[i] = scratch[i];
  } else {
    TypedArrayPrototypeSet(out, new Uint8Array(scratchBuffer, 0, n));
  }
  return out;
}

class TextEncoder {
  // The brand: a TextEncoder made by this constructor (instanceof would accept any object
  // with TextEncoder.prototype in its chain, and consults an app's Symbol.hasInstance).
  #encoder;

  static #is(v) { return v !== null && typeof v === 'object' && #encoder in v; }

  get encoding() {
    if (!TextEncoder.#is(this)) throw webidl.illegalInvocation('TextEncoder.encoding');
    return 'utf-8';
  }

  encode(input = '') {
    if (!TextEncoder.#is(this)) throw webidl.illegalInvocation('TextEncoder.encode');
    // The encoder writes a lone surrogate as U+FFFD, which is what USVString would do.
    return encodeUtf8(typeof input === 'string' ? input : webidl.DOMString(input));
  }

  encodeInto(source, destination) {
    if (!TextEncoder.#is(this)) throw webidl.illegalInvocation('TextEncoder.encodeInto');
    webidl.argCount(arguments, 2, "Failed to execute 'encodeInto' on 'TextEncoder'");
    const s = webidl.USVString(source);
    if (!ArrayBufferIsView(destination) || TypedArrayPrototypeGetSymbolToStringTag(destination) !== 'Uint8Array') {
      throw new TypeError("Failed to execute 'encodeInto' on 'TextEncoder': parameter 2 is not " +
        "of type 'Uint8Array'");
    }
    const result = binding.encodeInto(s, destination);
    return { read: result[0], written: result[1] };
  }
}
webidl.configureInterface(TextEncoder);

defineGlobal('TextDecoder', TextDecoder);
defineGlobal('TextEncoder', TextEncoder);

ObjectAssign(internal, { TextDecoder, getEncoding, encodeUtf8 });
