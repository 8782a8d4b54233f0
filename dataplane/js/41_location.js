// 41_location.js: with `--location URL` (nano-dp run/test), the global `location` (HTML's
// WorkerLocation) and the base URL that Request and Response.redirect resolve relative URLs
// against, as Deno's --location does. Without it there is no base URL, as on Workers. Set
// per context (01_context_init.js): the location belongs to the app, never to the snapshot.
'use strict';

const { TypeError, ObjectAssign } = primordials;
const { webidl, defineGlobal, onContextInit, parseURL, URL } = internal;

let url; // the parsed --location, once initContext has seen one

class WorkerLocation {
  constructor(key = undefined) { webidl.illegalConstructor(key, 'WorkerLocation'); }
  get href() { return url.href; }
  get origin() { return url.origin; }
  get protocol() { return url.protocol; }
  get host() { return url.host; }
  get hostname() { return url.hostname; }
  get port() { return url.port; }
  get pathname() { return url.pathname; }
  get search() { return url.search; }
  get hash() { return url.hash; }
  toString() { return url.href; }
}
webidl.configureInterface(WorkerLocation);

onContextInit(({ location }) => {
  if (location === undefined) return;
  const record = parseURL(location);
  if (typeof record !== 'object') {
    throw new TypeError(`--location ${location}: not a valid absolute URL`);
  }
  url = new URL(location);
  internal.baseURL = url.href;
  defineGlobal('WorkerLocation', WorkerLocation);
  defineGlobal('location', new WorkerLocation(webidl.kIllegalConstructor), true);
});

// The base URL: a string once a context has a location (set above); read it when called.
ObjectAssign(internal, { baseURL: undefined });
