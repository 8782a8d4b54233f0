// bench/propagation.py's app: answers with the env value it was handed and a module-level
// request counter (which must keep counting across env changes: no new isolate).
let served = 0;

export default {
  fetch(request, env) {
    served++;
    return new Response(`${env.GEN ?? "-"} ${served}\n`);
  },
};
