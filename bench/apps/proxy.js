// The proxy benchmark's module, the same for every runtime (bench/proxy.py): a reverse proxy
// that forwards each request as it is (method, headers, body) to one upstream and returns the
// upstream's response untouched. bench/proxy.py writes the upstream's origin in place of
// @UPSTREAM@ when it copies this file.
const UPSTREAM = "@UPSTREAM@";

export default {
  fetch(request, env) {
    const u = new URL(request.url);
    return fetch(UPSTREAM + u.pathname + u.search, request);
  },
};
