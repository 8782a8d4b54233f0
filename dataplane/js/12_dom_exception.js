// 12_dom_exception.js: DOMException (WebIDL §3.14.1): name, message, the legacy code table,
// the error-name constants, and Error.prototype as its prototype's prototype.
'use strict';

const { ErrorCaptureStackTrace, ObjectSetPrototypeOf, Error, SafeMap, ObjectAssign } = primordials;
const { webidl, defineGlobal } = internal;

// WebIDL's error names table: name -> legacy code (0 for names without one).
const codes = new SafeMap([
  ['IndexSizeError', 1], ['HierarchyRequestError', 3], ['WrongDocumentError', 4],
  ['InvalidCharacterError', 5], ['NoModificationAllowedError', 7], ['NotFoundError', 8],
  ['NotSupportedError', 9], ['InUseAttributeError', 10], ['InvalidStateError', 11],
  ['SyntaxError', 12], ['InvalidModificationError', 13], ['NamespaceError', 14],
  ['InvalidAccessError', 15], ['TypeMismatchError', 17], ['SecurityError', 18],
  ['NetworkError', 19], ['AbortError', 20], ['URLMismatchError', 21], ['QuotaExceededError', 22],
  ['TimeoutError', 23], ['InvalidNodeTypeError', 24], ['DataCloneError', 25],
]);

const constants = {
  INDEX_SIZE_ERR: 1, DOMSTRING_SIZE_ERR: 2, HIERARCHY_REQUEST_ERR: 3, WRONG_DOCUMENT_ERR: 4,
  INVALID_CHARACTER_ERR: 5, NO_DATA_ALLOWED_ERR: 6, NO_MODIFICATION_ALLOWED_ERR: 7,
  NOT_FOUND_ERR: 8, NOT_SUPPORTED_ERR: 9, INUSE_ATTRIBUTE_ERR: 10, INVALID_STATE_ERR: 11,
  SYNTAX_ERR: 12, INVALID_MODIFICATION_ERR: 13, NAMESPACE_ERR: 14, INVALID_ACCESS_ERR: 15,
  VALIDATION_ERR: 16, TYPE_MISMATCH_ERR: 17, SECURITY_ERR: 18, NETWORK_ERR: 19, ABORT_ERR: 20,
  URL_MISMATCH_ERR: 21, QUOTA_EXCEEDED_ERR: 22, TIMEOUT_ERR: 23, INVALID_NODE_TYPE_ERR: 24,
  DATA_CLONE_ERR: 25,
};

class DOMException {
  #name;
  #message;

  constructor(message = '', options = 'Error') {
    this.#message = webidl.DOMString(message, "Failed to construct 'DOMException'");
    this.#name = webidl.DOMString(options, "Failed to construct 'DOMException'");
    // A stack like an Error's, so a DOMException thrown by a built-in says where.
    ErrorCaptureStackTrace(this, DOMException);
  }

  get name() {
    if (!isDOMException(this)) throw webidl.illegalInvocation('DOMException.name');
    return this.#name;
  }

  get message() {
    if (!isDOMException(this)) throw webidl.illegalInvocation('DOMException.message');
    return this.#message;
  }

  get code() {
    if (!isDOMException(this)) throw webidl.illegalInvocation('DOMException.code');
    return codes.get(this.#name) ?? 0;
  }

  static isDOMException(v) {
    return v !== null && typeof v === 'object' && #name in v;
  }
}

const isDOMException = DOMException.isDOMException;
delete DOMException.isDOMException;
ObjectSetPrototypeOf(DOMException.prototype, Error.prototype);
webidl.configureInterface(DOMException, 'DOMException', constants);
defineGlobal('DOMException', DOMException);

ObjectAssign(internal, { DOMException, isDOMException });
