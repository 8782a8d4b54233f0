// /etc/nano/apps/hello.js: the example app of /etc/nano/nano.json (docs/install.md). It
// answers every host, being the default app; replace it with your own apps, each with its
// hostnames (docs/config.md). nano-dp reloads when this file or nano.json changes.
export default {
  async fetch(request, env, ctx) {
    return new Response(`${env.GREETING}: ${new URL(request.url).pathname}\n`);
  },
};
