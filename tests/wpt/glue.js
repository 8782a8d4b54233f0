// glue.js: what the WPT server and its worker wrapper give a test, for nano-dp's
// `run` mode. Loaded after the runner's generated prelude (which sets __wpt) and before
// resources/testharness.js. Test infrastructure only: nothing here ships in the runtime.
'use strict';

// wptserve's *.any.worker.js wrapper defines GLOBAL; we run tests as a worker scope would.
self.GLOBAL = {
  isWindow: () => false,
  isWorker: () => true,
  isShadowRealm: () => false,
};

// `location` is nano's own: the runner passes --location with the URL the test would have
// been served from, so relative URLs in Request and friends resolve as in a worker.
if (typeof location === 'undefined' || location.href !== __wpt.url) {
  throw new Error(`wpt glue: expected --location ${__wpt.url}`);
}

// The WPT server's static files the test reads (e.g. url/resources/urltestdata.json): the
// runner passes the ones the test names, and fetch() of a URL on the test's own origin is
// answered from them (there is no WPT server); other URLs (data:, blob:) go to the real fetch.
{
  const realFetch = self.fetch;
  const origin = new URL(__wpt.url).origin;
  self.fetch = async function fetch(input, init) {
    const raw = typeof input === 'string' ? input : String(input.url ?? input);
    const url = new URL(raw, location.href);
    if (url.origin !== origin || !url.protocol.startsWith('http')) return realFetch(input, init);
    const clean = url.pathname;
    if (!(clean in __wpt.files)) throw new TypeError(`wpt glue: no resource ${raw} (${clean})`);
    return new Response(__wpt.files[clean], { headers: { 'content-type': 'application/json' } });
  };
}
