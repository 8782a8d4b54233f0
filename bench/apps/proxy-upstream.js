// The upstream every proxy in bench/proxy.py forwards to (one shared process):
//   GET  /small      a 100-byte text body
//   GET  /gen?mb=N   N MiB in 64 KiB chunks (a ReadableStream, the same bytes each chunk)
//   POST /count      reads the whole body and answers its length in bytes
//   GET  /           "ok" (readiness)
const CHUNK = 64 * 1024;
const SMALL = "proxied hello ".repeat(8).slice(0, 99) + "\n"; // 100 bytes
const block = new Uint8Array(CHUNK).fill(0x78);

function generated(total) {
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= total) {
        controller.close();
        return;
      }
      const n = Math.min(CHUNK, total - sent);
      // The same bytes every time; a fresh view, since a runtime may hold a chunk until it is written.
      controller.enqueue(n === CHUNK ? block.slice() : block.slice(0, n));
      sent += n;
    },
  });
}

export default {
  async fetch(request) {
    const url = new URL(request.url);
    switch (url.pathname) {
      case "/small":
        return new Response(SMALL, { headers: { "content-type": "text/plain" } });
      case "/gen": {
        const mb = Number(url.searchParams.get("mb") || 16);
        return new Response(generated(mb * 1024 * 1024),
                            { headers: { "content-type": "application/octet-stream" } });
      }
      case "/count": {
        let n = 0;
        if (request.body) {
          const reader = request.body.getReader();
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            n += value.byteLength;
          }
        }
        return new Response(String(n));
      }
      default:
        return new Response("ok");
    }
  },
};
