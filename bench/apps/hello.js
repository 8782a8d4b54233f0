// The hello app every runtime in bench/hello.py serves: the same module, unchanged.
export default {
  async fetch(request, env, ctx) {
    return new Response("Hello World\n");
  },
};
