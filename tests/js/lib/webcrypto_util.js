// What the crypto.subtle test files share: byte helpers and the rejection check.
import { assert, assertEquals, fail } from "nano:test";

export const utf8 = (s) => new TextEncoder().encode(s);
export const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");
export const unhex = (s) => new Uint8Array(s.match(/../g)?.map((b) => parseInt(b, 16)) ?? []);

// The promise rejects with a DOMException of that name (or, for "TypeError", a TypeError).
export async function rejectsWith(promise, name) {
  assert(promise instanceof Promise, "the method returns a promise");
  try {
    await promise;
  } catch (e) {
    if (name === "TypeError") {
      assert(e instanceof TypeError, `expected a TypeError, got ${e}`);
    } else {
      assert(e instanceof DOMException, `expected a DOMException ${name}, got ${e}`);
      assertEquals(e.name, name, e.message);
    }
    return e;
  }
  fail(`expected a rejection with ${name}`);
}
