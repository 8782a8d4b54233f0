// The streams benchmark's module, the same for every runtime (bench/streams.py):
//   GET  /gen?mb=N    N MiB generated in 64 KiB chunks, through an identity TransformStream
//   GET  /plain?mb=N  the same chunks as the response body directly (no transform)
//   POST /echo        the upload echoed back (new Response(request.body))
//   GET  /gzip?mb=N   N MiB of generated text through CompressionStream("gzip")
//   GET  /            "ok" (readiness)
const CHUNK = 64 * 1024;

// 64 KiB of log-like text: compressible as real payloads are, not a run of one byte.
const text = new Uint8Array(CHUNK);
{
  const enc = new TextEncoder();
  let off = 0;
  for (let i = 0; off < CHUNK; i++) {
    const line = enc.encode(`2026-11-25T10:00:${String(i % 60).padStart(2, "0")}Z GET /api/items/${i * 7919 % 100003} 200 ${i % 977}ms\n`);
    const n = Math.min(line.length, CHUNK - off);
    text.set(line.subarray(0, n), off);
    off += n;
  }
}

function generated(total, chunk) {
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= total) {
        controller.close();
        return;
      }
      const n = Math.min(chunk.length, total - sent);
      controller.enqueue(chunk.slice(0, n));
      sent += n;
    },
  });
}

export default {
  fetch(request) {
    const url = new URL(request.url);
    const mb = Number(url.searchParams.get("mb") || 16);
    switch (url.pathname) {
      case "/gen":
        return new Response(generated(mb * 1024 * 1024, text).pipeThrough(new TransformStream({
          transform(chunk, controller) { controller.enqueue(chunk); },
        })));
      case "/plain":
        return new Response(generated(mb * 1024 * 1024, text));
      case "/echo":
        return new Response(request.body);
      case "/gzip":
        return new Response(generated(mb * 1024 * 1024, text).pipeThrough(new CompressionStream("gzip")));
      default:
        return new Response("ok");
    }
  },
};
