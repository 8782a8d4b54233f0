// report.js: loaded right after testharness.js. Prints each subtest result as it completes
// (so a run cut short by the runner's timeout still reports what finished) and the
// harness status at the end, one `@@WPT@@ {json}` line each, for tests/wpt/run.py.
'use strict';
// Scripts load one after another with microtasks between them, so the harness would see
// "all loaded" after this file and finish after the first test; wait for done.js instead,
// as wptserve's worker wrapper does.
setup({ explicit_done: true });
(() => {
  const print = (obj) => console.log('@@WPT@@ ' + JSON.stringify(obj));
  add_result_callback((t) => {
    print({ type: 'result', name: t.name, status: t.status, message: t.message ?? null });
  });
  add_completion_callback((tests, status) => {
    print({ type: 'complete', status: status.status, message: status.message ?? null });
  });
})();
